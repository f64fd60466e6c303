use std::fmt;

use crate::ecosystem::Ecosystem;
use crate::error::{printable, EcosystemError};
use crate::version::Version;

/// A version range written in the ecosystem's own syntax:
/// PEP 440 specifiers for PyPI (`>=2.31,<3`), R's comparison list for CRAN (`>= 1.0-2, < 2.0`),
/// node-semver ranges for npm (`^4.17.0 || >=5 <5.2`, pre-releases included),
/// and the same comparison list for desktop tools (`>= 4.3, < 5`).
/// `*` (or an empty string) covers every version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionRange {
    ecosystem: Ecosystem,
    text: String,
    bounds: Bounds,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Bounds {
    Every,
    Pypi(pep440_rs::VersionSpecifiers),
    Npm(nodejs_semver::Range),
    Conda(rattler_conda_types::VersionSpec),
    Comparisons(Vec<Comparator>),
}

/// One version comparison, such as `>= 1.0-2`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comparator {
    operator: Operator,
    version: Version,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operator {
    Less,
    LessOrEqual,
    Equal,
    NotEqual,
    GreaterOrEqual,
    Greater,
}

impl Operator {
    fn as_str(self) -> &'static str {
        match self {
            Operator::Less => "<",
            Operator::LessOrEqual => "<=",
            Operator::Equal => "==",
            Operator::NotEqual => "!=",
            Operator::GreaterOrEqual => ">=",
            Operator::Greater => ">",
        }
    }
}

impl Comparator {
    /// True when `version` satisfies this comparison.
    pub fn matches(&self, version: &Version) -> bool {
        let ordering = version.cmp(&self.version);
        match self.operator {
            Operator::Less => ordering.is_lt(),
            Operator::LessOrEqual => ordering.is_le(),
            Operator::Equal => ordering.is_eq(),
            Operator::NotEqual => ordering.is_ne(),
            Operator::GreaterOrEqual => ordering.is_ge(),
            Operator::Greater => ordering.is_gt(),
        }
    }
}

impl fmt::Display for Comparator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.operator.as_str(), self.version)
    }
}

impl Comparator {
    /// Reads one comparison, such as `>= 1.0-2` or `(< 2.0)`, with the ecosystem's versions.
    pub fn parse(ecosystem: Ecosystem, text: &str) -> Result<Comparator, String> {
        let clause = text
            .trim()
            .trim_start_matches('(')
            .trim_end_matches(')')
            .trim();
        let operators = [
            (">=", Operator::GreaterOrEqual),
            ("<=", Operator::LessOrEqual),
            ("==", Operator::Equal),
            ("!=", Operator::NotEqual),
            (">", Operator::Greater),
            ("<", Operator::Less),
            ("=", Operator::Equal),
        ];
        let (symbol, operator) = operators
            .into_iter()
            .find(|(symbol, _)| clause.starts_with(symbol))
            .ok_or_else(|| {
                format!(
                    "'{}' has no comparison operator (>=, >, <=, <, ==, !=)",
                    printable(clause)
                )
            })?;
        let version = Version::parse(ecosystem, clause[symbol.len()..].trim())
            .map_err(|error| error.to_string())?;
        Ok(Comparator { operator, version })
    }
}

impl VersionRange {
    /// The range that covers every version of a component.
    pub fn every(ecosystem: Ecosystem) -> VersionRange {
        VersionRange {
            ecosystem,
            text: "*".to_owned(),
            bounds: Bounds::Every,
        }
    }

    /// Parses `text` with the ecosystem's range syntax.
    pub fn parse(ecosystem: Ecosystem, text: &str) -> Result<VersionRange, EcosystemError> {
        let trimmed = text.trim();
        if trimmed.is_empty() || trimmed == "*" {
            return Ok(VersionRange::every(ecosystem));
        }
        let invalid = |why: String| EcosystemError::InvalidRange {
            ecosystem: ecosystem.as_str(),
            range: printable(text),
            why,
        };
        if trimmed.len() > 512 {
            return Err(invalid("it is longer than 512 characters".to_owned()));
        }
        let bounds = match ecosystem {
            Ecosystem::Pypi => trimmed
                .parse::<pep440_rs::VersionSpecifiers>()
                .map(Bounds::Pypi)
                .map_err(|error| {
                    invalid(format!(
                        "{error}; write PEP 440 specifiers such as '>=2.31,<3' or '==1.4.*'"
                    ))
                })?,
            Ecosystem::Npm => trimmed
                .parse::<nodejs_semver::Range>()
                .map(Bounds::Npm)
                .map_err(|_| {
                    invalid(
                        "write an npm range such as '^4.17.0', '>=1.2.3 <2' or '1.0.0 || 1.0.1'"
                            .to_owned(),
                    )
                })?,
            Ecosystem::Conda => crate::conda::parse_range(trimmed)
                .map(Bounds::Conda)
                .map_err(invalid)?,
            Ecosystem::Cran | Ecosystem::Generic => trimmed
                .split(',')
                .map(|clause| Comparator::parse(ecosystem, clause))
                .collect::<Result<Vec<_>, _>>()
                .map(Bounds::Comparisons)
                .map_err(|why| {
                    invalid(format!(
                        "{why}; write comparisons such as '>= 1.0-2, < 2.0'"
                    ))
                })?,
        };
        Ok(VersionRange {
            ecosystem,
            text: trimmed.to_owned(),
            bounds,
        })
    }

    /// The ecosystem whose syntax and ordering the range uses.
    pub fn ecosystem(&self) -> Ecosystem {
        self.ecosystem
    }

    /// True when the range covers every version.
    pub fn is_every(&self) -> bool {
        matches!(self.bounds, Bounds::Every)
    }

    /// The range as written (trimmed), `*` for every version.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// True when `version` lies in the range. A version of another ecosystem never does.
    pub fn contains(&self, version: &Version) -> bool {
        match (&self.bounds, version) {
            (Bounds::Every, version) => version.ecosystem() == self.ecosystem,
            (Bounds::Pypi(specifiers), Version::Pypi(version)) => specifiers.contains(version),
            // An entry's range covers pre-releases too: a prohibition of `<2` must not miss
            // `1.9.0-beta.1`.
            (Bounds::Npm(range), Version::Npm(version)) => {
                range.satisfies_with_prerelease(version, true)
            }
            (Bounds::Conda(spec), Version::Conda(version)) => spec.matches(version),
            (Bounds::Comparisons(comparators), version) => {
                version.ecosystem() == self.ecosystem
                    && comparators
                        .iter()
                        .all(|comparator| comparator.matches(version))
            }
            _ => false,
        }
    }
}

impl fmt::Display for VersionRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn covers(ecosystem: Ecosystem, range: &str, version: &str) -> bool {
        let range = VersionRange::parse(ecosystem, range).expect(range);
        range.contains(&Version::parse(ecosystem, version).expect(version))
    }

    #[test]
    fn pypi_ranges_use_pep_440_specifiers() {
        assert!(covers(Ecosystem::Pypi, ">=2.31,<3", "2.32.3"));
        assert!(!covers(Ecosystem::Pypi, ">=2.31,<3", "3.0"));
        assert!(covers(Ecosystem::Pypi, "==1.4.*", "1.4.9"));
        assert!(covers(Ecosystem::Pypi, "*", "0.0.1"));
        assert!(covers(Ecosystem::Pypi, "", "1"));
    }

    #[test]
    fn cran_ranges_use_r_comparisons() {
        assert!(covers(Ecosystem::Cran, ">= 1.0-2, < 2.0", "1.0.2"));
        assert!(covers(Ecosystem::Cran, "(>= 1.0-2)", "1.1"));
        assert!(!covers(Ecosystem::Cran, ">= 1.0-2, < 2.0", "2.0-0"));
        assert!(covers(Ecosystem::Cran, "== 1.0-2", "1.0.2"));
        assert!(covers(Ecosystem::Cran, "!= 1.0", "1.0.0"));
    }

    #[test]
    fn malformed_ranges_explain_the_expected_form() {
        let error = VersionRange::parse(Ecosystem::Pypi, ">=banana").unwrap_err();
        assert!(error.to_string().contains("PEP 440 specifiers"), "{error}");
        let error = VersionRange::parse(Ecosystem::Cran, "~1.0").unwrap_err();
        assert!(error.to_string().contains("write comparisons"), "{error}");
    }

    #[test]
    fn npm_ranges_use_node_semver_and_cover_prereleases() {
        assert!(covers(Ecosystem::Npm, "^4.17.0", "4.17.21"));
        assert!(!covers(Ecosystem::Npm, "^4.17.0", "5.0.0"));
        assert!(covers(Ecosystem::Npm, ">=1.2.3 <2 || 3.0.0", "3.0.0"));
        assert!(covers(Ecosystem::Npm, "<2", "1.9.0-beta.1"));
        assert!(covers(Ecosystem::Npm, "1.x", "1.4.0"));
        let error = VersionRange::parse(Ecosystem::Npm, ">=banana").unwrap_err();
        assert!(error.to_string().contains("npm range"), "{error}");
    }

    #[test]
    fn desktop_tool_ranges_use_comparisons() {
        assert!(covers(Ecosystem::Generic, ">= 4.3, < 5", "4.4.2"));
        assert!(!covers(Ecosystem::Generic, ">= 4.3, < 5", "5.0.0"));
    }

    #[test]
    fn a_range_never_covers_another_ecosystems_version() {
        let range = VersionRange::every(Ecosystem::Cran);
        assert!(!range.contains(&Version::parse(Ecosystem::Pypi, "1.0").unwrap()));
    }
}
