//! A subdirectory's `repodata.json`, read once into the upstream bytes plus a small summary of
//! each record, and written back with chosen records left out. Records are copied byte for byte
//! (timestamps, hashes, dependencies and any field this code does not know pass through
//! untouched); the only other change is that `info.base_url` is dropped, so package URLs resolve
//! against the gateway and no client is sent past it.

use std::collections::BTreeMap;
use std::ops::Range;

use serde::Deserialize;
use serde_json::value::RawValue;

/// Largest `repodata.json` accepted from an upstream (conda-forge's linux-64 is a few hundred
/// megabytes uncompressed).
pub const MAX_REPODATA_BYTES: usize = 1 << 30;

/// Why a `repodata.json` could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RepoDataError {
    /// The document is not the JSON object conda expects.
    #[error("repodata.json is not valid: {0}")]
    Malformed(String),
}

/// What the gateway needs to know about one package record; the record itself stays as
/// upstream wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RecordFacts {
    /// The package name.
    pub name: String,
    /// The version, as written.
    pub version: String,
    /// The build string.
    #[serde(default)]
    pub build: String,
    /// SHA-256 of the package file (hex).
    #[serde(default)]
    pub sha256: Option<String>,
    /// MD5 of the package file (hex).
    #[serde(default)]
    pub md5: Option<String>,
    /// Size of the package file in bytes.
    #[serde(default)]
    pub size: Option<u64>,
    /// The licence as the recipe wrote it (usually SPDX).
    #[serde(default)]
    pub license: Option<String>,
    /// When the package was built (milliseconds, or seconds in old records).
    #[serde(default, deserialize_with = "lenient_timestamp")]
    pub timestamp: Option<i64>,
    /// When the channel indexed it (CEP-47), preferred over `timestamp` where present.
    #[serde(default, deserialize_with = "lenient_timestamp")]
    pub indexed_timestamp: Option<i64>,
}

impl RecordFacts {
    /// When the record was published, in seconds since 1970: its `indexed_timestamp`
    /// (CEP-47) where present, else its `timestamp`. conda writes milliseconds; values small
    /// enough to be seconds (old records) are read as seconds, as conda itself does.
    pub fn published_seconds(&self) -> Option<i64> {
        let raw = self.indexed_timestamp.or(self.timestamp)?;
        Some(if raw > 253_402_300_799 {
            raw / 1000
        } else {
            raw
        })
    }
}

/// A timestamp that may be written as an integer or a float; anything else counts as absent.
fn lenient_timestamp<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<i64>, D::Error> {
    let value = Option::<serde_json::Number>::deserialize(deserializer).unwrap_or(None);
    Ok(value.and_then(|number| {
        number
            .as_i64()
            .or_else(|| number.as_f64().map(|float| float as i64))
    }))
}

/// One package record of the document.
#[derive(Debug, Clone)]
pub struct Record {
    /// Its file name (the key in `packages` or `packages.conda`).
    pub filename: String,
    /// True for a `.conda` file (listed under `packages.conda`).
    pub conda_format: bool,
    /// The summary.
    pub facts: RecordFacts,
    span: Range<usize>,
}

/// A parsed `repodata.json`: the upstream bytes and every record's summary.
#[derive(Debug)]
pub struct RepoData {
    bytes: Vec<u8>,
    /// Top-level members other than the two package maps, in document order.
    others: Vec<(String, Range<usize>)>,
    records: Vec<Record>,
}

fn span_of(document: &[u8], raw: &RawValue) -> Range<usize> {
    let start = raw.get().as_ptr() as usize - document.as_ptr() as usize;
    start..start + raw.get().len()
}

impl RepoData {
    /// Reads a `repodata.json`. Records whose summary cannot be read (no name or version) are
    /// left out, with their file names returned so the caller can log them.
    pub fn parse(bytes: Vec<u8>) -> Result<(RepoData, Vec<String>), RepoDataError> {
        let malformed = |error: serde_json::Error| RepoDataError::Malformed(error.to_string());
        let mut others = Vec::new();
        let mut records = Vec::new();
        let mut skipped = Vec::new();
        {
            let top: BTreeMap<String, &RawValue> =
                serde_json::from_slice(&bytes).map_err(malformed)?;
            let mut ordered: Vec<(&String, &&RawValue)> = top.iter().collect();
            ordered.sort_by_key(|(_, raw)| raw.get().as_ptr() as usize);
            for (key, raw) in ordered {
                let conda_format = match key.as_str() {
                    "packages" => false,
                    "packages.conda" => true,
                    _ => {
                        others.push((key.clone(), span_of(&bytes, raw)));
                        continue;
                    }
                };
                let map: BTreeMap<String, &RawValue> =
                    serde_json::from_str(raw.get()).map_err(malformed)?;
                for (filename, record) in map {
                    match serde_json::from_str::<RecordFacts>(record.get()) {
                        Ok(facts) if is_package_filename(&filename) => records.push(Record {
                            span: span_of(&bytes, record),
                            filename,
                            conda_format,
                            facts,
                        }),
                        _ => skipped.push(filename),
                    }
                }
            }
        }
        // Sorted by format, then file name, so a file is found by binary search.
        records.sort_by(|left, right| {
            (left.conda_format, &left.filename).cmp(&(right.conda_format, &right.filename))
        });
        Ok((
            RepoData {
                bytes,
                others,
                records,
            },
            skipped,
        ))
    }

    /// Every record.
    pub fn records(&self) -> &[Record] {
        &self.records
    }

    /// The record of a file, by name.
    pub fn record(&self, filename: &str) -> Option<&Record> {
        let conda_format = filename.ends_with(".conda");
        self.records
            .binary_search_by(|record| {
                (record.conda_format, record.filename.as_str()).cmp(&(conda_format, filename))
            })
            .ok()
            .map(|index| &self.records[index])
    }

    /// A record's JSON, exactly as upstream wrote it.
    pub fn raw_record(&self, record: &Record) -> &[u8] {
        &self.bytes[record.span.clone()]
    }

    /// The upstream bytes, exactly as fetched.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The document with only the records `keep` accepts, `info.base_url` dropped, and every
    /// other member as upstream wrote it.
    pub fn render(&self, mut keep: impl FnMut(&Record) -> bool) -> Vec<u8> {
        self.render_indexed(|_, record| keep(record))
    }

    /// The document with only the records whose index in [`RepoData::records`] is `true` in
    /// `kept` (a record past its end is left out), as [`RepoData::render`] writes it.
    pub fn render_kept(&self, kept: &[bool]) -> Vec<u8> {
        self.render_indexed(|index, _| kept.get(index).copied().unwrap_or(false))
    }

    fn render_indexed(&self, mut keep: impl FnMut(usize, &Record) -> bool) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.bytes.len());
        out.push(b'{');
        let mut first = true;
        let mut member = |out: &mut Vec<u8>, key: &str| {
            if !first {
                out.push(b',');
            }
            first = false;
            out.extend_from_slice(
                serde_json::to_string(key)
                    .unwrap_or_else(|_| "\"\"".to_owned())
                    .as_bytes(),
            );
            out.push(b':');
        };
        for (key, span) in &self.others {
            member(&mut out, key);
            let raw = &self.bytes[span.clone()];
            if key == "info" {
                out.extend_from_slice(&without_base_url(raw));
            } else {
                out.extend_from_slice(raw);
            }
        }
        for (key, conda_format) in [("packages", false), ("packages.conda", true)] {
            member(&mut out, key);
            out.push(b'{');
            let mut first_record = true;
            for (index, record) in self
                .records
                .iter()
                .enumerate()
                .filter(|(_, record)| record.conda_format == conda_format)
            {
                if !keep(index, record) {
                    continue;
                }
                if !first_record {
                    out.push(b',');
                }
                first_record = false;
                out.extend_from_slice(
                    serde_json::to_string(&record.filename)
                        .unwrap_or_default()
                        .as_bytes(),
                );
                out.push(b':');
                out.extend_from_slice(&self.bytes[record.span.clone()]);
            }
            out.push(b'}');
        }
        out.push(b'}');
        out
    }
}

/// `info` without `base_url` (CEP-15): package URLs then resolve next to the repodata the
/// client fetched, which is the gateway.
fn without_base_url(raw: &[u8]) -> Vec<u8> {
    match serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(raw) {
        Ok(mut info) if info.contains_key("base_url") => {
            info.remove("base_url");
            serde_json::to_vec(&info).unwrap_or_else(|_| raw.to_vec())
        }
        _ => raw.to_vec(),
    }
}

/// True for a conda package file name: ends in `.conda` or `.tar.bz2`, with no path
/// separators, no leading dot and only printable ASCII.
pub fn is_package_filename(name: &str) -> bool {
    (name.ends_with(".conda") || name.ends_with(".tar.bz2"))
        && name.len() <= 255
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|byte| byte.is_ascii_graphic() && !matches!(byte, b'/' | b'\\' | b'%'))
}

/// True for a plausible subdirectory name (`noarch`, `linux-64`, `osx-arm64`, `win-64`).
pub fn is_subdir(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 32
        && name
            .bytes()
            .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-')
        && !name.starts_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOCUMENT: &str = r#"{"info":{"subdir":"noarch","base_url":"https://up.example/ch/"},
      "packages":{"six-1.16.0-pyh6c4a22f_0.tar.bz2":{"name":"six","version":"1.16.0","build":"pyh6c4a22f_0","depends":["python"],"sha256":"aa","size":14259,"timestamp":1620240338000,"license":"MIT","x-unknown":{"kept":true}}},
      "packages.conda":{"six-1.17.0-pyhd8ed1ab_0.conda":{"name":"six","version":"1.17.0","build":"pyhd8ed1ab_0","sha256":"bb","size":16385,"timestamp":1733253167000,"indexed_timestamp":1733253200123},
                        "broken-1.0-0.conda":{"version":"1.0"}},
      "removed":["old-1.0-0.tar.bz2"],"repodata_version":1}"#;

    #[test]
    fn reads_records_and_keeps_unknown_fields_when_rendering() {
        let (repodata, skipped) = RepoData::parse(DOCUMENT.as_bytes().to_vec()).unwrap();
        assert_eq!(skipped, vec!["broken-1.0-0.conda".to_owned()]);
        assert_eq!(repodata.records().len(), 2);
        let newer = repodata.record("six-1.17.0-pyhd8ed1ab_0.conda").unwrap();
        assert!(newer.conda_format);
        assert_eq!(newer.facts.published_seconds(), Some(1_733_253_200));
        let rendered = repodata.render(|_| true);
        let value: serde_json::Value = serde_json::from_slice(&rendered).unwrap();
        assert_eq!(value["info"], serde_json::json!({"subdir": "noarch"}));
        assert_eq!(
            value["packages"]["six-1.16.0-pyh6c4a22f_0.tar.bz2"]["x-unknown"]["kept"],
            true
        );
        assert_eq!(value["removed"][0], "old-1.0-0.tar.bz2");
        assert_eq!(value["repodata_version"], 1);
    }

    #[test]
    fn leaves_out_records_not_kept() {
        let (repodata, _) = RepoData::parse(DOCUMENT.as_bytes().to_vec()).unwrap();
        let rendered = repodata.render(|record| record.facts.version != "1.17.0");
        let value: serde_json::Value = serde_json::from_slice(&rendered).unwrap();
        assert_eq!(value["packages.conda"], serde_json::json!({}));
        assert!(value["packages"]["six-1.16.0-pyh6c4a22f_0.tar.bz2"].is_object());
    }

    #[test]
    fn hostile_names_are_not_package_files() {
        assert!(is_package_filename("six-1.16.0-pyh6c4a22f_0.tar.bz2"));
        assert!(!is_package_filename("../etc/passwd.conda"));
        assert!(!is_package_filename("a%2fb.conda"));
        assert!(!is_package_filename("six.whl"));
        assert!(is_subdir("linux-64") && is_subdir("noarch"));
        assert!(!is_subdir("..") && !is_subdir("Linux-64"));
    }

    #[test]
    fn rejects_documents_that_are_not_objects() {
        assert!(RepoData::parse(b"[1,2]".to_vec()).is_err());
        assert!(RepoData::parse(b"{\"packages\":[]}".to_vec()).is_err());
    }
}
