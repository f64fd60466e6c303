use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{printable, EcosystemError};

/// A package ecosystem: a family of packages that share naming and version rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Ecosystem {
    /// The Python Package Index (purl type `pypi`, OSV ecosystem `PyPI`).
    Pypi,
    /// The Comprehensive R Archive Network (purl type `cran`, OSV ecosystem `CRAN`).
    Cran,
    /// The npm registry (purl type `npm`, OSV ecosystem `npm`); names may carry a scope
    /// (`@types/node`).
    Npm,
    /// conda channels (purl type `conda`; OSV has no conda ecosystem, so advisories reach conda
    /// packages through the PyPI or CRAN component they repackage).
    Conda,
    /// Desktop tools installed as a whole (R, Python, git, an IDE): purl type `generic`. They
    /// have no package index; their entries drive what the self-service installer offers.
    Generic,
}

impl Ecosystem {
    /// Every ecosystem Formulary supports, in display order.
    pub const ALL: [Ecosystem; 5] = [
        Ecosystem::Pypi,
        Ecosystem::Cran,
        Ecosystem::Npm,
        Ecosystem::Conda,
        Ecosystem::Generic,
    ];

    /// The purl type and the word used in URLs, configuration and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Ecosystem::Pypi => "pypi",
            Ecosystem::Cran => "cran",
            Ecosystem::Npm => "npm",
            Ecosystem::Conda => "conda",
            Ecosystem::Generic => "generic",
        }
    }

    /// How the ecosystem is named for people (`PyPI`, `CRAN`, `Desktop tool`).
    pub fn display_name(self) -> &'static str {
        match self {
            Ecosystem::Pypi => "PyPI",
            Ecosystem::Cran => "CRAN",
            Ecosystem::Npm => "npm",
            Ecosystem::Conda => "conda",
            Ecosystem::Generic => "Desktop tool",
        }
    }

    /// The ecosystem's name in OSV records (`affected[].package.ecosystem`).
    pub fn osv_name(self) -> &'static str {
        match self {
            Ecosystem::Pypi => "PyPI",
            Ecosystem::Cran => "CRAN",
            Ecosystem::Npm => "npm",
            // OSV has no conda ecosystem: no record names this.
            Ecosystem::Conda => "conda",
            // OSV has no ecosystem for desktop tools; this name matches no record.
            Ecosystem::Generic => "Generic",
        }
    }

    /// Maps an OSV ecosystem string to a supported ecosystem. OSV ecosystems may carry a suffix
    /// after a colon (for example `Debian:11`), which never applies to the ecosystems supported
    /// here, so only exact names match.
    pub fn from_osv_name(name: &str) -> Option<Ecosystem> {
        Ecosystem::ALL
            .into_iter()
            .find(|ecosystem| ecosystem.osv_name() == name)
    }
}

impl fmt::Display for Ecosystem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Ecosystem {
    type Err = EcosystemError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let lowered = text.trim().to_ascii_lowercase();
        Ecosystem::ALL
            .into_iter()
            .find(|ecosystem| ecosystem.as_str() == lowered)
            .ok_or_else(|| EcosystemError::UnknownEcosystem {
                given: printable(text),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_case_insensitively_and_rejects_unknown() {
        assert_eq!("PyPI".parse::<Ecosystem>(), Ok(Ecosystem::Pypi));
        assert_eq!("cran".parse::<Ecosystem>(), Ok(Ecosystem::Cran));
        let error = "maven\u{7}".parse::<Ecosystem>().unwrap_err();
        assert_eq!(
            error.to_string(),
            "unknown ecosystem 'maven\\u{7}'; Formulary supports: pypi, cran, npm, conda, generic"
        );
    }

    #[test]
    fn maps_osv_names_exactly() {
        assert_eq!(Ecosystem::from_osv_name("PyPI"), Some(Ecosystem::Pypi));
        assert_eq!(Ecosystem::from_osv_name("CRAN"), Some(Ecosystem::Cran));
        assert_eq!(Ecosystem::from_osv_name("npm"), Some(Ecosystem::Npm));
        assert_eq!(Ecosystem::from_osv_name("pypi"), None);
        assert_eq!(Ecosystem::from_osv_name("Debian:11"), None);
    }
}
