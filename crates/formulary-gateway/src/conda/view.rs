//! A subdirectory's `repodata.json` for one view: every record whose version the view denies
//! is left out, so a conda solver never chooses it; everything else is upstream's bytes. The
//! same decisions give the view's `repodata.json.zst` and its sharded repodata (CEP-16), each
//! built on first use and kept with the document, so all three change together.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;

use chrono::NaiveDate;
use formulary_core::ecosystems::{Ecosystem, Version};
use formulary_core::policy::{evaluate_releases, PolicySnapshot, View};

use super::shards::{NameShards, ShardedView};
use super::{CondaGateway, Subdir};
use crate::engine::rendered::Rendered;
use crate::engine::views::{Sources, ViewKey};
use crate::error::GatewayError;

/// A repodata ready to serve for one view.
#[derive(Debug)]
pub struct ServedRepodata {
    /// The filtered `repodata.json`.
    pub json: Rendered,
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
    /// `repodata.json.zst`, compressed on first use.
    zst: OnceLock<Rendered>,
    /// The sharded repodata, built on first use (`None` when it could not be encoded).
    sharded: OnceLock<Option<Arc<ShardedView>>>,
}

/// The zstd level of `repodata.json.zst` (conda-forge's).
const ZST_LEVEL: i32 = 3;

/// Runs CPU-bound work off the async threads (a panic in it propagates as if inline).
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
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
    /// The `repodata.json` of a channel's subdirectory for a view.
    pub async fn repodata(
        &self,
        snapshot: &PolicySnapshot,
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
        let view_id = format!("{}\u{0}{}\u{0}{:?}", key.document, key.organisation, day);
        let source: Arc<dyn std::any::Any + Send + Sync> = cached.clone();
        let outcome = self
            .views
            .get_or_build(key, Sources::new(generation, vec![source]), async {
                let started = std::time::Instant::now();
                let built = build(snapshot, view, &cached, subdir, view_id);
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

impl CondaGateway {
    /// The view's `repodata.json.zst`: its `repodata.json`, zstd-compressed once (with its own
    /// entity tag).
    pub async fn repodata_zst(&self, served: &Arc<ServedRepodata>) -> Rendered {
        if let Some(zst) = served.zst.get() {
            return zst.clone();
        }
        let served = Arc::clone(served);
        blocking(move || {
            served
                .zst
                .get_or_init(|| {
                    let started = std::time::Instant::now();
                    let compressed = zstd::bulk::compress(&served.json.body, ZST_LEVEL)
                        .expect("zstd compresses a document held in memory");
                    tracing::debug!(
                        subdir = %served.subdir_name,
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "compressed a view's repodata.json"
                    );
                    Rendered::new(compressed)
                })
                .clone()
        })
        .await
    }

    /// The view's sharded repodata (CEP-16), built from the same decisions as its
    /// `repodata.json`; `None` when it cannot be encoded (the index then answers 404 and
    /// clients fall back to `repodata.json`).
    pub async fn sharded(&self, served: &Arc<ServedRepodata>) -> Option<Arc<ShardedView>> {
        if let Some(sharded) = served.sharded.get() {
            return sharded.clone();
        }
        let served = Arc::clone(served);
        let built = blocking(move || {
            served
                .sharded
                .get_or_init(|| {
                    let started = std::time::Instant::now();
                    let subdir = &served.subdir;
                    let names = subdir.names.get_or_init(|| {
                        Arc::new(NameShards::build(&subdir.repodata, &served.subdir_name))
                    });
                    let built = ShardedView::build(
                        &subdir.repodata,
                        names,
                        &served.kept,
                        &served.subdir_name,
                    );
                    tracing::debug!(
                        subdir = %served.subdir_name,
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "built a view's sharded repodata"
                    );
                    match built {
                        Ok(built) => Some(Arc::new(built)),
                        Err(error) => {
                            tracing::error!(subdir = %served.subdir_name, %error, "cannot build sharded repodata; clients fall back to repodata.json");
                            None
                        }
                    }
                })
                .clone()
                .map(|built| (built, served))
        })
        .await;
        let (built, served) = built?;
        self.retained.remember(&served.view_id, &built);
        Some(built)
    }

    /// A shard of the view: one its current index names, or one an index of the last
    /// [`super::SHARD_RETENTION`] named (so a client that fetched the index just before a policy
    /// change still gets it).
    pub async fn shard(&self, served: &Arc<ServedRepodata>, sha256: &[u8; 32]) -> Option<Bytes> {
        if let Some(bytes) = self
            .sharded(served)
            .await
            .and_then(|sharded| sharded.shard(sha256))
        {
            return Some(bytes);
        }
        self.retained.get(&served.view_id, sha256)
    }
}

/// Decides every version of every package in the subdirectory (a dated view does not see
/// records published after its day) and renders the document with the allowed records.
fn build(
    snapshot: &PolicySnapshot,
    view: &View,
    subdir: &Arc<Subdir>,
    subdir_name: &str,
    view_id: String,
) -> RepodataOutcome {
    let mut allowed: HashMap<&str, HashSet<String>> = HashMap::new();
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
    // Each distinct (name, version) is parsed once, however many builds it has.
    let mut decided: HashMap<(String, String), bool> = HashMap::new();
    let kept: Vec<bool> = subdir
        .repodata
        .records()
        .iter()
        .map(|record| {
            let facts = &record.facts;
            let visible = super::moment(facts.published_seconds()).is_none_or(|at| at <= view.at);
            let name = facts.name.to_ascii_lowercase();
            let keep = visible
                && *decided
                    .entry((name, facts.version.clone()))
                    .or_insert_with_key(|(name, version)| {
                        Version::parse(Ecosystem::Conda, version)
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
    RepodataOutcome::Repodata(Arc::new(ServedRepodata {
        json: Rendered::new(subdir.repodata.render_kept(&kept)),
        stale: subdir.freshness.stale,
        withheld,
        served,
        kept,
        subdir: Arc::clone(subdir),
        subdir_name: subdir_name.to_owned(),
        view_id,
        zst: OnceLock::new(),
        sharded: OnceLock::new(),
    }))
}
