-- Channel notices written by national curators (organisation NATIONAL: every view) and
-- organisation admins (their organisation's views), served in conda channels' notices.json
-- (CEP-6) while shown. Rows are never deleted: a withdrawn notice keeps its row, marked.

CREATE TABLE channel_notices (
    id TEXT PRIMARY KEY,
    organisation TEXT NOT NULL REFERENCES organisations (code),
    channel TEXT,
    level TEXT NOT NULL,
    message TEXT NOT NULL,
    expires TEXT,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL,
    withdrawn_at TEXT,
    withdrawn_by TEXT
);

CREATE INDEX channel_notices_by_organisation ON channel_notices (organisation, created_at);
