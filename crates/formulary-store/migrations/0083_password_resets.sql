-- Password reset links an administrator issues: only the SHA-256 of the link's secret is kept;
-- a link works once, before it expires, and a newer link replaces an unused older one.

CREATE TABLE password_resets (
    digest TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id),
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at TEXT
);

CREATE INDEX password_resets_by_user ON password_resets (user_id);
