//! The npm front-end (an adapter on the gateway engine): packuments from npm registries, served
//! in both forms (full and abbreviated) with policy applied: denied versions removed, `dist-tags`
//! re-pointed to the newest allowed version, tarball URLs pointing at this gateway; `time` and
//! `modified` passed on untouched. Tarballs are pulled through the engine's file cache and
//! verified against `dist.integrity` (SHA-512) and `dist.shasum` (SHA-1) and their own
//! `package/package.json` before they are cached. `npm audit` is answered from the policy
//! snapshot ([`audit`]).

pub(crate) mod audit;
mod evidence;
pub(crate) mod mirror;
mod packument;
mod stored;
mod text;
pub(crate) mod verify;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use formulary_core::ecosystems::npm::{self, PackumentFacts, VersionFacts};
use formulary_core::ecosystems::Version;
use formulary_core::policy::{Decision, PolicySnapshot, Release, View};
use formulary_core::Component;
use formulary_store::{BlobRef, BlobStore, Database, Digests, UpstreamDocument};
use tokio::sync::OnceCell;
use url::Url;

use crate::engine::documents::{Answer, Freshness, Lookup, Revalidated, Revalidating};
use crate::engine::files::{FileCache, UpstreamFile};
use crate::engine::health::UpstreamStatus;
use crate::engine::sanity::{HeldDocument, Sanity};
use crate::engine::upstream::{
    as_folders, Document, UpstreamClient, UpstreamFailure, UpstreamOptions,
};
use crate::engine::views::Views;
use crate::error::GatewayError;

pub use packument::{PackumentOutcome, ServedPackument};
use stored::Stamp;
use text::PackumentText;

/// The cache scope of npm packuments.
pub const SCOPE: &str = "npm";

/// How long a built packument is reused while nothing else changes: bounds how late time-based
/// rules (cooldown ends, pilot expiries) reach it.
const PACKUMENT_REUSE: Duration = Duration::from_secs(30);

/// URL scheme of tarballs that live only in the blob store (imported for air-gapped sites).
pub(crate) const BLOB_SCHEME: &str = "formulary-blob:";

/// What the gateway knows about one package: the upstream packument and each version's
/// evidence.
#[derive(Debug)]
pub(crate) struct Package {
    freshness: Freshness,
    /// Which stored packument the facts are of.
    stamp: Stamp,
    /// The packument as upstream sent it (compressed when large), once something needed it (a
    /// view's packument, the evidence): a tarball request needs only the facts, so a package
    /// read from the store leaves it there until then ([`NpmGateway::with_text`]).
    document: Arc<OnceCell<PackumentText>>,
    /// Each version's facts, with its parsed version (versions that do not parse are left out).
    versions: Arc<Vec<(Version, VersionFacts)>>,
    /// Each tarball's file name, to its index in `versions`: a tarball request finds its
    /// version with one lookup rather than by reading every version's URL (thousands of them
    /// for a large package).
    tarballs: Arc<HashMap<String, usize>>,
    releases: Arc<Vec<Release>>,
}

impl Revalidated for Package {
    fn freshness(&self) -> &Freshness {
        &self.freshness
    }

    fn with_freshness(&self, freshness: Freshness) -> Package {
        Package {
            freshness,
            stamp: self.stamp.clone(),
            document: Arc::clone(&self.document),
            versions: Arc::clone(&self.versions),
            tarballs: Arc::clone(&self.tarballs),
            releases: Arc::clone(&self.releases),
        }
    }
}

impl Package {
    /// A package from its facts; `document` is the packument they were read from, if it is at
    /// hand.
    fn new(
        component: &Component,
        freshness: Freshness,
        stamp: Stamp,
        document: Option<PackumentText>,
        facts: PackumentFacts,
    ) -> Package {
        let versions: Vec<(Version, VersionFacts)> = facts
            .versions
            .into_iter()
            .filter_map(|facts| {
                let version = Version::parse(component.ecosystem(), &facts.version).ok()?;
                Some((version, facts))
            })
            .collect();
        let releases = versions
            .iter()
            .map(|(version, facts)| Release {
                dated_by_first_sight: false,
                version: version.clone(),
                published: facts
                    .published
                    .as_deref()
                    .and_then(formulary_core::advisory::parse_timestamp),
                yanked: None,
                licence: facts.licence.clone(),
                install_scripts: !facts.install_scripts.is_empty(),
            })
            .collect();
        let mut tarballs = HashMap::with_capacity(versions.len());
        for (index, (_, facts)) in versions.iter().enumerate() {
            if let Some(filename) = facts.filename() {
                // The first version naming a file wins, as the scan it replaces did.
                tarballs.entry(filename.to_owned()).or_insert(index);
            }
        }
        Package {
            freshness,
            stamp,
            document: Arc::new(OnceCell::new_with(document)),
            versions: Arc::new(versions),
            tarballs: Arc::new(tarballs),
            releases: Arc::new(releases),
        }
    }
}

/// Why [`NpmGateway::with_text`] kept no text in a package.
enum NotKept {
    /// Reading the store failed.
    Failed(GatewayError),
    /// The stored packument is another one: the package read from it.
    Renewed(Box<Package>),
}

/// A packument as fetched: its bytes, what they say about each version, its entity tag.
type Fetched = (bytes::Bytes, PackumentFacts, Option<String>);

/// The answer for a tarball.
pub enum TarballOutcome {
    /// Serve this blob.
    Serve {
        /// Where it is stored.
        blob: BlobRef,
        /// The version it belongs to.
        version: String,
    },
    /// The policy denies the tarball's version.
    Refused(Box<Decision>),
    /// No such tarball.
    Missing,
}

/// The npm front-end's logic.
#[derive(Debug)]
pub struct NpmGateway {
    database: Database,
    client: UpstreamClient,
    upstreams: Vec<Url>,
    packages: Revalidating<Package>,
    files: FileCache,
    views: Views<PackumentOutcome>,
    /// Upstream packuments held back because they look wrong next to the cached ones.
    sanity: Sanity,
    decisions: Views<packument::ViewDecisions>,
}

impl NpmGateway {
    /// A gateway over npm registries (tried in order; none for an air-gapped site).
    pub fn new(
        database: Database,
        blobs: BlobStore,
        upstreams: Vec<Url>,
        options: &UpstreamOptions,
    ) -> Result<NpmGateway, reqwest::Error> {
        let upstreams = as_folders(upstreams);
        let client = UpstreamClient::new(options.budget)?;
        Ok(NpmGateway {
            database: database.clone(),
            files: FileCache::new(database, blobs, client.clone()),
            client,
            upstreams,
            packages: Revalidating::new(options.revalidate_after, options.patience),
            views: Views::new(PACKUMENT_REUSE, 10_000),
            sanity: Sanity::default(),
            // A tarball is refused by these: never from an older policy, even during a rebuild.
            decisions: Views::exact(PACKUMENT_REUSE, 10_000),
        })
    }

    /// The package, fetched or revalidated when its cached copy is old, served from the cache
    /// (marked stale) when every upstream fails.
    pub(crate) async fn package(
        &self,
        component: &Component,
    ) -> Result<Option<Arc<Package>>, GatewayError> {
        let name = component.name.as_str();
        let lookup = self
            .packages
            .get(
                name,
                &self.upstreams,
                Box::pin(self.load_cached(component)),
                |registry: Url, etag: Option<String>| {
                    let (client, name) = (self.client.clone(), name.to_owned());
                    Box::pin(async move { fetch(&client, &registry, &name, etag.as_deref()).await })
                },
                |registry: Url,
                 (document, facts, etag): Fetched,
                 previous: Option<Arc<Package>>| {
                    Box::pin(async move {
                        self.sanity.admit(
                            name,
                            &registry,
                            previous.map_or(0, |package| package.versions.len()),
                            facts.versions.len(),
                        )?;
                        self.refresh(component, &registry, document, facts, etag)
                            .await
                    })
                },
            )
            .await?;
        Ok(match lookup {
            Lookup::Found(package) => Some(package),
            // Every upstream says the package does not exist; imported tarballs still count.
            Lookup::Absent(cached) => {
                cached.filter(|package| package.freshness.origin.as_str().starts_with(BLOB_SCHEME))
            }
        })
    }

    /// The package as the store holds it: from its facts record alone when there is one (the
    /// packument stays in the store until something needs it), else from the packument, whose
    /// facts record is then written for the next start.
    async fn load_cached(&self, component: &Component) -> Result<Option<Package>, GatewayError> {
        let name = component.name.as_str();
        if let Some((freshness, stamp, facts)) = stored::read_facts(&self.database, name).await? {
            return Ok(Some(Package::new(component, freshness, stamp, None, facts)));
        }
        let Some(read) = stored::read_packument(&self.database, name, None).await? else {
            return Ok(None);
        };
        let facts = read.facts.unwrap_or_default();
        if let Err(error) = stored::save_facts(&self.database, name, &read.stamp, &facts).await {
            tracing::warn!(package = name, %error, "could not write a packument's facts record");
        }
        Ok(Some(Package::new(
            component,
            read.freshness,
            read.stamp,
            Some(read.text),
            facts,
        )))
    }

    /// The package with its packument's text at hand (read from the store the first time). When
    /// the stored packument is not the one the facts were read from (a crash between the two
    /// writes, another replica's refresh), the package is read again from the packument, its
    /// facts record written again, and the new package remembered in place of the old.
    pub(crate) async fn with_text(
        &self,
        component: &Component,
        package: Arc<Package>,
    ) -> Result<(Arc<Package>, PackumentText), GatewayError> {
        if let Some(text) = package.document.get() {
            return Ok((Arc::clone(&package), text.clone()));
        }
        let name = component.name.as_str();
        let missing = || crate::engine::upstream::UpstreamFailure::Malformed {
            url: name.to_owned(),
            why: "the cached packument is no longer in the store".to_owned(),
        };
        let text = package
            .document
            .get_or_try_init(|| async {
                let read = stored::read_packument(&self.database, name, Some(&package.stamp))
                    .await
                    .map_err(NotKept::Failed)?
                    .ok_or_else(|| NotKept::Failed(missing().into()))?;
                let Some(facts) = read.facts else {
                    // The packument the facts were read from.
                    return Ok(read.text);
                };
                tracing::info!(package = name, "a packument's facts record was out of step with it");
                if let Err(error) =
                    stored::save_facts(&self.database, name, &read.stamp, &facts).await
                {
                    tracing::warn!(package = name, %error, "could not write a packument's facts record");
                }
                let freshness = Freshness {
                    checked_at: package.freshness.checked_at,
                    stale: package.freshness.stale,
                    ..read.freshness
                };
                // This package's facts are of no stored packument: it keeps no text.
                Err(NotKept::Renewed(Box::new(Package::new(
                    component,
                    freshness,
                    read.stamp,
                    Some(read.text),
                    facts,
                ))))
            })
            .await;
        match text {
            Ok(text) => Ok((Arc::clone(&package), text.clone())),
            Err(NotKept::Renewed(renewed)) => {
                let renewed = self.packages.remember(name, *renewed);
                let text = renewed.document.get().cloned().ok_or_else(missing)?;
                Ok((renewed, text))
            }
            Err(NotKept::Failed(error)) => Err(error),
        }
    }

    /// Keeps a newly fetched packument and records each release's evidence (in the background:
    /// a package can have thousands of versions, and the packument already holds them all).
    async fn refresh(
        &self,
        component: &Component,
        registry: &Url,
        document: bytes::Bytes,
        facts: PackumentFacts,
        etag: Option<String>,
    ) -> Result<Package, GatewayError> {
        let now = Utc::now();
        let stored = UpstreamDocument {
            upstream: registry.to_string(),
            // Checked to be UTF-8 when it was fetched; kept as upstream wrote it.
            document: String::from_utf8_lossy(&document).into_owned(),
            etag: etag.clone(),
            fetched_at: now,
        };
        stored::save(&self.database, component.name.as_str(), &stored, &facts).await?;
        let stamp = Stamp::of(stored.as_ref());
        drop(stored);
        let package = Package::new(
            component,
            Freshness::new(registry.clone(), etag, now),
            stamp,
            Some(PackumentText::new(&document)),
            facts,
        );
        self.record_releases(component, Arc::clone(&package.releases));
        Ok(package)
    }

    fn record_releases(&self, component: &Component, releases: Arc<Vec<Release>>) {
        let (database, component) = (self.database.clone(), component.clone());
        tokio::spawn(async move {
            let known: HashMap<String, Release> = match database.releases_of(&component).await {
                Ok(known) => known
                    .into_iter()
                    .map(|release| (release.version.to_string(), release))
                    .collect(),
                Err(error) => {
                    tracing::warn!(%error, %component, "could not read known releases");
                    return;
                }
            };
            for release in releases.iter() {
                if known.get(&release.version.to_string()) == Some(release) {
                    continue;
                }
                if let Err(error) = database.record_release(&component, release).await {
                    tracing::warn!(%error, %component, "could not record a release's evidence");
                    return;
                }
            }
        });
    }

    /// A tarball for a view: refused when its version is denied, else served from the blob
    /// store, fetched once from upstream (and checked against `dist.integrity`, `dist.shasum`
    /// and its own `package.json`) when not cached.
    pub async fn tarball(
        &self,
        snapshot: &PolicySnapshot,
        generation: i64,
        view: &View,
        day: Option<chrono::NaiveDate>,
        component: &Component,
        filename: &str,
    ) -> Result<TarballOutcome, GatewayError> {
        let Some(package) = self.package(component).await? else {
            return Ok(TarballOutcome::Missing);
        };
        let Some(&index) = package.tarballs.get(filename) else {
            return Ok(TarballOutcome::Missing);
        };
        // The view's decisions, shared with its packument: a tarball request costs a lookup.
        let decisions = self
            .decisions(snapshot, generation, view, day, component, &package)
            .await?;
        let Some(decision) = decisions.of(index) else {
            // Published after a dated view's day: not in that view.
            return Ok(TarballOutcome::Missing);
        };
        if !decision.allowed {
            return Ok(TarballOutcome::Refused(Box::new(decision.clone())));
        }
        let (version, facts) = &package.versions[index];
        let Some(url) = facts.tarball.as_deref() else {
            return Ok(TarballOutcome::Missing);
        };
        // An imported tarball: `formulary-blob:sha256/<digest>/<file name>`.
        let blob = if let Some(digest) = url
            .strip_prefix(BLOB_SCHEME)
            .and_then(|rest| rest.strip_prefix("sha256/"))
            .map(|rest| rest.split('/').next().unwrap_or(rest))
        {
            if !self.files.blobs().contains(digest).await? {
                return Ok(TarballOutcome::Missing);
            }
            BlobRef {
                sha256: digest.to_owned(),
                size: 0,
            }
        } else {
            let mut file = UpstreamFile {
                url,
                filename,
                digests: published_digests(facts),
                size: None,
                check: None,
            };
            match self.files.cached(&file).await? {
                Some(blob) => blob,
                // The format check (which holds its own copy of the name and version) is made
                // only for a tarball that has to be fetched.
                None => {
                    file.check = Some(verify::check_for(component, version));
                    self.files.fetch(&file).await?
                }
            }
        };
        Ok(TarballOutcome::Serve {
            blob,
            version: facts.version.clone(),
        })
    }
}

/// Every digest a version's `dist` publishes: its integrity (SHA-512, or whatever algorithm the
/// SRI string names) and its SHA-1 `shasum`. Malformed ones are logged and left out.
pub(crate) fn published_digests(facts: &VersionFacts) -> Digests {
    let mut digests = Digests::none();
    if let Some(integrity) = facts.integrity.as_deref() {
        match digests.clone().with_integrity(integrity) {
            Ok(more) => digests = more,
            Err(error) => {
                tracing::warn!(version = %facts.version, %error, "ignoring a malformed dist.integrity")
            }
        }
    }
    if let Some(shasum) = facts.shasum.as_deref() {
        match digests
            .clone()
            .with(formulary_store::Algorithm::Sha1, shasum)
        {
            Ok(more) => digests = more,
            Err(error) => {
                tracing::warn!(version = %facts.version, %error, "ignoring a malformed dist.shasum")
            }
        }
    }
    digests
}

/// Asks one registry for a packument (with the cached copy's entity tag).
async fn fetch(
    client: &UpstreamClient,
    registry: &Url,
    name: &str,
    etag: Option<&str>,
) -> Result<Answer<Fetched>, UpstreamFailure> {
    let url = registry
        .join(&npm::path_name(name))
        .map_err(|error| UpstreamFailure::Malformed {
            url: registry.to_string(),
            why: error.to_string(),
        })?;
    Ok(
        match client
            .document(&url, etag, npm::MAX_PACKUMENT_BYTES)
            .await?
        {
            Document::Missing => Answer::Missing,
            Document::NotModified => Answer::NotModified,
            Document::Body { bytes, etag } => {
                let facts =
                    npm::read_facts(&bytes, name).map_err(|error| UpstreamFailure::Malformed {
                        url: url.to_string(),
                        why: error.to_string(),
                    })?;
                if std::str::from_utf8(&bytes).is_err() {
                    return Err(UpstreamFailure::Malformed {
                        url: url.to_string(),
                        why: "the packument is not UTF-8".to_owned(),
                    });
                }
                Answer::Document((bytes, facts, etag))
            }
        },
    )
}

impl crate::Watched for NpmGateway {
    fn upstream_health(&self) -> Vec<UpstreamStatus> {
        self.client.health()
    }

    fn held_back(&self) -> Vec<HeldDocument> {
        self.sanity.held()
    }

    fn accept_held(&self, document: &str) -> Option<HeldDocument> {
        let held = self.sanity.accept(document)?;
        self.packages.expire(document);
        Some(held)
    }
}
