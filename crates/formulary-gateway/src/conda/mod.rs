//! The conda front-end (an adapter on the gateway engine): each configured channel maps to
//! upstream channel URLs; a subdirectory's `repodata.json` is fetched and revalidated through the
//! engine, served per view with denied records left out (conda resolvers then never choose
//! them), and package files (`.conda`, `.tar.bz2`) are pulled through the engine's file cache,
//! verified against the record's `sha256`, `md5` and `size` and opened as the package the
//! record describes ([`verify`]) before they are cached, and refused
//! with the reason when their version is denied (so an explicit pin cannot bypass the policy).

mod mirror;
mod notices;
mod passthrough;
mod shards;
mod spool;
mod spooled;
mod stored;
mod verify;
mod view;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use formulary_core::ecosystems::conda::{RepoData, MAX_REPODATA_BYTES};
use formulary_core::ecosystems::{Ecosystem, Version};
use formulary_core::policy::{Decision, PolicySnapshot, Release, View};
use formulary_core::Component;
use formulary_store::{Algorithm, BlobRef, BlobStore, Database, Digests};
use url::Url;

use crate::engine::documents::{Answer, Freshness, Lookup, Revalidated, Revalidating};
use crate::engine::files::{FileCache, UpstreamFile};
use crate::engine::upstream::{
    as_folders, Document, UpstreamClient, UpstreamFailure, UpstreamOptions,
};
use crate::engine::views::Views;
use crate::error::GatewayError;

pub use mirror::import_conda_folder;
pub use notices::{channel_notices, Notice, Notices};
pub use passthrough::{PassedThrough, SigsOutcome};
pub use shards::{parse_shard_filename, ShardedView, RETAIN as SHARD_RETENTION};
pub use view::{RepodataOutcome, ServedRepodata};

/// The cache scope of conda `repodata.json` documents (keyed `channel/subdir`).
pub const SCOPE: &str = "conda";

/// How long a built repodata is reused while nothing else changes: bounds how late time-based
/// rules (cooldown ends, pilot expiries) reach it.
const REPODATA_REUSE: Duration = Duration::from_secs(30);

/// One package of a subdirectory: its component and every release (one per version, however
/// many builds it has).
#[derive(Debug)]
pub(crate) struct Package {
    component: Component,
    releases: Vec<Release>,
}

/// What the gateway knows about one subdirectory of one channel.
#[derive(Debug)]
pub(crate) struct Subdir {
    freshness: Freshness,
    repodata: Arc<RepoData>,
    /// Packages by normalised name.
    packages: Arc<BTreeMap<String, Package>>,
    /// Each package name's shard with every record, encoded on first use (the lock is held
    /// while they are encoded, so views built at once encode them once).
    names: Arc<Mutex<Option<Arc<shards::NameShards>>>>,
    /// Where its copy in the store is (`None`: stored whole by an earlier version).
    stored: Option<stored::Parts>,
}

impl Revalidated for Subdir {
    fn freshness(&self) -> &Freshness {
        &self.freshness
    }

    fn with_freshness(&self, freshness: Freshness) -> Subdir {
        Subdir {
            freshness,
            repodata: Arc::clone(&self.repodata),
            packages: Arc::clone(&self.packages),
            names: Arc::clone(&self.names),
            stored: self.stored,
        }
    }
}

/// The moment a record was published, from its seconds.
fn moment(seconds: Option<i64>) -> Option<DateTime<Utc>> {
    seconds.and_then(|seconds| DateTime::from_timestamp(seconds, 0))
}

impl Subdir {
    fn new(freshness: Freshness, repodata: RepoData) -> Subdir {
        Subdir::from_shared(freshness, Arc::new(repodata))
    }

    fn from_shared(freshness: Freshness, repodata: Arc<RepoData>) -> Subdir {
        let mut packages: BTreeMap<String, Package> = BTreeMap::new();
        for record in repodata.records() {
            let Ok(component) = Component::new(Ecosystem::Conda, &record.name) else {
                continue;
            };
            let Ok(version) = Version::parse(Ecosystem::Conda, &record.version) else {
                continue;
            };
            let published = moment(record.published_seconds());
            let package = packages
                .entry(component.name.as_str().to_owned())
                .or_insert_with(|| Package {
                    component,
                    releases: Vec::new(),
                });
            match package
                .releases
                .iter_mut()
                .find(|release| release.version == version)
            {
                // A version with several builds was published when its first build was.
                Some(release) => {
                    if let Some(published) = published {
                        release.published = Some(
                            release
                                .published
                                .map_or(published, |seen| seen.min(published)),
                        );
                    }
                }
                None => package.releases.push(Release {
                    dated_by_first_sight: false,
                    version,
                    published,
                    yanked: None,
                    licence: record.license.as_deref().map(str::to_owned),
                    install_scripts: false,
                }),
            }
        }
        Subdir {
            freshness,
            repodata,
            packages: Arc::new(packages),
            names: Arc::default(),
            stored: None,
        }
    }

    fn with_stored(self, stored: Option<stored::Parts>) -> Subdir {
        Subdir { stored, ..self }
    }
}

/// The answer for a package file.
pub enum PackageFileOutcome {
    /// Serve this blob.
    Serve {
        /// Where it is stored.
        blob: BlobRef,
        /// The package's component.
        component: Component,
        /// The version it belongs to.
        version: String,
    },
    /// The policy denies the file's version.
    Refused(Box<Decision>),
    /// No such file in the subdirectory's repodata.
    Missing,
}

/// A package file's decision.
pub(crate) enum PackageDecision {
    /// No such file in the subdirectory.
    Missing,
    /// The view's decision on the file's version.
    Decided {
        /// The subdirectory the file is in.
        subdir: Arc<Subdir>,
        /// The decision.
        decision: Decision,
    },
}

/// The conda front-end's logic.
#[derive(Debug)]
pub struct CondaGateway {
    database: Database,
    client: UpstreamClient,
    channels: BTreeMap<String, Vec<Url>>,
    subdirs: Revalidating<Subdir>,
    channel_documents: Revalidating<passthrough::ChannelData>,
    files: FileCache,
    views: Views<RepodataOutcome>,
    retained: Arc<shards::RetainedShards>,
    spool: spool::SpoolFolder,
}

impl CondaGateway {
    /// A gateway over channels, each mapped to its upstream channel URLs (tried in order).
    pub fn new(
        database: Database,
        blobs: BlobStore,
        channels: BTreeMap<String, Vec<Url>>,
        options: &UpstreamOptions,
    ) -> Result<CondaGateway, reqwest::Error> {
        let channels = channels
            .into_iter()
            .map(|(name, upstreams)| (name, as_folders(upstreams)))
            .collect();
        let client = UpstreamClient::new(options.budget)?;
        Ok(CondaGateway {
            spool: spool::SpoolFolder::new(blobs.local_folder()),
            database: database.clone(),
            files: FileCache::new(database, blobs, client.clone()),
            client,
            channels,
            subdirs: Revalidating::new(options.revalidate_after, options.patience),
            channel_documents: Revalidating::new(options.revalidate_after, options.patience),
            views: Views::new(REPODATA_REUSE, 256),
            retained: Arc::default(),
        })
    }

    /// The configured channel names.
    pub fn channels(&self) -> impl Iterator<Item = &str> {
        self.channels.keys().map(String::as_str)
    }

    /// True when `channel` is configured.
    pub fn has_channel(&self, channel: &str) -> bool {
        self.channels.contains_key(channel)
    }

    /// A subdirectory's repodata, fetched or revalidated when its cached copy is old, served
    /// from the cache (marked stale) when every upstream fails; `None` when no upstream has it.
    pub(crate) async fn subdir(
        &self,
        channel: &str,
        subdir: &str,
    ) -> Result<Option<Arc<Subdir>>, GatewayError> {
        let Some(upstreams) = self.channels.get(channel) else {
            return Ok(None);
        };
        let key = format!("{channel}/{subdir}");
        if let Some(fresh) = self.subdirs.fresh(&key) {
            return Ok(Some(fresh));
        }
        let lookup = self
            .subdirs
            .get(
                &key,
                upstreams,
                Box::pin(self.load_cached(&key)),
                |upstream: Url, etag: Option<String>| {
                    let (client, subdir) = (self.client.clone(), subdir.to_owned());
                    let spool = self.spool.clone();
                    Box::pin(async move {
                        fetch(&client, &spool, &upstream, &subdir, etag.as_deref()).await
                    })
                },
                |upstream: Url, (repodata, etag): (RepoData, Option<String>), previous| {
                    let key = key.clone();
                    Box::pin(async move {
                        self.refresh(&key, &upstream, repodata, etag, previous)
                            .await
                    })
                },
            )
            .await?;
        Ok(match lookup {
            Lookup::Found(subdir) => Some(subdir),
            Lookup::Absent(_) => None,
        })
    }

    async fn load_cached(&self, key: &str) -> Result<Option<Subdir>, GatewayError> {
        let Some((row, repodata, parts)) =
            stored::load(&self.database, key, self.spool.clone()).await?
        else {
            return Ok(None);
        };
        let freshness = Freshness::stored(&row)?;
        Ok(Some(
            view::blocking(move || Subdir::new(freshness, repodata).with_stored(parts)).await,
        ))
    }

    /// Keeps a newly fetched repodata (as upstream wrote it) in the store, then makes it the
    /// subdirectory's.
    async fn refresh(
        &self,
        key: &str,
        upstream: &Url,
        repodata: RepoData,
        etag: Option<String>,
        previous: Option<Arc<Subdir>>,
    ) -> Result<Subdir, GatewayError> {
        let now = Utc::now();
        let repodata = Arc::new(repodata);
        let origin = stored::Origin {
            upstream: upstream.as_str(),
            etag: etag.clone(),
            fetched_at: now,
        };
        let previous_parts = previous.and_then(|previous| previous.stored);
        let parts = stored::save(
            &self.database,
            key,
            origin,
            Arc::clone(&repodata),
            previous_parts,
        )
        .await?;
        let freshness = Freshness::new(upstream.clone(), etag, now);
        Ok(view::blocking(move || {
            Subdir::from_shared(freshness, repodata).with_stored(Some(parts))
        })
        .await)
    }

    /// The decision on a package file's version for a view, with the subdirectory it is in.
    pub(crate) async fn decide(
        &self,
        snapshot: &PolicySnapshot,
        view: &View,
        channel: &str,
        subdir: &str,
        filename: &str,
    ) -> Result<PackageDecision, GatewayError> {
        let Some(cached) = self.subdir(channel, subdir).await? else {
            return Ok(PackageDecision::Missing);
        };
        let Some(record) = cached.repodata.record(filename) else {
            return Ok(PackageDecision::Missing);
        };
        let (Ok(component), Ok(version)) = (
            Component::new(Ecosystem::Conda, &record.name),
            Version::parse(Ecosystem::Conda, &record.version),
        ) else {
            return Ok(PackageDecision::Missing);
        };
        let releases = cached
            .packages
            .get(component.name.as_str())
            .map(|package| package.releases.as_slice())
            .unwrap_or_default();
        let decision = formulary_core::policy::evaluate_version(
            snapshot, view, &component, &version, releases,
        );
        Ok(PackageDecision::Decided {
            subdir: cached,
            decision,
        })
    }

    /// A package file for a view: refused when its version is denied, else served from the
    /// blob store, fetched once from upstream and checked against the record's `sha256`, `md5`
    /// and `size` when not cached.
    pub async fn package_file(
        &self,
        snapshot: &PolicySnapshot,
        view: &View,
        channel: &str,
        subdir: &str,
        filename: &str,
    ) -> Result<PackageFileOutcome, GatewayError> {
        let (cached, decision) = match self
            .decide(snapshot, view, channel, subdir, filename)
            .await?
        {
            PackageDecision::Missing => return Ok(PackageFileOutcome::Missing),
            PackageDecision::Decided { subdir, decision } => (subdir, decision),
        };
        if !decision.allowed {
            return Ok(PackageFileOutcome::Refused(Box::new(decision)));
        }
        let Some(record) = cached.repodata.record(filename) else {
            return Ok(PackageFileOutcome::Missing);
        };
        let upstream = &cached.freshness.origin;
        let unreadable = |why: String| UpstreamFailure::Malformed {
            url: format!("{upstream}{subdir}/repodata.json"),
            why: format!("the record of {filename} cannot be read back: {why}"),
        };
        let facts = cached
            .repodata
            .facts(record)
            .map_err(|error| unreadable(error.to_string()))?;
        let raw = cached
            .repodata
            .raw_record(record)
            .map_err(|error| unreadable(error.to_string()))?;
        let url = upstream
            .join(&format!("{subdir}/{filename}"))
            .map_err(|error| UpstreamFailure::Malformed {
                url: upstream.to_string(),
                why: error.to_string(),
            })?;
        let file = UpstreamFile {
            url: url.as_str(),
            filename,
            digests: published_digests(&facts),
            size: facts.size,
            check: verify::check_for(filename, &raw),
        };
        let blob = self.files.fetch(&file).await?;
        Ok(PackageFileOutcome::Serve {
            blob,
            component: decision.component.clone(),
            version: facts.version,
        })
    }
}

/// Every digest a record publishes (`sha256`, `md5`); malformed ones are logged and left out.
fn published_digests(facts: &formulary_core::ecosystems::conda::RecordFacts) -> Digests {
    let mut digests = Digests::none();
    for (algorithm, hex) in [
        (Algorithm::Sha256, facts.sha256.as_deref()),
        (Algorithm::Md5, facts.md5.as_deref()),
    ] {
        let Some(hex) = hex else { continue };
        match digests.clone().with(algorithm, hex) {
            Ok(more) => digests = more,
            Err(error) => {
                tracing::warn!(package = %facts.name, version = %facts.version, %error, "ignoring a malformed digest in repodata.json")
            }
        }
    }
    digests
}

/// Asks one upstream channel for a subdirectory's `repodata.json` (with the cached copy's
/// entity tag). The body goes to a spool file as it arrives and is read from there into
/// another (the records), so the document is never held in memory whole.
async fn fetch(
    client: &UpstreamClient,
    spool: &spool::SpoolFolder,
    upstream: &Url,
    subdir: &str,
    etag: Option<&str>,
) -> Result<Answer<(RepoData, Option<String>)>, UpstreamFailure> {
    let url = upstream
        .join(&format!("{subdir}/repodata.json"))
        .map_err(|error| UpstreamFailure::Malformed {
            url: upstream.to_string(),
            why: error.to_string(),
        })?;
    let local = |error: std::io::Error| UpstreamFailure::Unreachable {
        url: url.to_string(),
        why: format!("the document could not be written to local disk: {error}"),
    };
    let mut download = tokio::fs::File::from_std(spool.file().map_err(local)?);
    Ok(
        match client
            .document_to(&url, etag, MAX_REPODATA_BYTES, &mut download)
            .await?
        {
            Document::Missing => Answer::Missing,
            Document::NotModified => Answer::NotModified,
            Document::Body { etag, .. } => {
                let mut download = download.into_std().await;
                std::io::Seek::rewind(&mut download).map_err(local)?;
                let folder = spool.clone();
                let (repodata, skipped) = view::blocking(move || folder.parse(download))
                    .await
                    .map_err(|error| UpstreamFailure::Malformed {
                        url: url.to_string(),
                        why: error.to_string(),
                    })?;
                if !skipped.is_empty() {
                    tracing::warn!(%url, skipped = skipped.len(), first = %skipped[0], "left out records of repodata.json that have no name or version");
                }
                Answer::Document((repodata, etag))
            }
        },
    )
}
