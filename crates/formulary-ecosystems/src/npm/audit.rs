//! The bulk advisory endpoint `npm audit` (and pnpm's audit) uses:
//! `POST /-/npm/v1/security/advisories/bulk` with `{"name": ["version", …]}` and an answer of
//! `{"name": [{id, url, title, severity, vulnerable_versions, cwe, cvss}]}`.

use std::collections::BTreeMap;

use serde::Serialize;

/// Most packages one request may name.
const MAX_PACKAGES: usize = 100_000;
/// Most versions one request may name in all.
const MAX_VERSIONS: usize = 500_000;

/// The packages and versions a project has installed: name → versions.
pub type BulkRequest = BTreeMap<String, Vec<String>>;

/// Reads a bulk request body (already decompressed), bounding what it may ask.
pub fn parse_bulk_request(body: &[u8]) -> Result<BulkRequest, String> {
    let request: BulkRequest = serde_json::from_slice(body).map_err(|error| {
        format!("the body is not a JSON object of package names to version lists ({error})")
    })?;
    if request.len() > MAX_PACKAGES {
        return Err(format!("it names more than {MAX_PACKAGES} packages"));
    }
    let versions: usize = request.values().map(Vec::len).sum();
    if versions > MAX_VERSIONS {
        return Err(format!("it names more than {MAX_VERSIONS} versions"));
    }
    Ok(request)
}

/// One advisory in the answer, in the shape npm's audit report reads.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BulkAdvisory {
    /// A number that identifies the advisory (npm keys advisories by it).
    pub id: u64,
    /// Where to read about it.
    pub url: String,
    /// One line about it.
    pub title: String,
    /// `info`, `low`, `moderate`, `high` or `critical`.
    pub severity: String,
    /// The affected versions as an npm range (npm tests every version of the package against it
    /// to work out which are vulnerable and whether a fix exists).
    pub vulnerable_versions: String,
    /// CWE ids.
    pub cwe: Vec<String>,
    /// The CVSS score and vector, when known.
    pub cvss: Cvss,
}

/// A CVSS score as npm reads it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cvss {
    /// The base score (0 when unknown).
    pub score: f64,
    /// The vector, when known.
    #[serde(rename = "vectorString")]
    pub vector_string: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_requests_and_refuses_other_shapes() {
        let request =
            parse_bulk_request(br#"{"lodash":["4.17.20","4.17.21"],"@types/node":["20.0.0"]}"#)
                .expect("reads");
        assert_eq!(request["lodash"], vec!["4.17.20", "4.17.21"]);
        assert!(parse_bulk_request(b"[]").is_err());
        assert!(parse_bulk_request(br#"{"a": "1.0.0"}"#).is_err());
    }
}
