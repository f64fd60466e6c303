-- Single logout with an identity provider: the provider a session was signed in through and
-- the ID token it issued, sent back as `id_token_hint` when the person signs out. The ID token
-- is cleared when the session ends, however it ends. Sessions of local accounts have neither.
-- The index serves "last sign-in" on the people pages and API.

ALTER TABLE sessions ADD COLUMN identity_provider TEXT;
ALTER TABLE sessions ADD COLUMN id_token TEXT;

CREATE INDEX sessions_by_user ON sessions (user_id, created_at);
