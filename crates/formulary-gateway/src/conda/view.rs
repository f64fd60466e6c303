//! A subdirectory's `repodata.json` for one view: every record whose version the view denies
//! is left out, so a conda solver never chooses it; everything else is upstream's bytes. A view
//! is its decisions (which records it keeps); the document is streamed from the records when
//! asked for (never held whole), its `repodata.json.zst` compressed once on first use, and its
//! sharded repodata (CEP-16) built from the same decisions, so all three change together. While
//! a view's new shard index is built (after a policy change or a new upstream document), the
//! previous one is served, and its shards stay addressable.

use std::collections::{HashMap, HashSet};
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use chrono::NaiveDate;
use formulary_core::ecosystems::{Ecosystem, Version};
use formulary_core::policy::{evaluate_releases, PolicySnapshot, View};
use futures::Stream;
use sha2::Digest;

use super::shards::{NameShards, RetainedShards, ShardBuildError, ShardedView, StoredShard};
use super::spool::SpoolFolder;
use super::spooled::SpooledDocument;
use super::{CondaGateway, Subdir};
use crate::engine::views::{Sources, ViewKey};
use crate::error::GatewayError;

/// A repodata ready to serve for one view.
#[derive(Debug)]
pub struct ServedRepodata {
    /// The entity tag of the filtered `repodata.json` (from the upstream document's digest and
    /// the records kept: the same pair always renders the same bytes).
    pub etag: String,
    /// True when the upstream could not be reached and the document comes from the cache.
    pub stale: bool,
    /// How many records the view withholds.
    pub withheld: usize,
    /// How many records it serves.
    pub served: usize,
    /// Which records (by index in the upstream document) the view keeps.
    kept: Vec<bool>,
    /// The upstream subdirectory it was built from.
    subdir: Arc<Subdir>,
    /// The subdirectory's name (`noarch`, `linux-64`).
    subdir_name: String,
    /// Names the view's retained shards (`channel/subdir`, organisation, day).
    view_id: String,
    /// Orders the builds of a view (a later build's index replaces an earlier one's).
    sequence: u64,
    /// `repodata.json.zst`, compressed on first use into a spool file.
    zst: OnceLock<Arc<SpooledDocument>>,
    /// Held while `zst` is compressed: one compression per build, however many requests ask
    /// for it at once (each would otherwise compress the whole document).
    compressing: std::sync::Mutex<()>,
    /// The sharded repodata, built on first use (`None` when it could not be encoded; a disk
    /// that fails leaves it unset, so a later request tries again).
    sharded: OnceLock<Option<Arc<ShardedView>>>,
    /// Held while `sharded` is built (one build per view build).
    sharding: std::sync::Mutex<()>,
    /// True while a background build of `sharded` runs.
    building: AtomicBool,
}

/// The zstd level of `repodata.json.zst` (conda-forge's).
const ZST_LEVEL: i32 = 3;

/// Numbers view builds in the order they happen.
static SEQUENCE: AtomicU64 = AtomicU64::new(0);

/// Runs CPU-bound work off the async threads (a panic in it propagates as if inline).
pub(super) async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(work).await {
        Ok(value) => value,
        Err(error) => std::panic::resume_unwind(error.into_panic()),
    }
}

/// The answer for a `repodata.json`.
#[derive(Debug, Clone)]
pub enum RepodataOutcome {
    /// Serve this document.
    Repodata(Arc<ServedRepodata>),
    /// The channel is not configured, or no upstream has the subdirectory.
    Missing,
}

impl CondaGateway {
    /// The `repodata.json` of a channel's subdirectory for a view (its records decided off the
    /// async threads when the view is built or rebuilt).
    pub async fn repodata(
        &self,
        snapshot: &Arc<PolicySnapshot>,
        generation: i64,
        view: &View,
        day: Option<NaiveDate>,
        channel: &str,
        subdir: &str,
    ) -> Result<RepodataOutcome, GatewayError> {
        let Some(cached) = self.subdir(channel, subdir).await? else {
            return Ok(RepodataOutcome::Missing);
        };
        let key = ViewKey {
            document: format!("{channel}/{subdir}"),
            organisation: view.organisation.clone(),
            day,
        };
        let source: Arc<dyn std::any::Any + Send + Sync> = cached.clone();
        let sources = Sources::new(generation, vec![source]);
        if let Some(outcome) = self.views.reusable(&key, &sources) {
            return Ok(RepodataOutcome::clone(&outcome));
        }
        let previous_key = key.clone();
        let outcome = self
            .views
            .get_or_build(key, sources, async {
                let started = std::time::Instant::now();
                let view_id = format!(
                    "{}\u{0}{}\u{0}{:?}",
                    previous_key.document, previous_key.organisation, day
                );
                let previous = self.views.previous(&previous_key);
                let (snapshot, view, subdir_name) =
                    (Arc::clone(snapshot), view.clone(), subdir.to_owned());
                let built = blocking(move || {
                    build(&snapshot, &view, &cached, &subdir_name, view_id, previous)
                })
                .await;
                tracing::debug!(
                    channel,
                    subdir,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "built a view's repodata.json"
                );
                Ok::<_, GatewayError>(built)
            })
            .await?;
        Ok(RepodataOutcome::clone(&outcome))
    }
}

impl ServedRepodata {
    /// The view's `repodata.json`, rendered from the records as it is sent (about a megabyte at
    /// a time; a record that cannot be read back from the spool ends the stream with an error).
    pub fn json_stream(
        self: &Arc<Self>,
    ) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
        let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
        let served = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let rendered = served.subdir.repodata.render_into(
                |index, _| served.kept.get(index).copied().unwrap_or(false),
                true,
                &mut |chunk: &[u8]| {
                    sender
                        .blocking_send(Ok(Bytes::copy_from_slice(chunk)))
                        .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))
                },
            );
            if let Err(error) = rendered {
                // A broken pipe is the client going away; anything else is the spool failing.
                if error.kind() != std::io::ErrorKind::BrokenPipe {
                    tracing::error!(subdir = %served.subdir_name, %error, "cannot render repodata.json");
                    let _ = sender.blocking_send(Err(error));
                }
            }
        });
        futures::stream::unfold(receiver, |mut receiver| async move {
            receiver.recv().await.map(|item| (item, receiver))
        })
    }
}

/// The entity tag of a view's `repodata.json`: the upstream document's digest and the records
/// kept.
fn entity_tag(digest: &[u8; 32], kept: &[bool]) -> String {
    let mut hasher = sha2::Sha256::new();
    hasher.update(b"conda repodata.json view 1\0");
    hasher.update(digest);
    for byte in kept.chunks(8).map(|bits| {
        bits.iter()
            .enumerate()
            .fold(0u8, |byte, (at, kept)| byte | (u8::from(*kept) << at))
    }) {
        hasher.update([byte]);
    }
    format!("\"{}\"", hex::encode(hasher.finalize()))
}

impl CondaGateway {
    /// The view's `repodata.json.zst`: its `repodata.json`, zstd-compressed once as it is
    /// rendered into a spool file (with its own entity tag), then sent from there. An error
    /// when local disk fails (nothing is kept, so a later request tries again).
    pub async fn repodata_zst(
        &self,
        served: &Arc<ServedRepodata>,
    ) -> std::io::Result<Arc<SpooledDocument>> {
        if let Some(zst) = served.zst.get() {
            return Ok(Arc::clone(zst));
        }
        let (served, folder) = (Arc::clone(served), self.spool.clone());
        blocking(move || {
            let _compressing = served
                .compressing
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(zst) = served.zst.get() {
                return Ok(Arc::clone(zst));
            }
            let started = std::time::Instant::now();
            let mut compressor =
                zstd::stream::write::Encoder::new(SpooledDocument::writer(&folder)?, ZST_LEVEL)?;
            served.subdir.repodata.render_into(
                |index, _| served.kept.get(index).copied().unwrap_or(false),
                true,
                &mut |chunk: &[u8]| compressor.write_all(chunk),
            )?;
            let compressed = Arc::new(SpooledDocument::finish(compressor.finish()?)?);
            tracing::debug!(
                subdir = %served.subdir_name,
                elapsed_ms = started.elapsed().as_millis() as u64,
                bytes = compressed.len(),
                "compressed a view's repodata.json"
            );
            Ok(Arc::clone(served.zst.get_or_init(|| compressed)))
        })
        .await
    }

    /// The view's sharded repodata (CEP-16), built from the same decisions as its
    /// `repodata.json`; `None` when it cannot be encoded (the index then answers 404 and
    /// clients fall back to `repodata.json`), an error when local disk fails. When an earlier
    /// build of the view has an index, that one is answered while this one builds in the
    /// background (a policy change or a new upstream document never makes clients wait for
    /// every shard to be encoded); the first build of a view is waited for.
    pub async fn sharded(
        &self,
        served: &Arc<ServedRepodata>,
    ) -> std::io::Result<Option<Arc<ShardedView>>> {
        if let Some(sharded) = served.sharded.get() {
            return Ok(sharded.clone());
        }
        if let Some(previous) = self.retained.latest(&served.view_id) {
            if !served.building.swap(true, Ordering::SeqCst) {
                let (served, retained) = (Arc::clone(served), Arc::clone(&self.retained));
                let folder = self.spool.clone();
                tokio::task::spawn_blocking(move || {
                    if let Err(error) = build_sharded(&served, &retained, &folder) {
                        tracing::error!(subdir = %served.subdir_name, %error, "cannot build sharded repodata; the previous index is still served");
                    }
                    served.building.store(false, Ordering::SeqCst);
                });
            }
            return Ok(Some(previous));
        }
        let (served, retained) = (Arc::clone(served), Arc::clone(&self.retained));
        let folder = self.spool.clone();
        blocking(move || build_sharded(&served, &retained, &folder)).await
    }

    /// A shard of the view: one its current index names, or one an index of the last
    /// [`super::SHARD_RETENTION`] named (so a client that fetched the index just before a policy
    /// change still gets it), read from its spool file.
    pub async fn shard(
        &self,
        served: &Arc<ServedRepodata>,
        sha256: &[u8; 32],
    ) -> std::io::Result<Option<Bytes>> {
        let stored: Option<StoredShard> = match self.sharded(served).await? {
            Some(sharded) => sharded.shard(sha256),
            None => None,
        };
        match stored.or_else(|| self.retained.get(&served.view_id, sha256)) {
            // A shard is a few kilobytes, read from the page cache: a read in place costs
            // less than handing it to a blocking thread.
            Some(stored) => stored.read().map(Some),
            None => Ok(None),
        }
    }
}

/// Builds (once) a view's sharded repodata and makes it the view's latest index; an error
/// (nothing kept) when local disk fails.
fn build_sharded(
    served: &ServedRepodata,
    retained: &RetainedShards,
    folder: &SpoolFolder,
) -> std::io::Result<Option<Arc<ShardedView>>> {
    let _sharding = served
        .sharding
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(sharded) = served.sharded.get() {
        return Ok(sharded.clone());
    }
    let started = std::time::Instant::now();
    let subdir = &served.subdir;
    let names = {
        let mut names = subdir
            .names
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match &*names {
            Some(names) => Arc::clone(names),
            None => {
                let built = Arc::new(NameShards::build(
                    &subdir.repodata,
                    &served.subdir_name,
                    folder,
                )?);
                Arc::clone(names.insert(built))
            }
        }
    };
    let built = ShardedView::build(
        &subdir.repodata,
        &names,
        &served.kept,
        &served.subdir_name,
        folder,
    );
    tracing::debug!(
        subdir = %served.subdir_name,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "built a view's sharded repodata"
    );
    let built = match built {
        Ok(built) => {
            let built = Arc::new(built);
            retained.remember(&served.view_id, served.sequence, &built);
            Some(built)
        }
        Err(ShardBuildError::Disk(error)) => return Err(error),
        Err(error) => {
            tracing::error!(subdir = %served.subdir_name, %error, "cannot build sharded repodata; clients fall back to repodata.json");
            None
        }
    };
    Ok(served.sharded.get_or_init(|| built).clone())
}

/// Decides every version of every package in the subdirectory (a dated view does not see
/// records published after its day): which records the view keeps. When the view's previous
/// build came from the same upstream document and keeps the same records (the common case when
/// it is rebuilt only because it aged, or because a policy change concerned other packages),
/// that build is answered again: its bytes are the same, and its `.zst` and sharded repodata,
/// already built, are not built again.
fn build(
    snapshot: &PolicySnapshot,
    view: &View,
    subdir: &Arc<Subdir>,
    subdir_name: &str,
    view_id: String,
    previous: Option<Arc<RepodataOutcome>>,
) -> RepodataOutcome {
    let mut allowed: HashMap<&str, HashSet<String>> = HashMap::with_capacity(subdir.packages.len());
    for (name, package) in subdir.packages.iter() {
        let decisions = evaluate_releases(snapshot, view, &package.component, &package.releases);
        let versions = package
            .releases
            .iter()
            .zip(&decisions)
            .filter(|(_, decision)| decision.allowed)
            .map(|(release, _)| release.version.to_string())
            .collect();
        allowed.insert(name.as_str(), versions);
    }
    let (mut served, mut withheld) = (0, 0);
    // Each distinct (name, version) is parsed once, however many builds it has (names and
    // versions are shared between a package's records, so the key borrows them).
    let mut decided: HashMap<(&str, &str), bool> = HashMap::new();
    let kept: Vec<bool> = subdir
        .repodata
        .records()
        .iter()
        .map(|record| {
            let visible = super::moment(record.published_seconds()).is_none_or(|at| at <= view.at);
            let keep = visible
                && *decided
                    .entry((&*record.name, &*record.version))
                    .or_insert_with(|| {
                        let name = record.name.to_ascii_lowercase();
                        Version::parse(Ecosystem::Conda, &record.version)
                            .ok()
                            .zip(allowed.get(name.as_str()))
                            .is_some_and(|(version, versions)| {
                                versions.contains(&version.to_string())
                            })
                    });
            if keep {
                served += 1;
            } else {
                withheld += 1;
            }
            keep
        })
        .collect();
    drop(decided);
    if let Some(RepodataOutcome::Repodata(previous)) = previous.as_deref() {
        // The same upstream document (a revalidation that changed nothing shares it).
        if Arc::ptr_eq(&previous.subdir.repodata, &subdir.repodata)
            && previous.stale == subdir.freshness.stale
            && previous.view_id == view_id
            && previous.kept == kept
        {
            return RepodataOutcome::Repodata(Arc::clone(previous));
        }
    }
    RepodataOutcome::Repodata(Arc::new(ServedRepodata {
        etag: entity_tag(subdir.repodata.digest(), &kept),
        stale: subdir.freshness.stale,
        withheld,
        served,
        kept,
        subdir: Arc::clone(subdir),
        subdir_name: subdir_name.to_owned(),
        view_id,
        sequence: SEQUENCE.fetch_add(1, Ordering::SeqCst),
        zst: OnceLock::new(),
        compressing: std::sync::Mutex::new(()),
        sharded: OnceLock::new(),
        sharding: std::sync::Mutex::new(()),
        building: AtomicBool::new(false),
    }))
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use formulary_core::ecosystems::conda::RepoData;
    use formulary_core::{OrgCode, Organisation};

    use super::*;
    use crate::engine::documents::{Freshness, Revalidated};

    // Two packages published in 2020 and 2024 (timestamps in milliseconds).
    const DOCUMENT: &str = r#"{"info":{"subdir":"noarch"},"packages":{
      "a-1.0-0.tar.bz2":{"name":"a","version":"1.0","build":"0","build_number":0,"timestamp":1577836800000},
      "b-1.0-0.tar.bz2":{"name":"b","version":"1.0","build":"0","build_number":0,"timestamp":1704067200000}}}"#;

    fn served(outcome: &RepodataOutcome) -> &Arc<ServedRepodata> {
        match outcome {
            RepodataOutcome::Repodata(served) => served,
            RepodataOutcome::Missing => panic!("no repodata"),
        }
    }

    #[test]
    fn a_rebuild_that_keeps_the_same_records_answers_the_previous_build() {
        let organisation: OrgCode = "RJ1".parse().unwrap();
        let snapshot = PolicySnapshot::new(
            [Organisation {
                code: organisation.clone(),
                name: "Trust".to_owned(),
            }],
            [],
            [],
            [],
        );
        let (repodata, _) = RepoData::parse(DOCUMENT.as_bytes().to_vec()).unwrap();
        let origin = url::Url::parse("https://upstream.example/conda-forge/").unwrap();
        let subdir = Arc::new(Subdir::new(
            Freshness::new(origin, None, Utc::now()),
            repodata,
        ));
        let now = View {
            organisation,
            at: Utc::now(),
        };
        let first = build(&snapshot, &now, &subdir, "noarch", "v".to_owned(), None);
        assert_eq!(served(&first).served, 2);
        // Rebuilt (it aged, or the upstream answered 304): the same build, its shards kept.
        let revalidated = Arc::new(subdir.rechecked(Utc::now(), false));
        let again = build(
            &snapshot,
            &now,
            &revalidated,
            "noarch",
            "v".to_owned(),
            Some(Arc::new(first.clone())),
        );
        assert!(Arc::ptr_eq(served(&first), served(&again)));
        // Other records kept (a view dated before b was published): a new build.
        let dated = View {
            at: Utc.with_ymd_and_hms(2022, 1, 1, 0, 0, 0).unwrap(),
            ..now.clone()
        };
        let fewer = build(
            &snapshot,
            &dated,
            &subdir,
            "noarch",
            "v".to_owned(),
            Some(Arc::new(first.clone())),
        );
        assert!(!Arc::ptr_eq(served(&first), served(&fewer)));
        assert_eq!((served(&fewer).served, served(&fewer).withheld), (1, 1));
        assert_ne!(served(&fewer).etag, served(&first).etag);
        // The upstream marked unreachable: a new build (it says so in its headers).
        let stale = Arc::new(subdir.rechecked(Utc::now(), true));
        let marked = build(
            &snapshot,
            &now,
            &stale,
            "noarch",
            "v".to_owned(),
            Some(Arc::new(first.clone())),
        );
        assert!(served(&marked).stale);
        assert!(!Arc::ptr_eq(served(&first), served(&marked)));
    }
}
