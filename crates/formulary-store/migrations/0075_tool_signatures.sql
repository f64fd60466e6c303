-- Vendor signatures on desktop tools' files: a JSON object {url, kind, public_key, signer} (the
-- detached signature's address, `openpgp` or `minisign`, the vendor's public key pinned by the
-- curator, and who that key names), or '' when the vendor does not sign the file. The gateway
-- verifies the file with the pinned key before it enters the cache.
ALTER TABLE tool_artifacts ADD COLUMN signature TEXT NOT NULL DEFAULT '';
