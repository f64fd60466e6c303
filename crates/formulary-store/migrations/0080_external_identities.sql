-- Sign-in through OpenID Connect providers (NHS CIS2, Entra ID, others).
--
-- An account made by a provider is found again only by (issuer, subject), never by email or
-- username; the index makes that pair unique (local accounts have no subject, and NULLs are
-- distinct in SQLite and PostgreSQL alike).
CREATE UNIQUE INDEX users_by_external_subject ON users (identity_provider, external_subject);

-- Where a role came from: `local` (granted in Formulary) or a provider's issuer (applied at
-- each sign-in through it, added and removed to match what the provider says).
ALTER TABLE memberships ADD COLUMN source TEXT NOT NULL DEFAULT 'local';

-- Sign-ins under way: the SHA-256 of the `state` sent to the provider, with the nonce and
-- PKCE verifier that the provider's answer must match. Each is used once and expires in
-- minutes; kept in the database so that any replica can finish what another started.
CREATE TABLE oidc_logins (
    state_hash TEXT PRIMARY KEY,
    provider TEXT NOT NULL,
    nonce TEXT NOT NULL,
    pkce_verifier TEXT NOT NULL,
    next_path TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);

CREATE INDEX oidc_logins_by_expiry ON oidc_logins (expires_at);
