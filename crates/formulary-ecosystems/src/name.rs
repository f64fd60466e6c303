use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ecosystem::Ecosystem;
use crate::error::{printable, EcosystemError};

/// Longest package name accepted. PyPI's longest real names are well under 100 characters; the
/// limit keeps hostile input out of storage, URLs and logs.
pub const MAX_NAME_LENGTH: usize = 214;

/// A checked package name: valid for its ecosystem and always held in normalised form, with the
/// spelling the user gave kept for display.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PackageName {
    ecosystem: Ecosystem,
    normalized: String,
}

impl PackageName {
    /// Checks `name` against the ecosystem's rules and normalises it: PEP 503 for PyPI (lower
    /// case, runs of `-`, `_` and `.` become one `-`); CRAN and npm names are case-sensitive and
    /// kept (npm names may carry a scope: `@types/node`).
    pub fn new(ecosystem: Ecosystem, name: &str) -> Result<PackageName, EcosystemError> {
        let invalid = |why: &'static str| EcosystemError::InvalidName {
            ecosystem: ecosystem.as_str(),
            name: printable(name),
            why,
        };
        if name.is_empty() {
            return Err(invalid("it is empty"));
        }
        if name.len() > MAX_NAME_LENGTH {
            return Err(invalid("it is longer than 214 characters"));
        }
        let normalized = match ecosystem {
            Ecosystem::Pypi => normalize_pypi(name).map_err(invalid)?,
            Ecosystem::Cran => check_cran(name).map_err(invalid)?,
            Ecosystem::Npm => crate::npm::check_name(name).map_err(invalid)?,
            Ecosystem::Conda => crate::conda::check_name(name).map_err(invalid)?,
            Ecosystem::Generic => normalize_generic(name).map_err(invalid)?,
        };
        Ok(PackageName {
            ecosystem,
            normalized,
        })
    }

    /// The ecosystem this name belongs to.
    pub fn ecosystem(&self) -> Ecosystem {
        self.ecosystem
    }

    /// The normalised name, used for comparison, storage and URLs.
    pub fn as_str(&self) -> &str {
        &self.normalized
    }
}

impl fmt::Display for PackageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.normalized)
    }
}

/// PEP 508 names: ASCII letters and digits, with `.`, `_` and `-` allowed inside.
fn normalize_pypi(name: &str) -> Result<String, &'static str> {
    let bytes = name.as_bytes();
    if !bytes
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err("only ASCII letters, digits, '.', '_' and '-' are allowed");
    }
    let first_and_last = [bytes[0], bytes[bytes.len() - 1]];
    if !first_and_last.iter().all(u8::is_ascii_alphanumeric) {
        return Err("it must start and end with a letter or digit");
    }
    let mut normalized = String::with_capacity(name.len());
    let mut previous_was_separator = false;
    for byte in bytes {
        if matches!(byte, b'.' | b'_' | b'-') {
            if !previous_was_separator {
                normalized.push('-');
            }
            previous_was_separator = true;
        } else {
            normalized.push(byte.to_ascii_lowercase() as char);
            previous_was_separator = false;
        }
    }
    Ok(normalized)
}

/// CRAN names: ASCII letters, digits and `.`, starting with a letter, not ending in `.`, at
/// least two characters ("Writing R Extensions", section 1.1.1).
fn check_cran(name: &str) -> Result<String, &'static str> {
    let bytes = name.as_bytes();
    if !bytes
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || *b == b'.')
    {
        return Err("only ASCII letters, digits and '.' are allowed");
    }
    if !bytes[0].is_ascii_alphabetic() {
        return Err("it must start with a letter");
    }
    if bytes.len() < 2 || bytes[bytes.len() - 1] == b'.' {
        return Err("it must have at least two characters and must not end with '.'");
    }
    Ok(name.to_owned())
}

/// Desktop tool names: ASCII letters, digits, `.`, `_` and `-`, starting with a letter or digit;
/// compared in lower case.
fn normalize_generic(name: &str) -> Result<String, &'static str> {
    let bytes = name.as_bytes();
    if !bytes
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err("only ASCII letters, digits, '.', '_' and '-' are allowed");
    }
    if !bytes[0].is_ascii_alphanumeric() {
        return Err("it must start with a letter or digit");
    }
    Ok(name.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pypi_names_normalise_per_pep_503() {
        for (given, expected) in [
            ("Requests", "requests"),
            ("zope.interface", "zope-interface"),
            ("Foo__Bar--baz..Qux", "foo-bar-baz-qux"),
            ("a", "a"),
        ] {
            let name = PackageName::new(Ecosystem::Pypi, given).expect(given);
            assert_eq!(name.as_str(), expected);
        }
    }

    #[test]
    fn hostile_names_are_refused() {
        for hostile in [
            "",
            "../etc/passwd",
            "a/b",
            "name\n",
            "-leading",
            "trailing_",
            "naïve",
            "a b",
        ] {
            assert!(
                PackageName::new(Ecosystem::Pypi, hostile).is_err(),
                "{hostile:?}"
            );
        }
        let huge = "a".repeat(MAX_NAME_LENGTH + 1);
        let error = PackageName::new(Ecosystem::Pypi, &huge).unwrap_err();
        assert!(error.to_string().contains("longer than 214"), "{error}");
    }

    #[test]
    fn cran_names_keep_case_and_follow_r_rules() {
        assert_eq!(
            PackageName::new(Ecosystem::Cran, "data.table")
                .unwrap()
                .as_str(),
            "data.table"
        );
        assert_eq!(
            PackageName::new(Ecosystem::Cran, "Rcpp").unwrap().as_str(),
            "Rcpp"
        );
        for hostile in ["1abc", "a", "abc.", "ab_c", "../x", "a-b"] {
            assert!(
                PackageName::new(Ecosystem::Cran, hostile).is_err(),
                "{hostile:?}"
            );
        }
    }

    #[test]
    fn errors_escape_control_characters() {
        let error = PackageName::new(Ecosystem::Pypi, "bad\u{1b}[31m").unwrap_err();
        assert!(!error.to_string().contains('\u{1b}'));
    }
}
