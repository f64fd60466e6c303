-- One schema for SQLite and PostgreSQL: only portable types (TEXT, BIGINT, DOUBLE PRECISION),
-- timestamps as RFC 3339 UTC text (which sorts by time), identifiers made by the application.

CREATE TABLE organisations (
    code TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created_at TEXT NOT NULL
);

INSERT INTO organisations (code, name, created_at)
VALUES ('NATIONAL', 'National formulary', '1970-01-01T00:00:00.000000Z');

CREATE TABLE ecosystem_settings (
    organisation TEXT NOT NULL REFERENCES organisations (code),
    ecosystem TEXT NOT NULL,
    stance TEXT NOT NULL,
    severity_threshold TEXT NOT NULL,
    allowed_licences TEXT NOT NULL,
    cooldown_days BIGINT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (organisation, ecosystem)
);

-- Entries are never updated or deleted: a removal is recorded on the row, so that the formulary
-- as it stood on any past day can be rebuilt (dated snapshot views).
CREATE TABLE entries (
    id TEXT PRIMARY KEY,
    organisation TEXT NOT NULL REFERENCES organisations (code),
    ecosystem TEXT NOT NULL,
    name TEXT NOT NULL,
    version_range TEXT NOT NULL,
    status TEXT NOT NULL,
    constraints_text TEXT,
    review_date TEXT,
    expires TEXT,
    waives TEXT NOT NULL,
    decided_by TEXT NOT NULL,
    reason TEXT NOT NULL,
    mentor TEXT,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL,
    removed_at TEXT,
    removed_by TEXT,
    removal_reason TEXT
);

CREATE INDEX entries_by_component ON entries (ecosystem, name);

CREATE TABLE advisories (
    id TEXT PRIMARY KEY,
    modified TEXT NOT NULL,
    published TEXT,
    withdrawn TEXT,
    summary TEXT NOT NULL,
    severity TEXT,
    cvss_score DOUBLE PRECISION,
    malicious BIGINT NOT NULL,
    aliases TEXT NOT NULL,
    record TEXT NOT NULL,
    imported_at TEXT NOT NULL
);

CREATE TABLE advisory_components (
    advisory_id TEXT NOT NULL REFERENCES advisories (id),
    ecosystem TEXT NOT NULL,
    name TEXT NOT NULL,
    PRIMARY KEY (advisory_id, ecosystem, name)
);

CREATE INDEX advisory_components_by_component ON advisory_components (ecosystem, name);

-- Release evidence (publication time, yank, licence) gathered from upstreams and mirrors.
CREATE TABLE releases (
    ecosystem TEXT NOT NULL,
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    published TEXT,
    yanked TEXT,
    licence TEXT,
    first_seen TEXT NOT NULL,
    PRIMARY KEY (ecosystem, name, version)
);

-- Append-only and hash-chained: each row's hash covers its content and the previous row's hash.
CREATE TABLE audit_log (
    seq BIGINT PRIMARY KEY,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    subject TEXT NOT NULL,
    details TEXT NOT NULL,
    previous_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);

CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    organisation TEXT NOT NULL REFERENCES organisations (code),
    role TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT,
    revoked_at TEXT
);
