-- Inventory: environments (projects, machines, pipelines) and what each last reported it
-- contains. A new report of an environment replaces its components.
CREATE TABLE environments (
    id TEXT PRIMARY KEY,
    organisation TEXT NOT NULL REFERENCES organisations (code),
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    reported_by TEXT NOT NULL,
    reported_by_name TEXT NOT NULL,
    reported_at TEXT NOT NULL,
    format TEXT NOT NULL,
    component_count BIGINT NOT NULL,
    UNIQUE (organisation, name)
);

CREATE TABLE environment_components (
    environment_id TEXT NOT NULL REFERENCES environments (id),
    ecosystem TEXT NOT NULL,
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    PRIMARY KEY (environment_id, ecosystem, name, version)
);

CREATE INDEX environment_components_by_component ON environment_components (ecosystem, name, version);

-- Who has a version, from the ledger: by component and person.
CREATE INDEX downloads_by_actor ON downloads (actor, ecosystem, name);
