//! The npm registry: package names (with scopes), packuments (the full document and the
//! abbreviated "corgi" form npm and pnpm install from) and the bulk advisory request of
//! `npm audit`. Parsing and rendering only; no policy and no I/O.

mod audit;
mod facts;
mod name;
mod packument;

pub use audit::{parse_bulk_request, BulkAdvisory, BulkRequest, Cvss};
pub use name::{check_name, path_name, split_scope, tarball_basename};
pub use packument::{
    read_facts, repoint_tags, Packument, PackumentError, PackumentFacts, VersionFacts,
    MAX_PACKUMENT_BYTES,
};

/// The media type of the abbreviated packument (npm's "corgi" document).
pub const ABBREVIATED_CONTENT_TYPE: &str = "application/vnd.npm.install-v1+json";
/// The media type of the full packument.
pub const FULL_CONTENT_TYPE: &str = "application/json";
