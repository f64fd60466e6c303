-- Dependencies admitted in curated views because an approved component needs them, worked out
-- by the gateway from upstream metadata (PyPI Requires-Dist, CRAN Depends/Imports/LinkingTo).
-- Replaced whole per (organisation, ecosystem) when the closure changes; each replacement is in
-- the audit log. The policy engine ignores a row whose approving entry is no longer in force.

CREATE TABLE dependency_admissions (
    organisation TEXT NOT NULL,
    ecosystem TEXT NOT NULL,
    name TEXT NOT NULL,
    version_range TEXT NOT NULL,
    dependent TEXT NOT NULL,
    root TEXT NOT NULL,
    entry_id TEXT NOT NULL
);

CREATE INDEX dependency_admissions_by_view ON dependency_admissions (organisation, ecosystem);
