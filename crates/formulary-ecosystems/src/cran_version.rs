use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use crate::error::{printable, EcosystemError};

/// An R package version, ordered as R's `package_version()` orders them: the text is split on
/// `.` and `-`, the parts compare as integers, and when one version is a prefix of the other the
/// longer one is newer. So `1.0-2` equals `1.0.2`, and `0.9` is older than `0.75`.
#[derive(Debug, Clone)]
pub struct CranVersion {
    text: String,
    parts: Vec<u64>,
}

impl CranVersion {
    /// The version as it was written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The integer parts that define the ordering.
    pub fn parts(&self) -> &[u64] {
        &self.parts
    }
}

impl FromStr for CranVersion {
    type Err = EcosystemError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = |why: &str| EcosystemError::InvalidVersion {
            ecosystem: "cran",
            version: printable(text),
            why: why.to_owned(),
        };
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(invalid("it is empty"));
        }
        if trimmed.len() > 64 {
            return Err(invalid("it is longer than 64 characters"));
        }
        let parts = trimmed
            .split(['.', '-'])
            .map(|part| {
                if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(invalid(
                        "R versions are integers separated by '.' or '-', such as 1.0-2",
                    ));
                }
                part.parse::<u64>()
                    .map_err(|_| invalid("a part is too large to be a version number"))
            })
            .collect::<Result<Vec<u64>, EcosystemError>>()?;
        Ok(CranVersion {
            text: trimmed.to_owned(),
            parts,
        })
    }
}

impl PartialEq for CranVersion {
    fn eq(&self, other: &Self) -> bool {
        self.parts == other.parts
    }
}

impl Eq for CranVersion {}

impl Hash for CranVersion {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.parts.hash(state);
    }
}

impl PartialOrd for CranVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for CranVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        // Lexicographic comparison of integer parts is exactly "compare part by part, longer wins".
        self.parts.cmp(&other.parts)
    }
}

impl fmt::Display for CranVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> CranVersion {
        text.parse().expect(text)
    }

    #[test]
    fn dash_and_dot_are_the_same_separator() {
        assert_eq!(v("1.0-2"), v("1.0.2"));
        assert_eq!(v("1.0-2").as_str(), "1.0-2");
    }

    #[test]
    fn parts_compare_as_integers_and_longer_wins() {
        assert!(v("0.9") < v("0.75"));
        assert!(v("1.0") < v("1.0.0"));
        assert!(v("2.10") > v("2.9.9"));
    }

    #[test]
    fn malformed_versions_are_refused() {
        for bad in ["", "1..2", "1.0a", "v1", "1.0-", "99999999999999999999999"] {
            assert!(bad.parse::<CranVersion>().is_err(), "{bad:?}");
        }
    }
}
