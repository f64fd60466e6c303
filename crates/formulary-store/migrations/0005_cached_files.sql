-- The identity of every file the gateway has cached, independent of views: where it came from,
-- every digest it was verified against, its size and its blob. With it, a restarted server serves
-- cached files from the blob store with no upstream.

CREATE TABLE cached_files (
    url TEXT PRIMARY KEY,
    filename TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size BIGINT NOT NULL,
    digests TEXT NOT NULL,
    stored_at TEXT NOT NULL
);

CREATE INDEX cached_files_by_blob ON cached_files (sha256);

-- Upstream documents keyed by what they are (scope, key) rather than by a component name.
CREATE TABLE upstream_documents (
    scope TEXT NOT NULL,
    document_key TEXT NOT NULL,
    upstream TEXT NOT NULL,
    document TEXT NOT NULL,
    etag TEXT,
    fetched_at TEXT NOT NULL,
    PRIMARY KEY (scope, document_key)
);

INSERT INTO upstream_documents (scope, document_key, upstream, document, etag, fetched_at)
    SELECT ecosystem, name, upstream, document, etag, fetched_at FROM upstream_pages;

DROP TABLE upstream_pages;
