-- Device sign-in for `formulary setup` (RFC 8628 style): setup asks for a code, prints the page
-- address and the short user code, and polls with the device code (kept here only as its
-- SHA-256) until the person, signed in, approves the user code; then one token for package
-- clients is issued, once. Codes expire after ten minutes; `created_from` rate-limits how many
-- one address may ask for.
CREATE TABLE device_codes (
    device_hash TEXT PRIMARY KEY,
    user_code TEXT NOT NULL UNIQUE,
    client_name TEXT NOT NULL,
    created_from TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    approved_by TEXT,
    approved_at TEXT,
    redeemed_at TEXT,
    last_poll_at TEXT
);
CREATE INDEX device_codes_created_from ON device_codes (created_from, created_at);
