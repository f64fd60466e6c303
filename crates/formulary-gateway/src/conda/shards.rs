//! CEP-16 sharded repodata per view, built from the same upstream `repodata.json` and the same
//! decisions as the view's `repodata.json` (one source of truth): a denied record is absent from
//! its shard, so a shard's hash is per view. Each package name's shard with every record is
//! encoded once per upstream document and shared by every view that keeps all of that name's
//! records; a view that withholds some gets its own. Shards are kept in anonymous spool files
//! ([`Spooled`]), not in memory, and read back when asked for. Shards a view has stopped naming
//! stay addressable for [`RETAIN`] (their files stay open while anything names them), so a
//! client that fetched an index just before a policy change never gets a 404 for a shard it was
//! told about.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use formulary_core::ecosystems::conda::{encode_index, encode_shard, RepoData, ShardError};

use super::spool::SpoolFolder;
use super::spooled::{Span, Spooled};
use crate::engine::rendered::Rendered;

/// How long a shard stays addressable after the last index that named it was built.
pub const RETAIN: Duration = Duration::from_secs(3600);

/// Where one encoded shard is: its file (shared between views) and its place in it.
#[derive(Debug, Clone)]
pub(crate) struct StoredShard {
    file: Arc<Spooled>,
    span: Span,
}

impl StoredShard {
    /// The shard's bytes, read from its file.
    pub(crate) fn read(&self) -> io::Result<Bytes> {
        self.file.read(self.span)
    }
}

/// A full shard's hash and where it is in its file.
type FullShard = ([u8; 32], Span);

/// One package name of a subdirectory: its records and where its shard with all of them is.
#[derive(Debug)]
struct NameShard {
    /// Indexes into [`RepoData::records`].
    records: Vec<u32>,
    /// `None` when no record of the name could be encoded.
    full: Option<FullShard>,
}

/// Every package name's full shard of one upstream document, in one spool file.
#[derive(Debug)]
pub(crate) struct NameShards {
    names: BTreeMap<Arc<str>, NameShard>,
    file: Arc<Spooled>,
}

fn log_skipped(subdir: &str, skipped: &[ShardError]) {
    if let Some(first) = skipped.first() {
        tracing::warn!(subdir, skipped = skipped.len(), first = %first, "left records out of conda shards");
    }
}

/// Encodes the shard of `indexes` and writes it to `file`: `None` when none of its records
/// could be encoded; an error when the file cannot be written.
fn encode(
    repodata: &RepoData,
    subdir: &str,
    indexes: &[u32],
    file: &Spooled,
) -> io::Result<Option<FullShard>> {
    let records = indexes
        .iter()
        .map(|&index| &repodata.records()[index as usize]);
    match encode_shard(repodata, records) {
        Ok((shard, skipped)) => {
            log_skipped(subdir, &skipped);
            if skipped.len() < indexes.len() {
                Ok(Some((shard.sha256, file.append(&shard.bytes)?)))
            } else {
                Ok(None)
            }
        }
        Err(error) => {
            tracing::error!(subdir, %error, "cannot encode a conda shard");
            Ok(None)
        }
    }
}

impl NameShards {
    /// Groups the records by package name and encodes each name's shard into a new spool file,
    /// on every core.
    pub(crate) fn build(
        repodata: &RepoData,
        subdir: &str,
        folder: &SpoolFolder,
    ) -> io::Result<NameShards> {
        let mut grouped: BTreeMap<Arc<str>, Vec<u32>> = BTreeMap::new();
        for (index, record) in repodata.records().iter().enumerate() {
            grouped
                .entry(Arc::clone(&record.name))
                .or_default()
                .push(index as u32);
        }
        let grouped: Vec<(Arc<str>, Vec<u32>)> = grouped.into_iter().collect();
        let file = Spooled::new(folder)?;
        let threads = std::thread::available_parallelism().map_or(1, usize::from);
        let chunk = grouped.len().div_ceil(threads).max(1);
        let encoded: Vec<io::Result<Vec<Option<FullShard>>>> = std::thread::scope(|scope| {
            let workers: Vec<_> = grouped
                .chunks(chunk)
                .map(|names| {
                    let file = &file;
                    scope.spawn(move || {
                        names
                            .iter()
                            .map(|(_, indexes)| encode(repodata, subdir, indexes, file))
                            .collect::<io::Result<Vec<_>>>()
                    })
                })
                .collect();
            workers
                .into_iter()
                .map(|worker| {
                    worker
                        .join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
                })
                .collect()
        });
        let mut full = Vec::with_capacity(grouped.len());
        for worker in encoded {
            full.extend(worker?);
        }
        Ok(NameShards {
            names: grouped
                .into_iter()
                .zip(full)
                .map(|((name, records), full)| (name, NameShard { records, full }))
                .collect(),
            file: Arc::new(file),
        })
    }
}

/// A view's sharded repodata: the compressed index and where the shards it names are.
#[derive(Debug)]
pub struct ShardedView {
    /// `repodata_shards.msgpack.zst`.
    pub index: Rendered,
    shards: HashMap<[u8; 32], StoredShard>,
}

/// Why a view's sharded repodata could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ShardBuildError {
    /// The index could not be encoded (clients then fall back to `repodata.json`).
    #[error(transparent)]
    Encoding(#[from] ShardError),
    /// A shard could not be written to (or read from) local disk.
    #[error("cannot write conda shards to local disk: {0}")]
    Disk(#[from] io::Error),
}

impl ShardedView {
    /// Builds the view's shards: a name all of whose records the view keeps shares the full
    /// shard; a name with some withheld gets a shard of the rest (written to a spool file of
    /// the view's own); a name with none kept is left out of the index. Package URLs
    /// (`base_url`) and shards (`shards_base_url`) are relative, so clients resolve them
    /// against the index they fetched from the gateway.
    pub(crate) fn build(
        repodata: &RepoData,
        names: &NameShards,
        kept: &[bool],
        subdir: &str,
        folder: &SpoolFolder,
    ) -> Result<ShardedView, ShardBuildError> {
        let mut shards = HashMap::with_capacity(names.names.len());
        let mut named: Vec<(&str, [u8; 32])> = Vec::with_capacity(names.names.len());
        let mut own: Option<Arc<Spooled>> = None;
        for (name, shard) in &names.names {
            let indexes: Vec<u32> = shard
                .records
                .iter()
                .copied()
                .filter(|&index| kept.get(index as usize).copied().unwrap_or(false))
                .collect();
            let chosen = if indexes.is_empty() {
                None
            } else if indexes.len() == shard.records.len() {
                shard.full.map(|(sha256, span)| {
                    let file = Arc::clone(&names.file);
                    (sha256, StoredShard { file, span })
                })
            } else {
                let file = match &own {
                    Some(file) => Arc::clone(file),
                    None => Arc::clone(own.insert(Arc::new(Spooled::new(folder)?))),
                };
                encode(repodata, subdir, &indexes, &file)?
                    .map(|(sha256, span)| (sha256, StoredShard { file, span }))
            };
            if let Some((sha256, stored)) = chosen {
                named.push((&**name, sha256));
                shards.insert(sha256, stored);
            }
        }
        let index = encode_index(
            subdir,
            "./",
            "./shards/",
            named.iter().map(|(name, hash)| (*name, hash)),
        )?;
        Ok(ShardedView {
            index: Rendered::new(index),
            shards,
        })
    }

    /// Where the shard named `sha256` is, when this view's index names it.
    pub(crate) fn shard(&self, sha256: &[u8; 32]) -> Option<StoredShard> {
        self.shards.get(sha256).cloned()
    }

    /// How many shards the index names.
    pub fn len(&self) -> usize {
        self.shards.len()
    }

    /// True when the index names no shard.
    pub fn is_empty(&self) -> bool {
        self.shards.is_empty()
    }
}

/// Shards of one view, by hash, with when an index last named each.
type Retained = HashMap<[u8; 32], (StoredShard, Instant)>;

/// Shards of earlier indexes and each view's latest index.
#[derive(Debug, Default)]
struct Held {
    /// By view id.
    shards: HashMap<String, Retained>,
    /// Each view's latest index, with the number of the build that made it.
    latest: HashMap<String, (u64, Arc<ShardedView>)>,
}

/// Shards of earlier indexes, per view document, kept for [`RETAIN`] after the last index that
/// named them (their spool files stay open while one is kept), and each view's latest index
/// (served while a newer one builds).
#[derive(Debug, Default)]
pub(crate) struct RetainedShards {
    held: Mutex<Held>,
}

impl RetainedShards {
    fn lock(&self) -> std::sync::MutexGuard<'_, Held> {
        self.held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Remembers every shard of a view's new index (and forgets those not named for
    /// [`RETAIN`]); the index becomes the view's latest unless a later build's already is.
    pub(crate) fn remember(&self, view: &str, sequence: u64, built: &Arc<ShardedView>) {
        let now = Instant::now();
        let mut held = self.lock();
        for shards in held.shards.values_mut() {
            shards.retain(|_, (_, at)| now.duration_since(*at) < RETAIN);
        }
        held.shards.retain(|_, shards| !shards.is_empty());
        let shards = held.shards.entry(view.to_owned()).or_default();
        for (sha256, stored) in &built.shards {
            shards.insert(*sha256, (stored.clone(), now));
        }
        let newer = held
            .latest
            .get(view)
            .is_none_or(|(known, _)| *known <= sequence);
        if newer {
            held.latest
                .insert(view.to_owned(), (sequence, Arc::clone(built)));
        }
    }

    /// Where a shard an earlier index of the view named is.
    pub(crate) fn get(&self, view: &str, sha256: &[u8; 32]) -> Option<StoredShard> {
        self.lock()
            .shards
            .get(view)
            .and_then(|shards| shards.get(sha256))
            .map(|(stored, _)| stored.clone())
    }

    /// The view's latest index.
    pub(crate) fn latest(&self, view: &str) -> Option<Arc<ShardedView>> {
        self.lock()
            .latest
            .get(view)
            .map(|(_, built)| Arc::clone(built))
    }
}

/// Reads a shard file name (`<64 hex>.msgpack.zst`) into its hash.
pub fn parse_shard_filename(filename: &str) -> Option<[u8; 32]> {
    let hex = filename.strip_suffix(".msgpack.zst")?;
    if hex.len() != 64 || !hex.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        return None;
    }
    let mut hash = [0u8; 32];
    hex::decode_to_slice(hex.to_ascii_lowercase(), &mut hash).ok()?;
    Some(hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOCUMENT: &str = r#"{"info":{"subdir":"noarch"},"packages":{
      "a-1.0-0.tar.bz2":{"name":"a","version":"1.0","build":"0","build_number":0},
      "a-2.0-0.tar.bz2":{"name":"a","version":"2.0","build":"0","build_number":0},
      "b-1.0-0.tar.bz2":{"name":"b","version":"1.0","build":"0","build_number":0}}}"#;

    #[test]
    fn views_share_full_shards_and_withheld_records_change_the_hash() {
        let (repodata, _) = RepoData::parse(DOCUMENT.as_bytes().to_vec()).unwrap();
        let folder = tempfile::tempdir().unwrap();
        let spool = SpoolFolder::new(Some(folder.path()));
        let names = NameShards::build(&repodata, "noarch", &spool).unwrap();
        let everything =
            ShardedView::build(&repodata, &names, &[true, true, true], "noarch", &spool).unwrap();
        assert_eq!(everything.len(), 2);
        // a-2.0 withheld: a's shard changes, b's is shared; nothing of b withheld.
        let fewer =
            ShardedView::build(&repodata, &names, &[true, false, true], "noarch", &spool).unwrap();
        assert_eq!(fewer.len(), 2);
        let common = everything
            .shards
            .keys()
            .filter(|hash| fewer.shards.contains_key(*hash))
            .count();
        assert_eq!(common, 1);
        assert_ne!(everything.index.etag, fewer.index.etag);
        // Nothing of b kept: b is not in the index.
        let no_b =
            ShardedView::build(&repodata, &names, &[true, true, false], "noarch", &spool).unwrap();
        assert_eq!(no_b.len(), 1);
        // Retained shards of an earlier index stay addressable.
        let (everything, fewer) = (Arc::new(everything), Arc::new(fewer));
        let retained = RetainedShards::default();
        retained.remember("view", 1, &everything);
        retained.remember("view", 2, &fewer);
        for hash in everything.shards.keys() {
            let kept = retained
                .get("view", hash)
                .expect("retained")
                .read()
                .unwrap();
            assert_eq!(kept, everything.shard(hash).unwrap().read().unwrap());
            // Content-addressed: the name is the hash of the bytes read back from the spool.
            use sha2::Digest;
            assert_eq!(<[u8; 32]>::from(sha2::Sha256::digest(&kept)), *hash);
            assert!(!zstd::stream::decode_all(&kept[..]).unwrap().is_empty());
            assert!(retained.get("another view", hash).is_none());
        }
        // The latest index is the latest build's, whichever finished last.
        retained.remember("view", 1, &everything);
        let latest = retained.latest("view").unwrap();
        assert_eq!(latest.index.etag, fewer.index.etag);
        assert!(retained.latest("another view").is_none());
    }

    #[test]
    fn shard_file_names_are_hex_hashes() {
        let name = format!("{}.msgpack.zst", "Ab".repeat(32));
        assert_eq!(parse_shard_filename(&name), Some([0xab; 32]));
        assert_eq!(parse_shard_filename("ab.msgpack.zst"), None);
        assert_eq!(
            parse_shard_filename(&format!("{}.json", "ab".repeat(32))),
            None
        );
        assert_eq!(
            parse_shard_filename(&format!("{}.msgpack.zst", "zz".repeat(32))),
            None
        );
    }
}
