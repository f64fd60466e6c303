use std::cmp::Ordering;
use std::fmt;

use crate::cran_version::CranVersion;
use crate::ecosystem::Ecosystem;
use crate::error::{printable, EcosystemError};
use crate::generic_version::GenericVersion;

/// A version of a package in one ecosystem, ordered by that ecosystem's rules.
///
/// Versions of different ecosystems never meet in practice; if they do, they order by ecosystem
/// first so that sorting stays total.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Version {
    /// A PEP 440 version.
    Pypi(pep440_rs::Version),
    /// An R package version.
    Cran(CranVersion),
    /// An npm (node-semver) version.
    Npm(nodejs_semver::Version),
    /// A conda version (conda's ordering, as `rattler_conda_types` implements it).
    Conda(rattler_conda_types::Version),
    /// A desktop tool's version.
    Generic(GenericVersion),
}

impl Version {
    /// Parses `text` with the ecosystem's version syntax.
    pub fn parse(ecosystem: Ecosystem, text: &str) -> Result<Version, EcosystemError> {
        match ecosystem {
            Ecosystem::Pypi => {
                if text.len() > 128 {
                    return Err(EcosystemError::InvalidVersion {
                        ecosystem: "pypi",
                        version: printable(text),
                        why: "it is longer than 128 characters".to_owned(),
                    });
                }
                text.trim()
                    .parse::<pep440_rs::Version>()
                    .map(Version::Pypi)
                    .map_err(|error| EcosystemError::InvalidVersion {
                        ecosystem: "pypi",
                        version: printable(text),
                        why: format!(
                            "{error} (PEP 440 versions look like 2.32.3, 1.0rc1 or 2.0.post1)"
                        ),
                    })
            }
            Ecosystem::Cran => text.parse::<CranVersion>().map(Version::Cran),
            Ecosystem::Npm => nodejs_semver::Version::parse(pad_npm(text.trim()))
                .map(Version::Npm)
                .map_err(|_| EcosystemError::InvalidVersion {
                    ecosystem: "npm",
                    version: printable(text),
                    why: "npm versions are semantic versions such as 4.17.21 or 2.0.0-rc.1"
                        .to_owned(),
                }),
            Ecosystem::Conda => crate::conda::parse_version(text).map(Version::Conda),
            Ecosystem::Generic => text.parse::<GenericVersion>().map(Version::Generic),
        }
    }

    /// The ecosystem whose ordering this version follows.
    pub fn ecosystem(&self) -> Ecosystem {
        match self {
            Version::Pypi(_) => Ecosystem::Pypi,
            Version::Cran(_) => Ecosystem::Cran,
            Version::Npm(_) => Ecosystem::Npm,
            Version::Conda(_) => Ecosystem::Conda,
            Version::Generic(_) => Ecosystem::Generic,
        }
    }

    /// True for PEP 440 pre-releases and development releases, and npm pre-releases
    /// (`2.0.0-rc.1`). R has none.
    pub fn is_prerelease(&self) -> bool {
        match self {
            Version::Pypi(version) => version.any_prerelease(),
            Version::Npm(version) => version.is_prerelease(),
            Version::Conda(version) => version.is_dev(),
            Version::Cran(_) | Version::Generic(_) => false,
        }
    }
}

/// Pads a partial npm version (`1`, `1.0`) to three parts, as advisories sometimes write them
/// (GitHub's `introduced: "1.0"`); anything else is left as written.
fn pad_npm(text: &str) -> std::borrow::Cow<'_, str> {
    let parts: Vec<&str> = text.split('.').collect();
    if parts.len() < 3
        && parts
            .iter()
            .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
    {
        let mut padded = parts.join(".");
        for _ in parts.len()..3 {
            padded.push_str(".0");
        }
        std::borrow::Cow::Owned(padded)
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Version::Pypi(left), Version::Pypi(right)) => left.cmp(right),
            (Version::Cran(left), Version::Cran(right)) => left.cmp(right),
            (Version::Npm(left), Version::Npm(right)) => left.cmp(right),
            (Version::Conda(left), Version::Conda(right)) => left.cmp(right),
            (Version::Generic(left), Version::Generic(right)) => left.cmp(right),
            _ => self.ecosystem().cmp(&other.ecosystem()),
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Version::Pypi(version) => version.fmt(f),
            Version::Cran(version) => version.fmt(f),
            Version::Npm(version) => version.fmt(f),
            Version::Conda(version) => version.fmt(f),
            Version::Generic(version) => version.fmt(f),
        }
    }
}

impl serde::Serialize for Version {
    /// Versions serialise as the text the ecosystem writes them in.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npm_versions_order_by_semver_and_partial_ones_are_padded() {
        let parse = |text: &str| Version::parse(Ecosystem::Npm, text).expect(text);
        assert!(parse("1.0.0-rc.1") < parse("1.0.0"));
        assert!(parse("1.10.0") > parse("1.9.9"));
        assert_eq!(parse("1.0"), parse("1.0.0"));
        assert_eq!(parse("2"), parse("2.0.0"));
        assert!(parse("1.0.0").to_string() == "1.0.0");
        assert!(Version::parse(Ecosystem::Npm, "1.0.x").is_err());
        assert!(Version::parse(Ecosystem::Npm, "banana").is_err());
        assert!(parse("3.0.0-beta.2").is_prerelease());
    }
}
