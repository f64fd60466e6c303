//! Digests as a type: what an index publishes about a file (PyPI's sha256, npm's sha512
//! `integrity` and sha1 `shasum`, CRAN's `MD5sum`), and a hasher that computes exactly the ones
//! asked for while a file streams into the blob store.

use serde::{Deserialize, Serialize};
use sha2::Digest;

/// A digest algorithm an index can publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    /// SHA-256 (PyPI, conda, and every blob's address).
    Sha256,
    /// SHA-512 (npm `dist.integrity`).
    Sha512,
    /// SHA-1 (npm `dist.shasum`).
    Sha1,
    /// MD5 (CRAN `MD5sum`, conda `md5`).
    Md5,
}

impl Algorithm {
    /// The name indexes use (`sha256`, `md5` …).
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
            Algorithm::Sha1 => "sha1",
            Algorithm::Md5 => "md5",
        }
    }

    fn hex_length(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
            Algorithm::Sha1 => 40,
            Algorithm::Md5 => 32,
        }
    }

    /// Reads an algorithm name as indexes write it (case-insensitive); `None` for others.
    pub fn parse(name: &str) -> Option<Algorithm> {
        match name.trim().to_ascii_lowercase().as_str() {
            "sha256" => Some(Algorithm::Sha256),
            "sha512" => Some(Algorithm::Sha512),
            "sha1" => Some(Algorithm::Sha1),
            "md5" => Some(Algorithm::Md5),
            _ => None,
        }
    }

    const ALL: [Algorithm; 4] = [
        Algorithm::Sha256,
        Algorithm::Sha512,
        Algorithm::Sha1,
        Algorithm::Md5,
    ];
}

/// Why a published digest cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{value}' is not a {algorithm} digest ({expected} hexadecimal digits expected)")]
pub struct MalformedDigest {
    /// The algorithm.
    pub algorithm: &'static str,
    /// The value, shortened.
    pub value: String,
    /// How many hex digits the algorithm has.
    pub expected: usize,
}

/// The digests known for one file, lower-case hex. Every one present is checked before the file
/// enters the cache.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Digests {
    /// SHA-256.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// SHA-512.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha512: Option<String>,
    /// SHA-1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha1: Option<String>,
    /// MD5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub md5: Option<String>,
}

impl Digests {
    /// No digest known.
    pub fn none() -> Digests {
        Digests::default()
    }

    /// Adds a published digest (hex, any case), checking its form.
    pub fn with(mut self, algorithm: Algorithm, hex: &str) -> Result<Digests, MalformedDigest> {
        let value = hex.trim().to_ascii_lowercase();
        if value.len() != algorithm.hex_length() || !value.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(MalformedDigest {
                algorithm: algorithm.name(),
                value: value.chars().take(140).collect(),
                expected: algorithm.hex_length(),
            });
        }
        *self.slot(algorithm) = Some(value);
        Ok(self)
    }

    /// Adds a Subresource Integrity value (`sha512-<base64>`, as npm's `dist.integrity`); several
    /// space-separated values are all added.
    pub fn with_integrity(mut self, integrity: &str) -> Result<Digests, MalformedDigest> {
        use base64::Engine as _;
        for item in integrity.split_whitespace() {
            let Some((name, encoded)) = item.split_once('-') else {
                continue;
            };
            let Some(algorithm) = Algorithm::parse(name) else {
                continue;
            };
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(encoded.split('?').next().unwrap_or(encoded))
                .map_err(|_| MalformedDigest {
                    algorithm: algorithm.name(),
                    value: item.chars().take(140).collect(),
                    expected: algorithm.hex_length(),
                })?;
            self = self.with(algorithm, &hex::encode(bytes))?;
        }
        Ok(self)
    }

    /// The value for one algorithm.
    pub fn get(&self, algorithm: Algorithm) -> Option<&str> {
        match algorithm {
            Algorithm::Sha256 => self.sha256.as_deref(),
            Algorithm::Sha512 => self.sha512.as_deref(),
            Algorithm::Sha1 => self.sha1.as_deref(),
            Algorithm::Md5 => self.md5.as_deref(),
        }
    }

    fn slot(&mut self, algorithm: Algorithm) -> &mut Option<String> {
        match algorithm {
            Algorithm::Sha256 => &mut self.sha256,
            Algorithm::Sha512 => &mut self.sha512,
            Algorithm::Sha1 => &mut self.sha1,
            Algorithm::Md5 => &mut self.md5,
        }
    }

    /// True when no digest is known.
    pub fn is_empty(&self) -> bool {
        Algorithm::ALL
            .iter()
            .all(|algorithm| self.get(*algorithm).is_none())
    }

    /// The first published digest that `computed` contradicts, as (algorithm, expected, actual).
    pub fn contradiction<'a>(
        &'a self,
        computed: &'a Digests,
    ) -> Option<(Algorithm, &'a str, &'a str)> {
        Algorithm::ALL.into_iter().find_map(|algorithm| {
            match (self.get(algorithm), computed.get(algorithm)) {
                (Some(expected), Some(actual)) if expected != actual => {
                    Some((algorithm, expected, actual))
                }
                _ => None,
            }
        })
    }

    /// True when the two agree on every algorithm both know.
    pub fn agrees_with(&self, other: &Digests) -> bool {
        self.contradiction(other).is_none()
    }
}

/// Computes SHA-256 always and, in the same pass, every other digest `expected` holds.
pub(crate) struct Hasher {
    sha256: sha2::Sha256,
    sha512: Option<sha2::Sha512>,
    sha1: Option<sha1::Sha1>,
    md5: Option<md5::Md5>,
}

impl Hasher {
    /// A hasher for the digests a file is expected to have.
    pub(crate) fn for_expected(expected: &Digests) -> Hasher {
        Hasher {
            sha256: sha2::Sha256::new(),
            sha512: expected.sha512.as_ref().map(|_| sha2::Sha512::new()),
            sha1: expected.sha1.as_ref().map(|_| sha1::Sha1::new()),
            md5: expected.md5.as_ref().map(|_| md5::Md5::new()),
        }
    }

    /// Feeds bytes.
    pub(crate) fn update(&mut self, bytes: &[u8]) {
        self.sha256.update(bytes);
        if let Some(hasher) = &mut self.sha512 {
            hasher.update(bytes);
        }
        if let Some(hasher) = &mut self.sha1 {
            hasher.update(bytes);
        }
        if let Some(hasher) = &mut self.md5 {
            hasher.update(bytes);
        }
    }

    /// The digests computed.
    pub(crate) fn finish(self) -> Digests {
        Digests {
            sha256: Some(hex::encode(self.sha256.finalize())),
            sha512: self.sha512.map(|hasher| hex::encode(hasher.finalize())),
            sha1: self.sha1.map(|hasher| hex::encode(hasher.finalize())),
            md5: self.md5.map(|hasher| hex::encode(hasher.finalize())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_digests_are_checked_for_form_and_compared() {
        let expected = Digests::none()
            .with(Algorithm::Md5, "9E107D9D372BB6826BD81D3542A419D6")
            .expect("md5");
        assert_eq!(
            expected.md5.as_deref(),
            Some("9e107d9d372bb6826bd81d3542a419d6")
        );
        assert!(Digests::none().with(Algorithm::Sha256, "abc").is_err());
        assert!(Digests::none()
            .with(Algorithm::Md5, &"g".repeat(32))
            .is_err());
        let mut hasher = Hasher::for_expected(&expected);
        hasher.update(b"The quick brown fox jumps over the lazy dog");
        let computed = hasher.finish();
        assert!(computed.sha512.is_none(), "only what was asked is computed");
        assert!(expected.agrees_with(&computed));
        let wrong = Digests::none()
            .with(Algorithm::Md5, &"0".repeat(32))
            .expect("md5");
        let (algorithm, _, actual) = wrong.contradiction(&computed).expect("differs");
        assert_eq!(algorithm, Algorithm::Md5);
        assert_eq!(actual, "9e107d9d372bb6826bd81d3542a419d6");
    }

    #[test]
    fn npm_integrity_is_read_as_sha512() {
        // sha512 of "hello\n".
        let integrity = "sha512-58IrmUxZ2c8rSOVJseJGZmNgRZMNPafBrLKZ0cO3+TH5Sq5B7dosKyB6NuEPi8uNRSI+VIePWzFufOO2vAGWKQ==";
        let digests = Digests::none().with_integrity(integrity).expect("sri");
        assert_eq!(digests.sha512.as_deref().map(str::len), Some(128));
        let mut hasher = Hasher::for_expected(&digests);
        hasher.update(b"hello\n");
        assert!(digests.agrees_with(&hasher.finish()));
        assert!(Digests::none().with_integrity("sha512-!!!").is_err());
    }
}
