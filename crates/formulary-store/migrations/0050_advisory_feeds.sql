-- Surveillance: the server keeps advisories current.
--
-- `leases`: named jobs that exactly one replica may run at a time. A replica takes a lease when
-- it has expired (or was never taken) and holds it by moving `expires_at` on; a replica that
-- dies leaves it to expire.
CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    taken_at TEXT NOT NULL
);

-- One row per OSV source the server syncs: how current it is, and where an incremental sync
-- resumes (`cursor`: the newest `modified` time seen in the source's modified_id.csv).
CREATE TABLE advisory_feeds (
    source TEXT PRIMARY KEY,
    active BIGINT NOT NULL,
    first_configured_at TEXT NOT NULL,
    last_attempt_at TEXT,
    last_success_at TEXT,
    last_error TEXT,
    cursor TEXT,
    last_mode TEXT,
    last_changed BIGINT NOT NULL,
    last_duration_ms BIGINT NOT NULL,
    total_changed BIGINT NOT NULL
);

-- Per organisation: what its views do when the advisory feed is stale.
CREATE TABLE advisory_feed_policies (
    organisation TEXT PRIMARY KEY REFERENCES organisations (code),
    stale_after_hours BIGINT NOT NULL,
    on_stale TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
