use std::collections::BTreeMap;

use thiserror::Error;

/// Largest index document read from an upstream (PyPI's largest project pages are a few MB).
pub const MAX_PAGE_BYTES: usize = 64 * 1024 * 1024;

/// What can be wrong with an upstream index document.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum IndexError {
    /// The document is not what the format says.
    #[error("the upstream index document is malformed: {0}")]
    Malformed(String),
    /// The document is larger than Formulary reads.
    #[error("the upstream index document is larger than 64 MiB")]
    TooLarge,
}

/// One project's page: its files, in upstream order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProjectPage {
    /// The project name as the index spells it.
    pub name: String,
    /// Every distribution file.
    pub files: Vec<DistributionFile>,
    /// The project's versions, when the index lists them (PEP 700).
    pub versions: Vec<String>,
    /// The project's status (PEP 792), when the index gives one.
    pub status: Option<ProjectStatus>,
    /// Other `meta` fields the index sent (such as PyPI's `_last-serial`), passed on unchanged;
    /// `api-version` is not kept (the gateway says which version it serves).
    pub meta: BTreeMap<String, serde_json::Value>,
}

/// A project's status (PEP 792): `active`, `archived`, `quarantined` or `deprecated`, with an
/// optional reason.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProjectStatus {
    /// The status, as the index wrote it.
    pub status: String,
    /// Why, when given.
    pub reason: Option<String>,
}

/// One distribution file (a wheel or an sdist).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DistributionFile {
    /// The file name, e.g. `requests-2.32.3-py3-none-any.whl`.
    pub filename: String,
    /// Where to fetch it (absolute once parsed; as served once rendered).
    pub url: String,
    /// Digests by algorithm name (`sha256` …), lower-case hex.
    pub hashes: BTreeMap<String, String>,
    /// The `Requires-Python` specifier, if any.
    pub requires_python: Option<String>,
    /// `Some(hashes)` when a PEP 658 `.metadata` file is available (the map may be empty).
    pub core_metadata: Option<BTreeMap<String, String>>,
    /// `Some(reason)` when yanked (PEP 592); the reason may be empty.
    pub yanked: Option<String>,
    /// Size in bytes (PEP 700).
    pub size: Option<u64>,
    /// Upload time (PEP 700), exactly as the index wrote it: clients' cooldowns read it.
    pub upload_time: Option<String>,
    /// The URL of the file's provenance object (PEP 740), when the index gives one.
    pub provenance: Option<String>,
}

impl DistributionFile {
    /// The file's SHA-256, when the index gives it.
    pub fn sha256(&self) -> Option<&str> {
        self.hashes.get("sha256").map(String::as_str)
    }
}

/// Lower-cases a hex digest and checks it is hex of the right length for its algorithm.
pub(super) fn checked_digest(algorithm: &str, value: &str) -> Option<(String, String)> {
    let algorithm = algorithm.trim().to_ascii_lowercase();
    let value = value.trim().to_ascii_lowercase();
    let expected_length = match algorithm.as_str() {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        "md5" => 32,
        "sha1" => 40,
        "sha224" => 56,
        _ => return None,
    };
    (value.len() == expected_length && value.bytes().all(|b| b.is_ascii_hexdigit()))
        .then_some((algorithm, value))
}
