use chrono::{DateTime, Utc};
use formulary_ecosystems::Version;

/// What is known about one release of a component: the evidence the time- and licence-based
/// rules need. Unknown facts are `None`, and the decision says so.
#[derive(Debug, Clone, PartialEq)]
pub struct Release {
    /// The version.
    pub version: Version,
    /// When it was published upstream (or, see `dated_by_first_sight`, when Formulary first saw
    /// it).
    pub published: Option<DateTime<Utc>>,
    /// True when the upstream gives no publication time and `published` is when Formulary first
    /// saw the version: messages then say "first seen", not "published".
    pub dated_by_first_sight: bool,
    /// `Some(reason)` when the upstream yanked it (the reason may be empty).
    pub yanked: Option<String>,
    /// Its licence as an SPDX expression.
    pub licence: Option<String>,
    /// True when the version runs code when it is installed (npm's `preinstall`, `install` or
    /// `postinstall` scripts); false when it does not or the ecosystem does not say.
    pub install_scripts: bool,
}

impl Release {
    /// A release about which nothing but the version is known.
    pub fn bare(version: Version) -> Release {
        Release {
            version,
            published: None,
            dated_by_first_sight: false,
            yanked: None,
            licence: None,
            install_scripts: false,
        }
    }
}
