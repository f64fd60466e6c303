//! The upstream `repodata.json` as kept in the store's `upstream_documents`, so a restart with
//! the upstream down serves the same document: zstd-compressed and cut into parts of a few
//! megabytes, each base64-encoded in a row of its own (scope [`PARTS_SCOPE`]), and a small row
//! under the document's own key naming them (`zstd+base64-parts:v1:<slot>:<count>:<sha256>`).
//! Written and read a part at a time, the document is never held whole in memory, nor copied
//! whole by the database driver, the database and the local copy (each holds a part at a time).
//!
//! The parts of a new document go to the slot (0 or 1) the current row does not name, and the
//! row naming them is written last: a kill while the parts are written leaves the previous
//! document readable. The SHA-256 of the compressed stream is in the row and checked when the
//! parts are read back (and zstd's own checksum is on), so parts mixed up by another writer are
//! refused, not served. Documents stored whole by earlier versions (compressed or plain) still
//! read.

use std::io::{self, Read, Write};
use std::sync::Arc;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use formulary_core::ecosystems::conda::{RepoData, RepoDataError};
use formulary_store::{Database, StoreError, UpstreamDocument};
use sha2::Digest;

use super::spool::{self, SpoolFolder};
use super::view::blocking;

/// Starts blocking work at once; its result when awaited (a panic in it propagates).
fn spawn_blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> impl std::future::Future<Output = T> {
    let handle = tokio::task::spawn_blocking(work);
    async move {
        match handle.await {
            Ok(value) => value,
            Err(error) => std::panic::resume_unwind(error.into_panic()),
        }
    }
}
use crate::error::GatewayError;

/// The scope of the parts' rows.
pub(crate) const PARTS_SCOPE: &str = "conda-parts";

/// How the row naming the parts starts.
const PARTS_PREFIX: &str = "zstd+base64-parts:v1:";

/// Compressed bytes per part.
const PART_BYTES: usize = 4 << 20;

/// The zstd level of the stored copy.
const LEVEL: i32 = 3;

/// Where a stored document's parts are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Parts {
    /// 0 or 1.
    pub(crate) slot: u8,
    count: usize,
    sha256: [u8; 32],
}

impl Parts {
    fn read(text: &str) -> Option<Parts> {
        let mut fields = text.strip_prefix(PARTS_PREFIX)?.split(':');
        let slot = fields.next()?.parse().ok().filter(|slot| *slot <= 1)?;
        let count = fields.next()?.parse().ok()?;
        let mut sha256 = [0; 32];
        hex::decode_to_slice(fields.next()?, &mut sha256).ok()?;
        fields.next().is_none().then_some(Parts {
            slot,
            count,
            sha256,
        })
    }

    fn write(&self) -> String {
        format!(
            "{PARTS_PREFIX}{}:{}:{}",
            self.slot,
            self.count,
            hex::encode(self.sha256)
        )
    }
}

fn part_key(key: &str, slot: u8, part: usize) -> String {
    format!("{key}#{slot}/{part}")
}

/// What is known of the upstream a stored document came from.
pub(crate) struct Origin<'a> {
    /// The upstream channel URL.
    pub(crate) upstream: &'a str,
    /// Its entity tag.
    pub(crate) etag: Option<String>,
    /// When it was fetched.
    pub(crate) fetched_at: DateTime<Utc>,
}

/// Collects compressed bytes into parts and hands each over when full.
struct PartWriter {
    sender: tokio::sync::mpsc::Sender<Vec<u8>>,
    part: Vec<u8>,
    hasher: sha2::Sha256,
}

impl PartWriter {
    fn send(&mut self) -> io::Result<()> {
        let part = std::mem::replace(&mut self.part, Vec::with_capacity(PART_BYTES));
        self.sender
            .blocking_send(part)
            .map_err(|_| io::Error::other("the store stopped taking the document's parts"))
    }
}

impl Write for PartWriter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let room = PART_BYTES - self.part.len();
        let taken = &bytes[..bytes.len().min(room)];
        self.part.extend_from_slice(taken);
        self.hasher.update(taken);
        if self.part.len() == PART_BYTES {
            self.send()?;
        }
        Ok(taken.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Stores a document in parts (see the module's documentation) under `key`, in the slot
/// `previous` does not name; the parts' description once every row is written.
pub(crate) async fn save(
    database: &Database,
    key: &str,
    origin: Origin<'_>,
    repodata: Arc<RepoData>,
    previous: Option<Parts>,
) -> Result<Parts, GatewayError> {
    let slot = previous.map_or(0, |parts| 1 - parts.slot);
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<Vec<u8>>(1);
    // Spawned now (not on first poll): it produces the parts this task stores.
    let compressing = spawn_blocking(move || {
        let writer = PartWriter {
            sender,
            part: Vec::with_capacity(PART_BYTES),
            hasher: sha2::Sha256::new(),
        };
        let mut encoder = zstd::stream::write::Encoder::new(writer, LEVEL)?;
        encoder.include_checksum(true)?;
        repodata.render_into(|_, _| true, false, &mut |chunk: &[u8]| {
            encoder.write_all(chunk)
        })?;
        let mut writer = encoder.finish()?;
        if !writer.part.is_empty() {
            writer.send()?;
        }
        Ok::<_, io::Error>(<[u8; 32]>::from(writer.hasher.finalize()))
    });
    let mut count = 0;
    let mut failed = None;
    while let Some(part) = receiver.recv().await {
        let row = UpstreamDocument {
            upstream: origin.upstream.to_owned(),
            document: base64::engine::general_purpose::STANDARD.encode(&part),
            etag: None,
            fetched_at: origin.fetched_at,
        };
        drop(part);
        if let Err(error) = database
            .save_upstream_document(PARTS_SCOPE, &part_key(key, slot, count), &row)
            .await
        {
            failed = Some(error);
            break;
        }
        count += 1;
    }
    drop(receiver);
    let compressed = compressing.await;
    if let Some(error) = failed {
        return Err(error.into());
    }
    let sha256 = compressed.map_err(|error| StoreError::Corrupt {
        what: "repodata.json to store",
        why: error.to_string(),
    })?;
    let parts = Parts {
        slot,
        count,
        sha256,
    };
    database
        .save_upstream_document(
            super::SCOPE,
            key,
            &UpstreamDocument {
                upstream: origin.upstream.to_owned(),
                document: parts.write(),
                etag: origin.etag,
                fetched_at: origin.fetched_at,
            },
        )
        .await?;
    Ok(parts)
}

/// Reads compressed parts handed over by the task reading them from the store.
struct PartReader {
    receiver: tokio::sync::mpsc::Receiver<io::Result<Vec<u8>>>,
    part: io::Cursor<Vec<u8>>,
    hasher: sha2::Sha256,
}

impl Read for PartReader {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        loop {
            let read = self.part.read(buffer)?;
            if read > 0 || buffer.is_empty() {
                self.hasher.update(&buffer[..read]);
                return Ok(read);
            }
            match self.receiver.blocking_recv() {
                Some(part) => self.part = io::Cursor::new(part?),
                None => return Ok(0),
            }
        }
    }
}

fn corrupt(why: impl std::fmt::Display) -> GatewayError {
    GatewayError::Store(StoreError::Corrupt {
        what: "cached repodata.json",
        why: why.to_string(),
    })
}

/// Feeds a stored document's compressed bytes to `consume` (run off the async threads) as its
/// parts are read from the store, and checks them against the row's SHA-256 at the end; a
/// document stored whole is read from its row.
async fn read_with<T: Send + 'static>(
    database: &Database,
    key: &str,
    stored: UpstreamDocument,
    consume: impl FnOnce(&mut dyn Read) -> io::Result<T> + Send + 'static,
) -> Result<T, GatewayError> {
    let Some(parts) = Parts::read(&stored.document) else {
        let text = stored.document;
        return blocking(move || consume(&mut spool::stored_reader(&text)?))
            .await
            .map_err(corrupt);
    };
    let (sender, receiver) = tokio::sync::mpsc::channel::<io::Result<Vec<u8>>>(1);
    // Spawned now (not on first poll): it takes the parts this task reads.
    let consuming = spawn_blocking(move || {
        let mut reader = PartReader {
            receiver,
            part: io::Cursor::new(Vec::new()),
            hasher: sha2::Sha256::new(),
        };
        let mut decoder = zstd::stream::read::Decoder::new(&mut reader)?;
        let consumed = consume(&mut decoder)?;
        drop(decoder);
        // What the decoder did not ask for still counts towards the digest.
        io::copy(&mut reader, &mut io::sink())?;
        Ok::<_, io::Error>((consumed, <[u8; 32]>::from(reader.hasher.finalize())))
    });
    for part in 0..parts.count {
        let read = match database
            .upstream_document(PARTS_SCOPE, &part_key(key, parts.slot, part))
            .await
        {
            Ok(Some(row)) => base64::engine::general_purpose::STANDARD
                .decode(row.document)
                .map_err(io::Error::other),
            Ok(None) => Err(io::Error::other(format!("part {part} is missing"))),
            Err(error) => Err(io::Error::other(error.to_string())),
        };
        let failed = read.is_err();
        if sender.send(read).await.is_err() || failed {
            break;
        }
    }
    drop(sender);
    let (consumed, sha256) = consuming.await.map_err(corrupt)?;
    if sha256 != parts.sha256 {
        return Err(corrupt(
            "its parts do not have the digest recorded with them",
        ));
    }
    Ok(consumed)
}

/// The stored document under `key` parsed into a spool file, with its row (whose `document`
/// names the parts) and where its parts are; `None` when nothing is stored.
pub(crate) async fn load(
    database: &Database,
    key: &str,
    folder: SpoolFolder,
) -> Result<Option<(UpstreamDocument, RepoData, Option<Parts>)>, GatewayError> {
    let Some(stored) = database.upstream_document(super::SCOPE, key).await? else {
        return Ok(None);
    };
    let parts = Parts::read(&stored.document);
    let row = UpstreamDocument {
        upstream: stored.upstream.clone(),
        document: String::new(),
        etag: stored.etag.clone(),
        fetched_at: stored.fetched_at,
    };
    let parsed = read_with(database, key, stored, move |reader| {
        folder
            .parse(reader)
            .map(|(repodata, _)| repodata)
            .map_err(|error| match error {
                RepoDataError::Store(error) => error,
                other => io::Error::other(other.to_string()),
            })
    })
    .await?;
    Ok(Some((row, parsed, parts)))
}

/// The stored document's bytes under `key` and its row (for the mirror import's merge).
pub(crate) async fn load_bytes(
    database: &Database,
    key: &str,
) -> Result<Option<(UpstreamDocument, Vec<u8>)>, GatewayError> {
    let Some(stored) = database.upstream_document(super::SCOPE, key).await? else {
        return Ok(None);
    };
    let row = UpstreamDocument {
        document: String::new(),
        ..stored.clone()
    };
    let bytes = read_with(database, key, stored, |reader| {
        let mut bytes = Vec::new();
        reader.read_to_end(&mut bytes)?;
        Ok(bytes)
    })
    .await?;
    Ok(Some((row, bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A document of `records` records, each with 64 random hex digits (about 10 MB for
    /// 100,000; 200,000 are more than one part once compressed).
    fn document(records: usize, version: &str) -> Vec<u8> {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut packages = serde_json::Map::new();
        for index in 0..records {
            let hash: String = (0..4)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    format!("{state:016x}")
                })
                .collect();
            packages.insert(
                format!("p{index}-{version}-0.tar.bz2"),
                serde_json::json!({"name": format!("p{index}"), "version": version, "build": "0", "sha256": hash}),
            );
        }
        serde_json::to_vec(&serde_json::json!({"info": {"subdir": "noarch"}, "packages": packages}))
            .expect("JSON")
    }

    fn origin() -> Origin<'static> {
        Origin {
            upstream: "https://upstream.example/ch/",
            etag: Some("\"e\"".to_owned()),
            fetched_at: Utc::now(),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_document_stored_in_parts_reads_back_and_a_spoiled_part_is_refused() {
        let folder = tempfile::tempdir().expect("a folder");
        let database = Database::open(&format!(
            "sqlite://{}",
            folder.path().join("store.db").display()
        ))
        .await
        .expect("SQLite");
        let spool = SpoolFolder::new(Some(folder.path()));
        let (first, _) = RepoData::parse(document(200_000, "1.0")).expect("parsed");
        let first = Arc::new(first);
        let parts = save(&database, "ch/noarch", origin(), Arc::clone(&first), None)
            .await
            .expect("stored");
        assert_eq!(parts.slot, 0);
        assert!(parts.count > 1, "{parts:?}");
        let (row, loaded, named) = load(&database, "ch/noarch", spool.clone())
            .await
            .expect("read")
            .expect("stored");
        assert_eq!(named, Some(parts));
        assert_eq!(row.etag.as_deref(), Some("\"e\""));
        assert_eq!(loaded.digest(), first.digest());
        assert_eq!(loaded.records().len(), 200_000);

        // The next document goes to the other slot; the previous one's parts stay until then.
        let (second, _) = RepoData::parse(document(10, "2.0")).expect("parsed");
        let later = save(
            &database,
            "ch/noarch",
            origin(),
            Arc::new(second),
            Some(parts),
        )
        .await
        .expect("stored");
        assert_eq!((later.slot, later.count), (1, 1));
        let (_, bytes) = load_bytes(&database, "ch/noarch")
            .await
            .expect("read")
            .expect("stored");
        let value: serde_json::Value = serde_json::from_slice(&bytes).expect("JSON");
        assert_eq!(value["packages"]["p3-2.0-0.tar.bz2"]["version"], "2.0");

        // A part replaced by another (here the first document's): refused, not served.
        let spoiled = database
            .upstream_document(PARTS_SCOPE, &part_key("ch/noarch", 0, 0))
            .await
            .expect("read")
            .expect("a part");
        database
            .save_upstream_document(PARTS_SCOPE, &part_key("ch/noarch", 1, 0), &spoiled)
            .await
            .expect("written");
        assert!(load(&database, "ch/noarch", spool.clone()).await.is_err());

        // A document stored whole by an earlier version still reads.
        let whole = UpstreamDocument {
            upstream: "https://upstream.example/ch/".to_owned(),
            document: String::from_utf8(document(3, "3.0")).expect("text"),
            etag: None,
            fetched_at: Utc::now(),
        };
        database
            .save_upstream_document(crate::conda::SCOPE, "ch/noarch", &whole)
            .await
            .expect("written");
        let (_, loaded, named) = load(&database, "ch/noarch", spool)
            .await
            .expect("read")
            .expect("stored");
        assert_eq!((loaded.records().len(), named), (3, None));
    }

    #[test]
    fn the_row_naming_the_parts_reads_back() {
        let parts = Parts {
            slot: 1,
            count: 17,
            sha256: [0xab; 32],
        };
        assert_eq!(Parts::read(&parts.write()), Some(parts));
        assert_eq!(Parts::read("zstd+base64:abc"), None);
        assert_eq!(Parts::read("{\"packages\":{}}"), None);
        assert_eq!(Parts::read(&parts.write().replace(":1:", ":2:")), None);
    }
}
