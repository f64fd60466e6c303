use thiserror::Error;

/// Everything that can be wrong with an ecosystem name, a package name, a version or a range.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EcosystemError {
    /// The ecosystem is not one Formulary knows.
    #[error("unknown ecosystem '{given}'; Formulary supports: pypi, cran, npm, conda, generic")]
    UnknownEcosystem {
        /// What the user wrote.
        given: String,
    },
    /// The package name breaks the ecosystem's naming rules.
    #[error("'{name}' is not a valid {ecosystem} package name: {why}")]
    InvalidName {
        /// The ecosystem whose rules apply.
        ecosystem: &'static str,
        /// The offending name, with control characters escaped.
        name: String,
        /// Which rule it breaks.
        why: &'static str,
    },
    /// The version does not follow the ecosystem's version syntax.
    #[error("'{version}' is not a valid {ecosystem} version: {why}")]
    InvalidVersion {
        /// The ecosystem whose rules apply.
        ecosystem: &'static str,
        /// The offending version text, with control characters escaped.
        version: String,
        /// What is wrong with it.
        why: String,
    },
    /// The range does not follow the ecosystem's range syntax.
    #[error("'{range}' is not a valid {ecosystem} version range: {why}")]
    InvalidRange {
        /// The ecosystem whose rules apply.
        ecosystem: &'static str,
        /// The offending range text, with control characters escaped.
        range: String,
        /// What is wrong with it, and the expected form.
        why: String,
    },
}

/// Escapes control characters and truncates very long input so that it is safe to echo in an
/// error message, a log line or a terminal.
pub(crate) fn printable(text: &str) -> String {
    const MAX_CHARS: usize = 120;
    let mut shown: String = text
        .chars()
        .take(MAX_CHARS)
        .flat_map(char::escape_debug)
        .collect();
    if text.chars().count() > MAX_CHARS {
        shown.push('…');
    }
    shown
}
