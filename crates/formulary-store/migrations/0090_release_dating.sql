-- Whether a release's `published` is the upstream's publication time or when Formulary first
-- saw the version (an upstream that gives no times): messages say "first seen" for the latter.
-- Rows from before this column are taken as upstream times.
ALTER TABLE releases ADD COLUMN dated_by_first_sight BIGINT NOT NULL DEFAULT 0;
