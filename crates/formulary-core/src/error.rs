use formulary_ecosystems::EcosystemError;
use thiserror::Error;

/// Everything the domain refuses, with a message that says what to do instead.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CoreError {
    /// A name, version or range broke its ecosystem's rules.
    #[error(transparent)]
    Ecosystem(#[from] EcosystemError),
    /// A package URL could not be read.
    #[error("'{purl}' is not a package URL Formulary can use: {why}")]
    InvalidPurl {
        /// The purl as given, with control characters escaped.
        purl: String,
        /// What is wrong, and the expected form.
        why: String,
    },
    /// An organisation code is malformed.
    #[error("'{code}' is not a valid organisation code: use 2 to 12 letters and digits, such as an ODS code (RJ1, X26)")]
    InvalidOrgCode {
        /// The code as given, with control characters escaped.
        code: String,
    },
    /// An entry is inconsistent (for example a pilot without an expiry date).
    #[error("the entry is not valid: {0}")]
    InvalidEntry(String),
    /// A setting has a value outside what it accepts.
    #[error("invalid setting: {0}")]
    InvalidSetting(String),
    /// A request, sign-off or decision is malformed.
    #[error("the request is not valid: {0}")]
    InvalidRequest(String),
    /// An OSV record could not be used.
    #[error("OSV record {id}: {why}")]
    InvalidAdvisory {
        /// The record id, or the file it came from when the id is unknown.
        id: String,
        /// What is wrong with it.
        why: String,
    },
}

/// Escapes control characters and shortens long input for safe echoing in messages.
pub(crate) fn printable(text: &str) -> String {
    const MAX_CHARS: usize = 200;
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
