use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use crate::error::{printable, EcosystemError};

/// One part of a desktop tool's version: a number or a word.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Part {
    Number(u64),
    Word(String),
}

impl Ord for Part {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Part::Number(left), Part::Number(right)) => left.cmp(right),
            (Part::Word(left), Part::Word(right)) => left.cmp(right),
            // A word before a number: `2.0.rc1` is older than `2.0.0`.
            (Part::Word(_), Part::Number(_)) => Ordering::Less,
            (Part::Number(_), Part::Word(_)) => Ordering::Greater,
        }
    }
}

impl PartialOrd for Part {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// A desktop tool's version, such as `4.4.2` (R), `2.47.1.windows.1` (git) or `2024.09.1+394`
/// (RStudio). It is split on `.`, `-`, `_` and `+` and where digits meet letters; numbers compare
/// as numbers, words alphabetically (case-insensitively) and before numbers, and the longer
/// version wins when one is a prefix of the other. A leading `v` is ignored.
#[derive(Debug, Clone)]
pub struct GenericVersion {
    text: String,
    parts: Vec<Part>,
}

impl GenericVersion {
    /// The version as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl FromStr for GenericVersion {
    type Err = EcosystemError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = |why: &str| EcosystemError::InvalidVersion {
            ecosystem: "generic",
            version: printable(text),
            why: why.to_owned(),
        };
        let trimmed = text.trim();
        if trimmed.is_empty() || trimmed.len() > 64 {
            return Err(invalid("it must have 1 to 64 characters"));
        }
        if !trimmed
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'+'))
        {
            return Err(invalid(
                "only letters, digits, '.', '-', '_' and '+' are allowed",
            ));
        }
        let body = trimmed
            .strip_prefix(['v', 'V'])
            .filter(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
            .unwrap_or(trimmed);
        let mut parts = Vec::new();
        for piece in body
            .split(['.', '-', '_', '+'])
            .filter(|piece| !piece.is_empty())
        {
            let mut rest = piece;
            while !rest.is_empty() {
                let numeric = rest.starts_with(|c: char| c.is_ascii_digit());
                let end = rest
                    .find(|c: char| c.is_ascii_digit() != numeric)
                    .unwrap_or(rest.len());
                let (run, tail) = rest.split_at(end);
                parts.push(if numeric {
                    Part::Number(
                        run.parse()
                            .map_err(|_| invalid("a number in it is too large"))?,
                    )
                } else {
                    Part::Word(run.to_ascii_lowercase())
                });
                rest = tail;
            }
        }
        if !matches!(parts.first(), Some(Part::Number(_))) {
            return Err(invalid("it must start with a number, as in 2.47.1"));
        }
        Ok(GenericVersion {
            text: trimmed.to_owned(),
            parts,
        })
    }
}

impl PartialEq for GenericVersion {
    fn eq(&self, other: &Self) -> bool {
        self.parts == other.parts
    }
}

impl Eq for GenericVersion {}

impl Hash for GenericVersion {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.parts.hash(state);
    }
}

impl Ord for GenericVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        self.parts.cmp(&other.parts)
    }
}

impl PartialOrd for GenericVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for GenericVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> GenericVersion {
        text.parse().expect(text)
    }

    #[test]
    fn desktop_tool_versions_order_naturally() {
        assert!(v("4.4.2") > v("4.4.1"));
        assert!(v("4.10.0") > v("4.9.9"));
        assert!(v("2.47.1.windows.1") > v("2.47.1"));
        assert!(v("2.0.rc1") < v("2.0.0"));
        assert!(v("2024.09.1+394") > v("2024.04.2+764"));
        assert_eq!(v("v1.2"), v("1.2"));
    }

    #[test]
    fn malformed_versions_are_refused() {
        for bad in ["", "latest", "1.0/../x", "1 0", "rc1"] {
            assert!(bad.parse::<GenericVersion>().is_err(), "{bad:?}");
        }
    }
}
