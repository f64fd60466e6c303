-- Recalls: versions withdrawn while people have them. A recall names the component, the affected
-- versions, why, and what to move to; each person (or environment) who has an affected version
-- is a row, resolved when a later download or report shows them on another version, or when
-- they say why not.
CREATE TABLE recalls (
    id TEXT PRIMARY KEY,
    opened_at TEXT NOT NULL,
    opened_by TEXT NOT NULL,
    cause TEXT NOT NULL,
    cause_key TEXT NOT NULL,
    advisory_id TEXT,
    ecosystem TEXT NOT NULL,
    name TEXT NOT NULL,
    versions TEXT NOT NULL,
    move_to TEXT,
    reason TEXT NOT NULL,
    severity TEXT,
    closed_at TEXT,
    UNIQUE (cause_key, ecosystem, name)
);

CREATE TABLE recall_people (
    recall_id TEXT NOT NULL REFERENCES recalls (id),
    person TEXT NOT NULL,
    person_name TEXT NOT NULL,
    organisation TEXT NOT NULL,
    environment TEXT NOT NULL,
    version TEXT NOT NULL,
    via TEXT NOT NULL,
    notified_at TEXT NOT NULL,
    resolved_at TEXT,
    resolution TEXT,
    explanation TEXT,
    PRIMARY KEY (recall_id, person, organisation, environment, version)
);

CREATE INDEX recall_people_by_person ON recall_people (person, resolved_at);
