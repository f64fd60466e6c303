-- The package gateway: upstream index documents as last fetched (for revalidation and for serving
-- while the upstream is down), and the ledger of what went where.

CREATE TABLE upstream_pages (
    ecosystem TEXT NOT NULL,
    name TEXT NOT NULL,
    upstream TEXT NOT NULL,
    document TEXT NOT NULL,
    etag TEXT,
    fetched_at TEXT NOT NULL,
    PRIMARY KEY (ecosystem, name)
);

CREATE TABLE downloads (
    id TEXT PRIMARY KEY,
    at TEXT NOT NULL,
    organisation TEXT NOT NULL,
    ecosystem TEXT NOT NULL,
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    filename TEXT NOT NULL,
    outcome TEXT NOT NULL,
    client TEXT NOT NULL,
    user_agent TEXT NOT NULL,
    actor TEXT
);

CREATE INDEX downloads_by_component ON downloads (ecosystem, name, version);
