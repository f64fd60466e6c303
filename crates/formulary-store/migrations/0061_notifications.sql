-- Notifications: what each person is told (in the app, and by email when they have an address
-- and have not turned email off). The table doubles as a durable email outbox: a message waits
-- here, with its attempts and last error, until the SMTP server has taken it.

CREATE TABLE notifications (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id),
    created_at TEXT NOT NULL,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    link TEXT NOT NULL,
    read_at TEXT,
    email_state TEXT NOT NULL,
    email_attempts BIGINT NOT NULL DEFAULT 0,
    email_next_attempt_at TEXT,
    email_error TEXT,
    emailed_at TEXT
);

CREATE INDEX notifications_by_user ON notifications (user_id, created_at);
CREATE INDEX notifications_outbox ON notifications (email_state, email_next_attempt_at);

ALTER TABLE users ADD COLUMN email_notifications BIGINT NOT NULL DEFAULT 1;
