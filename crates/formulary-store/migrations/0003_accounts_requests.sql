-- People and their roles, sign-in sessions, and the request and review workflow.

-- Accounts. Local accounts carry an argon2 password hash; accounts that sign in through an
-- identity provider (OIDC) carry its issuer and subject instead.
CREATE TABLE users (
    id TEXT PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    email TEXT,
    password_hash TEXT,
    identity_provider TEXT NOT NULL,
    external_subject TEXT,
    created_at TEXT NOT NULL,
    disabled_at TEXT
);

CREATE TABLE memberships (
    user_id TEXT NOT NULL REFERENCES users (id),
    organisation TEXT NOT NULL REFERENCES organisations (code),
    role TEXT NOT NULL,
    granted_at TEXT NOT NULL,
    granted_by TEXT NOT NULL,
    PRIMARY KEY (user_id, organisation, role)
);

-- Only the SHA-256 of a session's cookie secret is kept.
CREATE TABLE sessions (
    id_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id),
    csrf_token TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    ended_at TEXT
);

CREATE TABLE sign_in_failures (
    id TEXT PRIMARY KEY,
    username TEXT NOT NULL,
    client TEXT NOT NULL,
    at TEXT NOT NULL
);

CREATE INDEX sign_in_failures_by_username ON sign_in_failures (username, at);
CREATE INDEX sign_in_failures_by_client ON sign_in_failures (client, at);

-- A token issued to a person (by `formulary login`) acts as that person.
ALTER TABLE api_tokens ADD COLUMN user_id TEXT;

CREATE TABLE requests (
    id BIGINT PRIMARY KEY,
    organisation TEXT NOT NULL REFERENCES organisations (code),
    ecosystem TEXT NOT NULL,
    name TEXT NOT NULL,
    version_range TEXT NOT NULL,
    requester TEXT NOT NULL REFERENCES users (id),
    problem TEXT NOT NULL,
    data_class TEXT NOT NULL,
    environment TEXT NOT NULL,
    alternatives TEXT NOT NULL,
    users_count BIGINT NOT NULL,
    credentials TEXT NOT NULL,
    state TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    decided_at TEXT,
    decided_by TEXT,
    decision_reason TEXT,
    decision_scope TEXT,
    entry_id TEXT,
    reused BIGINT NOT NULL,
    reused_from TEXT
);

CREATE INDEX requests_by_component ON requests (ecosystem, name);
CREATE INDEX requests_by_requester ON requests (requester);

-- The timeline of a request: submission, comments, sign-offs, decision, withdrawal.
CREATE TABLE request_events (
    request_id BIGINT NOT NULL REFERENCES requests (id),
    seq BIGINT NOT NULL,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    actor_name TEXT NOT NULL,
    kind TEXT NOT NULL,
    stage TEXT,
    verdict TEXT,
    body TEXT NOT NULL,
    PRIMARY KEY (request_id, seq)
);
