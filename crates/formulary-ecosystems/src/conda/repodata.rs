//! A subdirectory's `repodata.json`, read once into a small summary of each record plus the
//! records' bytes (kept in a [`RecordStore`]: memory, or a spool file the caller provides so a
//! document of hundreds of megabytes is not held in memory), and written back with chosen
//! records left out. Records are copied byte for byte (timestamps, hashes, dependencies and any
//! field this code does not know pass through untouched); the only other change is that
//! `info.base_url` is dropped, so package URLs resolve against the gateway and no client is
//! sent past it.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;
use std::io::{self, Read, Write};
use std::ops::Range;
use std::sync::Arc;

use serde::de::{DeserializeSeed, Error as _, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;
use sha2::Digest;

/// Largest `repodata.json` accepted from an upstream (conda-forge's linux-64 is a few hundred
/// megabytes uncompressed).
pub const MAX_REPODATA_BYTES: usize = 1 << 30;

/// How much of the record bytes a render reads at a time.
const WINDOW: u64 = 4 << 20;

/// Why a `repodata.json` could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RepoDataError {
    /// The document is not the JSON object conda expects.
    #[error("repodata.json is not valid: {0}")]
    Malformed(String),
    /// The records could not be written to or read from their store.
    #[error("cannot keep repodata.json's records: {0}")]
    Store(#[from] io::Error),
}

/// Where a parsed document's bytes (its records and other top-level members) are kept.
pub trait RecordStore: Send + Sync + fmt::Debug {
    /// How many bytes are stored.
    fn len(&self) -> u64;
    /// True when nothing is stored.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The bytes in `range`.
    fn read(&self, range: Range<u64>) -> io::Result<Cow<'_, [u8]>>;
}

impl RecordStore for Vec<u8> {
    fn len(&self) -> u64 {
        self.as_slice().len() as u64
    }

    fn read(&self, range: Range<u64>) -> io::Result<Cow<'_, [u8]>> {
        let (start, end) = (to_usize(range.start)?, to_usize(range.end)?);
        self.get(start..end).map(Cow::Borrowed).ok_or_else(|| {
            io::Error::new(io::ErrorKind::UnexpectedEof, "past the end of the records")
        })
    }
}

fn to_usize(offset: u64) -> io::Result<usize> {
    usize::try_from(offset).map_err(|_| io::Error::other("offset too large"))
}

/// What the gateway needs to know about one package record, read from its JSON when asked
/// ([`RepoData::facts`]); the record itself stays as upstream wrote it.
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

/// One package record of the document: what policy needs, small (names, versions and
/// licences are shared between records); the rest is read from its bytes when asked.
#[derive(Debug, Clone)]
pub struct Record {
    /// Its file name (the key in `packages` or `packages.conda`).
    pub filename: Box<str>,
    /// True for a `.conda` file (listed under `packages.conda`).
    pub conda_format: bool,
    /// The package name, as written.
    pub name: Arc<str>,
    /// The version, as written.
    pub version: Arc<str>,
    /// The licence, as written.
    pub license: Option<Arc<str>>,
    published: Option<i64>,
    start: u64,
    len: u32,
}

impl Record {
    /// When the record was published, in seconds (see [`RecordFacts::published_seconds`]).
    pub fn published_seconds(&self) -> Option<i64> {
        self.published
    }

    fn span(&self) -> Range<u64> {
        self.start..self.start + u64::from(self.len)
    }
}

/// A parsed `repodata.json`: every record's summary, in document order, and their bytes.
#[derive(Debug)]
pub struct RepoData {
    store: Box<dyn RecordStore>,
    /// Top-level members other than the two package maps, in document order.
    others: Vec<(String, Range<u64>)>,
    records: Vec<Record>,
    /// Indexes into `records`, sorted by format then file name (to find a file).
    sorted: Vec<u32>,
    /// SHA-256 over the other members, then each section's file names and records, in the order
    /// a render writes them: equal digests, equal renders (wherever the sections were).
    digest: [u8; 32],
}

/// Collects records while the document is read, writing their bytes to the spool.
struct Collector<'w> {
    spool: &'w mut dyn Write,
    written: u64,
    others: Vec<(String, Range<u64>)>,
    records: Vec<Record>,
    skipped: Vec<String>,
    interned: HashSet<Arc<str>>,
    /// Digests of the other members, the `packages` records and the `packages.conda` records
    /// (what a render writes, in the order it writes them).
    hashers: [sha2::Sha256; 3],
}

impl Collector<'_> {
    fn put(&mut self, raw: &str) -> io::Result<Range<u64>> {
        self.spool.write_all(raw.as_bytes())?;
        let start = self.written;
        self.written += raw.len() as u64;
        Ok(start..self.written)
    }

    fn intern(&mut self, text: &str) -> Arc<str> {
        if let Some(known) = self.interned.get(text) {
            return Arc::clone(known);
        }
        let shared: Arc<str> = Arc::from(text);
        self.interned.insert(Arc::clone(&shared));
        shared
    }

    fn record(&mut self, filename: String, conda_format: bool, raw: &RawValue) -> io::Result<()> {
        let facts = match serde_json::from_str::<RecordFacts>(raw.get()) {
            Ok(facts) if is_package_filename(&filename) => facts,
            _ => {
                self.skipped.push(filename);
                return Ok(());
            }
        };
        let Ok(len) = u32::try_from(raw.get().len()) else {
            self.skipped.push(filename);
            return Ok(());
        };
        let hasher = &mut self.hashers[1 + usize::from(conda_format)];
        hasher.update(filename.as_bytes());
        hasher.update(b"\0");
        hasher.update(raw.get().as_bytes());
        hasher.update(b"\0");
        let span = self.put(raw.get())?;
        let record = Record {
            filename: filename.into_boxed_str(),
            conda_format,
            name: self.intern(&facts.name),
            version: self.intern(&facts.version),
            license: facts.license.as_deref().map(|license| self.intern(license)),
            published: facts.published_seconds(),
            start: span.start,
            len,
        };
        self.records.push(record);
        Ok(())
    }
}

/// The top-level object.
struct Top<'c, 'w>(&'c mut Collector<'w>);

impl<'de> Visitor<'de> for Top<'_, '_> {
    type Value = ();

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a repodata.json object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "packages" | "packages.conda" => map.next_value_seed(Section {
                    collector: &mut *self.0,
                    conda_format: key == "packages.conda",
                })?,
                _ => {
                    let raw: Box<RawValue> = map.next_value()?;
                    let hasher = &mut self.0.hashers[0];
                    hasher.update(key.as_bytes());
                    hasher.update(b"\0");
                    hasher.update(raw.get().as_bytes());
                    hasher.update(b"\0");
                    let span = self.0.put(raw.get()).map_err(A::Error::custom)?;
                    self.0.others.push((key, span));
                }
            }
        }
        Ok(())
    }
}

/// `packages` or `packages.conda`: file name to record.
struct Section<'c, 'w> {
    collector: &'c mut Collector<'w>,
    conda_format: bool,
}

impl<'de> DeserializeSeed<'de> for Section<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Section<'_, '_> {
    type Value = ();

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("an object of package records")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(filename) = map.next_key::<String>()? {
            let raw: Box<RawValue> = map.next_value()?;
            self.collector
                .record(filename, self.conda_format, &raw)
                .map_err(A::Error::custom)?;
        }
        Ok(())
    }
}

impl RepoData {
    /// Reads a `repodata.json` held in memory. Records whose summary cannot be read (no name or
    /// version) are left out, with their file names returned so the caller can log them.
    pub fn parse(bytes: Vec<u8>) -> Result<(RepoData, Vec<String>), RepoDataError> {
        let mut spool = Vec::with_capacity(bytes.len());
        let parts = {
            let mut deserializer = serde_json::Deserializer::from_slice(&bytes);
            let parts = collect(&mut deserializer, &mut spool)?;
            deserializer
                .end()
                .map_err(|error| RepoDataError::Malformed(error.to_string()))?;
            parts
        };
        drop(bytes);
        Ok(RepoData::from_parts(parts, Box::new(spool)))
    }

    /// Reads a `repodata.json` as it streams from `reader`, writing the records' bytes to
    /// `spool` (flushed before this returns) and keeping them in `store`, which reads back what
    /// was written to `spool` (the same file, typically): the document is never held in memory.
    pub fn parse_reader(
        reader: impl Read,
        spool: &mut dyn Write,
        store: Box<dyn RecordStore>,
    ) -> Result<(RepoData, Vec<String>), RepoDataError> {
        let mut deserializer = serde_json::Deserializer::from_reader(reader);
        let parts = collect(&mut deserializer, &mut *spool)?;
        deserializer
            .end()
            .map_err(|error| RepoDataError::Malformed(error.to_string()))?;
        spool.flush()?;
        Ok(RepoData::from_parts(parts, store))
    }

    fn from_parts(
        (others, records, skipped, digest): Parts,
        store: Box<dyn RecordStore>,
    ) -> (RepoData, Vec<String>) {
        let mut sorted: Vec<u32> = (0..records.len() as u32).collect();
        sorted.sort_by(|&left, &right| {
            let (left, right) = (&records[left as usize], &records[right as usize]);
            (left.conda_format, &left.filename).cmp(&(right.conda_format, &right.filename))
        });
        (
            RepoData {
                store,
                others,
                records,
                sorted,
                digest,
            },
            skipped,
        )
    }

    /// SHA-256 over the document's members, file names and records as read: two documents with
    /// the same digest render the same bytes.
    pub fn digest(&self) -> &[u8; 32] {
        &self.digest
    }

    /// Every record, in document order.
    pub fn records(&self) -> &[Record] {
        &self.records
    }

    /// The record of a file, by name.
    pub fn record(&self, filename: &str) -> Option<&Record> {
        let conda_format = filename.ends_with(".conda");
        self.sorted
            .binary_search_by(|&index| {
                let record = &self.records[index as usize];
                (record.conda_format, &*record.filename).cmp(&(conda_format, filename))
            })
            .ok()
            .map(|found| &self.records[self.sorted[found] as usize])
    }

    /// A record's JSON, exactly as upstream wrote it.
    pub fn raw_record(&self, record: &Record) -> io::Result<Cow<'_, [u8]>> {
        self.store.read(record.span())
    }

    /// A record's facts (hashes, size, …), read from its JSON.
    pub fn facts(&self, record: &Record) -> Result<RecordFacts, RepoDataError> {
        serde_json::from_slice(&self.raw_record(record)?)
            .map_err(|error| RepoDataError::Malformed(error.to_string()))
    }

    /// The document with only the records `keep` accepts, `info.base_url` dropped, and every
    /// other member as upstream wrote it.
    pub fn render(&self, mut keep: impl FnMut(&Record) -> bool) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        self.render_into(|_, record| keep(record), true, &mut |chunk: &[u8]| {
            out.extend_from_slice(chunk);
            Ok::<(), io::Error>(())
        })?;
        Ok(out)
    }

    /// The document with only the records whose index in [`RepoData::records`] is `true` in
    /// `kept` (a record past its end is left out), as [`RepoData::render`] writes it.
    pub fn render_kept(&self, kept: &[bool]) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        self.render_into(
            |index, _| kept.get(index).copied().unwrap_or(false),
            true,
            &mut |chunk: &[u8]| {
                out.extend_from_slice(chunk);
                Ok::<(), io::Error>(())
            },
        )?;
        Ok(out)
    }

    /// Writes the document, in chunks of about a megabyte, to `sink`: the records `keep`
    /// accepts (given their index in [`RepoData::records`]), every other member as upstream
    /// wrote it, `info.base_url` dropped when `drop_base_url`.
    pub fn render_into(
        &self,
        mut keep: impl FnMut(usize, &Record) -> bool,
        drop_base_url: bool,
        sink: &mut dyn FnMut(&[u8]) -> io::Result<()>,
    ) -> io::Result<()> {
        const CHUNK: usize = 1 << 20;
        let mut out = Vec::with_capacity(CHUNK + (64 << 10));
        let mut window = Window::new(&*self.store);
        out.push(b'{');
        let mut first = true;
        let member = |out: &mut Vec<u8>, first: &mut bool, key: &str| {
            if !*first {
                out.push(b',');
            }
            *first = false;
            write_key(out, key);
        };
        for (key, span) in &self.others {
            member(&mut out, &mut first, key);
            let raw = window.get(span.clone())?;
            if key == "info" && drop_base_url {
                out.extend_from_slice(&without_base_url(raw));
            } else {
                out.extend_from_slice(raw);
            }
        }
        for (key, conda_format) in [("packages", false), ("packages.conda", true)] {
            member(&mut out, &mut first, key);
            out.push(b'{');
            let mut first_record = true;
            for (index, record) in self.records.iter().enumerate() {
                if record.conda_format != conda_format || !keep(index, record) {
                    continue;
                }
                if !first_record {
                    out.push(b',');
                }
                first_record = false;
                write_key(&mut out, &record.filename);
                out.extend_from_slice(window.get(record.span())?);
                if out.len() >= CHUNK {
                    sink(&out)?;
                    out.clear();
                }
            }
            out.push(b'}');
        }
        out.push(b'}');
        sink(&out)
    }
}

fn write_key(out: &mut Vec<u8>, key: &str) {
    out.extend_from_slice(
        serde_json::to_string(key)
            .unwrap_or_else(|_| "\"\"".to_owned())
            .as_bytes(),
    );
    out.push(b':');
}

/// Reads the store a window at a time (records are rendered in the order they were stored).
struct Window<'s> {
    store: &'s dyn RecordStore,
    at: u64,
    bytes: Cow<'s, [u8]>,
}

impl<'s> Window<'s> {
    fn new(store: &'s dyn RecordStore) -> Window<'s> {
        Window {
            store,
            at: 0,
            bytes: Cow::Borrowed(&[]),
        }
    }

    fn get(&mut self, span: Range<u64>) -> io::Result<&[u8]> {
        let held = self.at..self.at + self.bytes.len() as u64;
        if span.start < held.start || span.end > held.end {
            let end = span.end.max(span.start + WINDOW).min(self.store.len());
            self.bytes = self.store.read(span.start..end.max(span.end))?;
            self.at = span.start;
        }
        let from = to_usize(span.start - self.at)?;
        let to = to_usize(span.end - self.at)?;
        self.bytes.get(from..to).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "a record past the end of the store",
            )
        })
    }
}

type Parts = (
    Vec<(String, Range<u64>)>,
    Vec<Record>,
    Vec<String>,
    [u8; 32],
);

fn collect<'de, D>(deserializer: D, spool: &mut dyn Write) -> Result<Parts, RepoDataError>
where
    D: Deserializer<'de, Error = serde_json::Error>,
{
    let mut collector = Collector {
        spool,
        written: 0,
        others: Vec::new(),
        records: Vec::new(),
        skipped: Vec::new(),
        interned: HashSet::new(),
        hashers: Default::default(),
    };
    deserializer
        .deserialize_map(Top(&mut collector))
        .map_err(|error| match error.io_error_kind() {
            Some(kind) if error.is_io() => {
                RepoDataError::Store(io::Error::new(kind, error.to_string()))
            }
            _ => RepoDataError::Malformed(error.to_string()),
        })?;
    let mut digest = sha2::Sha256::new();
    for hasher in collector.hashers {
        digest.update(hasher.finalize());
    }
    Ok((
        collector.others,
        collector.records,
        collector.skipped,
        digest.finalize().into(),
    ))
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
        assert_eq!(newer.published_seconds(), Some(1_733_253_200));
        assert_eq!(repodata.facts(newer).unwrap().sha256.as_deref(), Some("bb"));
        let rendered = repodata.render(|_| true).unwrap();
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
        let rendered = repodata
            .render(|record| &*record.version != "1.17.0")
            .unwrap();
        let value: serde_json::Value = serde_json::from_slice(&rendered).unwrap();
        assert_eq!(value["packages.conda"], serde_json::json!({}));
        assert!(value["packages"]["six-1.16.0-pyh6c4a22f_0.tar.bz2"].is_object());
    }

    #[test]
    fn the_digest_follows_what_a_render_writes() {
        let (repodata, _) = RepoData::parse(DOCUMENT.as_bytes().to_vec()).unwrap();
        // The same document rendered (members first, then each section) has the same digest.
        let mut whole = Vec::new();
        repodata
            .render_into(|_, _| true, false, &mut |chunk: &[u8]| {
                whole.extend_from_slice(chunk);
                Ok::<(), io::Error>(())
            })
            .unwrap();
        let (again, _) = RepoData::parse(whole.clone()).unwrap();
        assert_eq!(again.digest(), repodata.digest());
        assert_ne!(
            whole,
            DOCUMENT.as_bytes(),
            "the members moved, the digest did not"
        );
        // Another record, another digest.
        let changed = DOCUMENT.replace("\"size\":14259", "\"size\":14260");
        let (other, _) = RepoData::parse(changed.into_bytes()).unwrap();
        assert_ne!(other.digest(), repodata.digest());
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
