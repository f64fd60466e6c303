-- Files of desktop tools (components of the `generic` ecosystem) the gateway offers: one row per
-- tool version and platform, with the upstream URL, its SHA-256 and size, what kind of file it
-- is, and the programs inside an archive that `formulary tools install` puts on the PATH. Added
-- by a national curator from a manifest (`formulary tools add`); the policy decides who may
-- download them, as for packages.

CREATE TABLE tool_artifacts (
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    platform TEXT NOT NULL,
    filename TEXT NOT NULL,
    url TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size BIGINT NOT NULL,
    kind TEXT NOT NULL,
    binaries TEXT NOT NULL,
    added_by TEXT NOT NULL,
    added_at TEXT NOT NULL,
    PRIMARY KEY (name, version, platform)
);
