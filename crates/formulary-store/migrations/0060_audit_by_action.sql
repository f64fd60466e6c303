-- The policy records are checked against their audit rows on every snapshot build: find those
-- rows without reading the whole log.
CREATE INDEX audit_log_by_action ON audit_log (action, seq);
