//! The CRAN front-end's logic: `PACKAGES` indexes per repository tree (`src/contrib`,
//! `bin/windows/contrib/4.4`, `bin/macosx/…/contrib/4.4`), filtered by policy, and package files
//! fetched through the shared file cache.
//!
//! R has no yank marker, so a denied version leaves the index. When the newest version of a
//! package is denied, the newest allowed version from the upstream's `Archive/` takes its place,
//! described from the archived tarball's own DESCRIPTION, so `install.packages()` installs that
//! instead. A package whose dependencies cannot be served leaves the index too: the index never
//! promises an install that must fail.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use deb822_fast::Paragraph;
use formulary_core::ecosystems::cran::{
    self, archive_from_value, archive_value, licence_to_spdx, rds, Archive, ArchivedFile,
    BASE_PACKAGES,
};
use formulary_core::ecosystems::{Ecosystem, Version};
use formulary_core::policy::{evaluate_releases, Decision, PolicySnapshot, Release, View};
use formulary_core::Component;
use formulary_store::{BlobRef, BlobStore, Database, UpstreamPage};
use url::Url;

use crate::cran_mirror::{ImportedFiles, INDEX_FIELDS};
use crate::error::GatewayError;
use crate::files::{FileCache, UpstreamFile};
use crate::pypi::Rendered;
use crate::revalidating::{Answer, Freshness, Lookup, Revalidated, Revalidating};
use crate::upstream::{as_folders, Document, UpstreamClient, UpstreamFailure};

/// Largest `PACKAGES` index read (CRAN's is about 10 MB uncompressed).
const MAX_PACKAGES_BYTES: usize = 128 * 1024 * 1024;
/// Largest archived tarball read for its DESCRIPTION.
const MAX_DESCRIPTION_BYTES: u64 = 1024 * 1024;
/// Cache scope of CRAN trees in the store.
pub(crate) const SCOPE: &str = "cran";
/// How long a built index is reused while nothing else changes.
const INDEX_REUSE: Duration = Duration::from_secs(30);

/// One repository tree as last fetched.
#[derive(Debug)]
struct Tree {
    /// Where it came from (its files are relative to `freshness.origin`) and when.
    freshness: Freshness,
    paragraphs: Vec<Paragraph>,
    /// First-seen dates of versions that appeared after Formulary first saw the tree.
    published: HashMap<(String, String), DateTime<Utc>>,
}

impl Revalidated for Tree {
    fn freshness(&self) -> &Freshness {
        &self.freshness
    }

    fn with_freshness(&self, freshness: Freshness) -> Tree {
        Tree {
            freshness,
            paragraphs: self.paragraphs.clone(),
            published: self.published.clone(),
        }
    }
}

/// A `PACKAGES` index ready to serve for one view.
#[derive(Debug)]
pub struct ServedIndex {
    /// `PACKAGES`.
    pub packages: Rendered,
    /// `PACKAGES.gz`.
    pub packages_gz: Rendered,
    /// True when the upstream could not be reached and the index comes from the cache.
    pub stale: bool,
    /// Packages left out, with why (for logs and the component page).
    pub withheld: Vec<String>,
}

/// The answer for a package file.
#[derive(Debug)]
pub enum CranFileOutcome {
    /// Serve this blob.
    Serve {
        /// Where it is stored.
        blob: BlobRef,
        /// The version.
        version: String,
    },
    /// The policy denies the version.
    Refused(Box<Decision>),
    /// No such file.
    Missing,
}

#[derive(Debug)]
struct CachedIndex {
    generation: i64,
    tree: Arc<Tree>,
    built: std::time::Instant,
    served: Arc<ServedIndex>,
}

/// Indexes are cached per tree, organisation and snapshot day (`None`: now).
type IndexKey = (String, formulary_core::OrgCode, Option<chrono::NaiveDate>);

/// The CRAN front-end.
#[derive(Debug)]
pub struct CranGateway {
    database: Database,
    client: UpstreamClient,
    files: FileCache,
    upstreams: Vec<Url>,
    trees: Revalidating<Tree>,
    descriptions: Mutex<HashMap<(String, String), Paragraph>>,
    /// Held while an index is being built.
    index_build: tokio::sync::Mutex<()>,
    /// The last `Archive/<package>/` listing seen, by package.
    archive_listings: Mutex<HashMap<String, Vec<(Version, String)>>>,
    indexes: Mutex<HashMap<IndexKey, CachedIndex>>,
    /// Files put in by `mirror import cran`, and when they were read from the store.
    imported: Mutex<Option<(std::time::Instant, Arc<ImportedFiles>)>>,
    /// How long the list of imported files is trusted before it is read again.
    reload_after: Duration,
    /// The upstream's `src/contrib/Meta/archive.rds`.
    archives: Revalidating<UpstreamArchive>,
    /// Held while an `archive.rds` is being built.
    archive_build: tokio::sync::Mutex<()>,
    /// Built `archive.rds` files per organisation and snapshot day.
    archive_files: Mutex<HashMap<ArchiveKey, CachedArchive>>,
}

/// `archive.rds` files are cached per organisation and snapshot day (`None`: now).
type ArchiveKey = (formulary_core::OrgCode, Option<chrono::NaiveDate>);

#[derive(Debug)]
struct CachedArchive {
    generation: i64,
    upstream: Option<Arc<UpstreamArchive>>,
    imported: Arc<ImportedFiles>,
    built: std::time::Instant,
    served: Arc<Rendered>,
}

/// The archive an upstream lists in `src/contrib/Meta/archive.rds`.
#[derive(Debug)]
struct UpstreamArchive {
    freshness: Freshness,
    archive: Archive,
}

impl Revalidated for UpstreamArchive {
    fn freshness(&self) -> &Freshness {
        &self.freshness
    }

    fn with_freshness(&self, freshness: Freshness) -> UpstreamArchive {
        UpstreamArchive {
            freshness,
            archive: self.archive.clone(),
        }
    }
}

/// Where `archive.rds` lives, relative to a repository.
const ARCHIVE_RDS: &str = "src/contrib/Meta/archive.rds";
/// Largest upstream `archive.rds` read (CRAN's is a few MB).
const MAX_ARCHIVE_RDS_BYTES: usize = 64 * 1024 * 1024;

/// Where an archived version of a package can be had.
#[derive(Debug, Clone)]
enum ArchivedSource {
    /// At this upstream URL.
    Upstream(String),
    /// Imported, with this `PACKAGES` entry.
    Imported(Paragraph),
}

/// True for the repository trees R asks for: `src/contrib`, `bin/windows/contrib/X.Y`,
/// `bin/macosx/contrib/X.Y` and `bin/macosx/PLATFORM/contrib/X.Y`.
pub fn is_tree(path: &str) -> bool {
    let parts: Vec<&str> = path.split('/').collect();
    let r_version = |text: &str| {
        text.split('.').count() == 2
            && text.split('.').all(|part| {
                !part.is_empty() && part.len() <= 3 && part.bytes().all(|b| b.is_ascii_digit())
            })
    };
    let platform = |text: &str| {
        (1..=40).contains(&text.len())
            && text
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    };
    match parts.as_slice() {
        ["src", "contrib"] => true,
        ["bin", "windows", "contrib", version] | ["bin", "macosx", "contrib", version] => {
            r_version(version)
        }
        ["bin", "macosx", name, "contrib", version] => platform(name) && r_version(version),
        _ => false,
    }
}

/// The package and version a file name carries: `readxl_1.4.3.tar.gz` (source), `.zip`
/// (Windows) or `.tgz` (macOS).
pub fn parse_filename(filename: &str) -> Option<(Component, Version)> {
    let stem = [".tar.gz", ".zip", ".tgz"]
        .iter()
        .find_map(|suffix| filename.strip_suffix(suffix))?;
    let (name, version) = stem.split_once('_')?;
    if filename.len() > 200 || filename.contains(['/', '\\']) {
        return None;
    }
    let component = Component::new(Ecosystem::Cran, name).ok()?;
    let version = Version::parse(Ecosystem::Cran, version).ok()?;
    Some((component, version))
}

fn field<'a>(paragraph: &'a Paragraph, name: &str) -> Option<&'a str> {
    paragraph.get(name)
}

/// The component, version and release evidence a `PACKAGES` paragraph describes.
fn release_of(
    paragraph: &Paragraph,
    published: &HashMap<(String, String), DateTime<Utc>>,
) -> Option<(Component, Release)> {
    let name = field(paragraph, "Package")?;
    let version_text = field(paragraph, "Version")?;
    let component = Component::new(Ecosystem::Cran, name).ok()?;
    let version = Version::parse(Ecosystem::Cran, version_text).ok()?;
    let licence = field(paragraph, "License").and_then(licence_to_spdx);
    let published = published
        .get(&(name.to_owned(), version_text.to_owned()))
        .copied();
    Some((
        component,
        Release {
            version,
            published,
            yanked: None,
            licence,
        },
    ))
}

/// The store key of a tree's cached index (`src/contrib` → `src-contrib`).
pub(crate) fn tree_key(tree: &str) -> Result<Component, GatewayError> {
    Component::new(Ecosystem::Generic, &tree.replace('/', "-")).map_err(|error| {
        GatewayError::Store(formulary_store::StoreError::Conflict(error.to_string()))
    })
}

/// The cached `PACKAGES` of a tree, as the gateway last fetched it (empty when it never did):
/// for explaining dependencies outside a request.
pub async fn cached_index(database: &Database, tree: &str) -> Result<Vec<Paragraph>, GatewayError> {
    Ok(
        match database.upstream_page(SCOPE, &tree_key(tree)?).await? {
            Some(stored) => cran::parse_packages(&stored.document).unwrap_or_default(),
            None => Vec::new(),
        },
    )
}

impl CranGateway {
    /// A gateway over CRAN-like repositories (tried in order; none for an air-gapped site).
    pub fn new(
        database: Database,
        blobs: BlobStore,
        upstreams: Vec<Url>,
        timeout: Duration,
        revalidate_after: Duration,
    ) -> Result<CranGateway, reqwest::Error> {
        let upstreams = as_folders(upstreams);
        let client = UpstreamClient::new(timeout)?;
        Ok(CranGateway {
            database,
            files: FileCache::new(blobs, client.clone()),
            client,
            upstreams,
            trees: Revalidating::new(
                chrono::Duration::from_std(revalidate_after)
                    .unwrap_or(chrono::Duration::minutes(10)),
            ),
            descriptions: Mutex::new(HashMap::new()),
            archive_listings: Mutex::new(HashMap::new()),
            index_build: tokio::sync::Mutex::new(()),
            indexes: Mutex::new(HashMap::new()),
            imported: Mutex::new(None),
            reload_after: revalidate_after,
            archives: Revalidating::new(
                chrono::Duration::from_std(revalidate_after)
                    .unwrap_or(chrono::Duration::minutes(10)),
            ),
            archive_build: tokio::sync::Mutex::new(()),
            archive_files: Mutex::new(HashMap::new()),
        })
    }

    /// The files `mirror import cran` put in, read again from the store when older than the
    /// revalidation period (an import runs in another process).
    async fn imported(&self) -> Result<Arc<ImportedFiles>, GatewayError> {
        if let Some((read_at, files)) = lock(&self.imported).as_ref() {
            if read_at.elapsed() < self.reload_after {
                return Ok(Arc::clone(files));
            }
        }
        let files = ImportedFiles::load(&self.database).await?;
        let mut current = lock(&self.imported);
        // Keep the same Arc while nothing changed, so that built documents stay valid.
        let files = match current.take() {
            Some((_, known)) if *known == files => known,
            _ => Arc::new(files),
        };
        *current = Some((std::time::Instant::now(), Arc::clone(&files)));
        Ok(files)
    }

    /// The tree's index, fetched or revalidated when old, served from the cache (marked stale)
    /// when every upstream fails.
    async fn tree(&self, name: &str) -> Result<Option<Arc<Tree>>, GatewayError> {
        let lookup = self
            .trees
            .get(
                name,
                &self.upstreams,
                Box::pin(self.load_cached(name)),
                |upstream: Url, etag: Option<String>| {
                    Box::pin(
                        async move { self.fetch_packages(&upstream, name, etag.as_deref()).await },
                    )
                },
                |upstream: Url,
                 (text, etag): (String, Option<String>),
                 previous: Option<Arc<Tree>>| {
                    Box::pin(async move {
                        self.refresh(name, &upstream, &text, etag, previous.as_deref())
                            .await
                    })
                },
            )
            .await?;
        Ok(match lookup {
            Lookup::Found(tree) => Some(tree),
            Lookup::Absent(_) => None,
        })
    }

    async fn fetch_packages(
        &self,
        upstream: &Url,
        tree: &str,
        etag: Option<&str>,
    ) -> Result<Answer<(String, Option<String>)>, UpstreamFailure> {
        for (file, compressed) in [("PACKAGES.gz", true), ("PACKAGES", false)] {
            let url = upstream.join(&format!("{tree}/{file}")).map_err(|error| {
                UpstreamFailure::Malformed {
                    url: upstream.to_string(),
                    why: error.to_string(),
                }
            })?;
            match self.client.document(&url, etag, MAX_PACKAGES_BYTES).await? {
                Document::Missing => continue,
                Document::NotModified => return Ok(Answer::NotModified),
                Document::Body { bytes, etag } => {
                    let text = if compressed {
                        gunzip(&bytes, &url)?
                    } else {
                        String::from_utf8_lossy(&bytes).into_owned()
                    };
                    return Ok(Answer::Document((text, etag)));
                }
            }
        }
        Ok(Answer::Missing)
    }

    async fn load_cached(&self, name: &str) -> Result<Option<Tree>, GatewayError> {
        let key = tree_key(name)?;
        let Some(stored) = self.database.upstream_page(SCOPE, &key).await? else {
            return Ok(None);
        };
        let paragraphs = cran::parse_packages(&stored.document).unwrap_or_default();
        let freshness = Freshness::stored(&stored)?;
        let published = self.published_dates(&paragraphs).await?;
        let tree = Tree {
            freshness,
            paragraphs,
            published,
        };
        Ok(Some(tree))
    }

    /// Dates of versions Formulary saw appear (the cooldown rule for indexes without dates).
    async fn published_dates(
        &self,
        paragraphs: &[Paragraph],
    ) -> Result<HashMap<(String, String), DateTime<Utc>>, GatewayError> {
        let known = self.database.published_releases(Ecosystem::Cran).await?;
        Ok(paragraphs
            .iter()
            .filter_map(|paragraph| {
                let key = (
                    field(paragraph, "Package")?.to_owned(),
                    field(paragraph, "Version")?.to_owned(),
                );
                known.get(&key).map(|published| (key, *published))
            })
            .collect())
    }

    async fn refresh(
        &self,
        name: &str,
        upstream: &Url,
        text: &str,
        etag: Option<String>,
        previous: Option<&Tree>,
    ) -> Result<Tree, GatewayError> {
        let paragraphs =
            cran::parse_packages(text).map_err(|error| UpstreamFailure::Malformed {
                url: upstream.to_string(),
                why: error.to_string(),
            })?;
        let now = Utc::now();
        let mut published = previous
            .map(|tree| tree.published.clone())
            .unwrap_or_default();
        if let Some(previous) = previous {
            let known: HashSet<(String, String)> = previous
                .paragraphs
                .iter()
                .filter_map(|paragraph| {
                    Some((
                        field(paragraph, "Package")?.to_owned(),
                        field(paragraph, "Version")?.to_owned(),
                    ))
                })
                .collect();
            for paragraph in &paragraphs {
                let (Some(package), Some(version)) =
                    (field(paragraph, "Package"), field(paragraph, "Version"))
                else {
                    continue;
                };
                let key = (package.to_owned(), version.to_owned());
                if !known.contains(&key) && !published.contains_key(&key) {
                    if let Some((component, mut release)) = release_of(paragraph, &HashMap::new()) {
                        release.published = Some(now);
                        self.database.record_release(&component, &release).await?;
                        published.insert(key, now);
                    }
                }
            }
        }
        let key = tree_key(name)?;
        let stored = UpstreamPage {
            upstream: upstream.to_string(),
            document: text.to_owned(),
            etag: etag.clone(),
            fetched_at: now,
        };
        self.database
            .save_upstream_page(SCOPE, &key, &stored)
            .await?;
        Ok(Tree {
            freshness: Freshness::new(upstream.clone(), etag, now),
            paragraphs,
            published,
        })
    }

    /// The `PACKAGES` index of a tree for a view.
    pub async fn index(
        &self,
        snapshot: &PolicySnapshot,
        generation: i64,
        view: &View,
        day: Option<chrono::NaiveDate>,
        tree_name: &str,
    ) -> Result<Option<Arc<ServedIndex>>, GatewayError> {
        let Some(tree) = self.tree(tree_name).await? else {
            return Ok(None);
        };
        let key = (tree_name.to_owned(), view.organisation.clone(), day);
        let cached_for = |indexes: &HashMap<IndexKey, CachedIndex>| {
            indexes
                .get(&key)
                .filter(|cached| {
                    cached.generation == generation && Arc::ptr_eq(&cached.tree, &tree)
                })
                .map(|cached| {
                    (
                        Arc::clone(&cached.served),
                        cached.built.elapsed() < INDEX_REUSE,
                    )
                })
        };
        let current = cached_for(
            &self
                .indexes
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        // One request builds at a time. While an index is merely old (same policy, same upstream
        // document: only time-based rules could differ), the others keep getting it.
        let _building = match current {
            Some((served, true)) => return Ok(Some(served)),
            Some((served, false)) => match self.index_build.try_lock() {
                Ok(guard) => guard,
                Err(_) => return Ok(Some(served)),
            },
            None => {
                let guard = self.index_build.lock().await;
                let built = cached_for(
                    &self
                        .indexes
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner),
                );
                if let Some((served, true)) = built {
                    return Ok(Some(served));
                }
                guard
            }
        };
        let mut kept: Vec<Paragraph> = Vec::with_capacity(tree.paragraphs.len());
        let mut withheld = Vec::new();
        for paragraph in &tree.paragraphs {
            let Some((component, release)) = release_of(paragraph, &tree.published) else {
                continue;
            };
            if release
                .published
                .is_some_and(|published| published > view.at)
            {
                continue;
            }
            let decision =
                evaluate_releases(snapshot, view, &component, std::slice::from_ref(&release))
                    .remove(0);
            if decision.allowed {
                kept.push(paragraph.clone());
                continue;
            }
            let reason = decision.headline().unwrap_or("denied").to_owned();
            match self
                .archived_substitute(snapshot, view, &tree, &component, tree_name)
                .await
            {
                Some(substitute) => {
                    withheld.push(format!(
                        "{} {}: {reason}; serving {} instead",
                        component.name,
                        release.version,
                        field(&substitute, "Version").unwrap_or("?")
                    ));
                    kept.push(substitute);
                }
                None => withheld.push(format!("{} {}: {reason}", component.name, release.version)),
            }
        }
        withhold_unsatisfiable(&mut kept, &mut withheld);
        let text = cran::render_packages(&kept);
        // A rebuild that changed nothing (the usual case) keeps the same bodies: no compression,
        // no hashing, and connections keep sending them from the same file.
        let previous = lock(&self.indexes)
            .get(&key)
            .map(|cached| Arc::clone(&cached.served))
            .filter(|previous| previous.packages.body == text.as_bytes());
        let (packages, packages_gz) = match previous {
            Some(previous) => (previous.packages.clone(), previous.packages_gz.clone()),
            None => {
                let gz = gzip(text.as_bytes())?;
                (Rendered::new(text.into_bytes()), Rendered::new(gz))
            }
        };
        let served = Arc::new(ServedIndex {
            packages,
            packages_gz,
            stale: tree.freshness.stale,
            withheld,
        });
        let mut indexes = self
            .indexes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if indexes.len() >= 1_000 {
            indexes.clear();
        }
        indexes.insert(
            key,
            CachedIndex {
                generation,
                tree,
                built: std::time::Instant::now(),
                served: Arc::clone(&served),
            },
        );
        Ok(Some(served))
    }

    /// The archived versions of a package: those in the upstream's
    /// `src/contrib/Archive/<pkg>/` listing and those imported, newest first.
    async fn archived_versions(
        &self,
        tree: &Tree,
        component: &Component,
        imported: &ImportedFiles,
    ) -> Vec<(Version, ArchivedSource)> {
        let mut found: Vec<(Version, ArchivedSource)> = self
            .upstream_listing(tree, component)
            .await
            .unwrap_or_default()
            .into_iter()
            .map(|(version, url)| (version, ArchivedSource::Upstream(url)))
            .collect();
        for (version, _, file) in imported.sources_of(component) {
            let Some(entry) = cran::parse_packages(&file.entry)
                .ok()
                .and_then(|mut paragraphs| paragraphs.pop())
            else {
                continue;
            };
            // An imported copy is preferred: it needs no upstream.
            found.retain(|(known, _)| *known != version);
            found.push((version, ArchivedSource::Imported(entry)));
        }
        found.sort_by(|left, right| right.0.cmp(&left.0));
        found
    }

    /// The upstream's `src/contrib/Archive/<pkg>/` listing, as (version, URL); the last one seen
    /// when the upstream cannot be reached; none for a tree that only imports filled.
    async fn upstream_listing(
        &self,
        tree: &Tree,
        component: &Component,
    ) -> Option<Vec<(Version, String)>> {
        if !matches!(tree.freshness.origin.scheme(), "http" | "https") {
            return None;
        }
        let name = component.name.as_str();
        let listing_url = tree
            .freshness
            .origin
            .join(&format!("src/contrib/Archive/{name}/"))
            .ok()?;
        match self
            .client
            .document(&listing_url, None, 4 * 1024 * 1024)
            .await
        {
            Ok(Document::Body { bytes, .. }) => {
                let listing = String::from_utf8_lossy(&bytes).into_owned();
                let page =
                    formulary_core::ecosystems::pypi::parse_html(&listing, &listing_url, name)
                        .ok()?;
                let found: Vec<(Version, String)> = page
                    .files
                    .iter()
                    .filter_map(|file| {
                        let filename = file.url.rsplit('/').next()?.to_owned();
                        let (found, version) = parse_filename(&filename)?;
                        (&found == component && filename.ends_with(".tar.gz"))
                            .then_some((version, file.url.clone()))
                    })
                    .collect();
                lock(&self.archive_listings).insert(name.to_owned(), found.clone());
                Some(found)
            }
            Ok(Document::Missing) => None,
            // The upstream is down: the last listing seen still stands.
            _ => lock(&self.archive_listings).get(name).cloned(),
        }
    }

    /// The newest allowed archived version of a package, described from its tarball's
    /// DESCRIPTION. Source trees only.
    async fn archived_substitute(
        &self,
        snapshot: &PolicySnapshot,
        view: &View,
        tree: &Tree,
        component: &Component,
        tree_name: &str,
    ) -> Option<Paragraph> {
        if tree_name != "src/contrib" {
            return None;
        }
        let imported = self.imported().await.ok()?;
        let candidates = self.archived_versions(tree, component, &imported).await;
        let releases: Vec<Release> = candidates
            .iter()
            .map(|(version, source)| Release {
                version: version.clone(),
                published: None,
                yanked: None,
                licence: match source {
                    ArchivedSource::Imported(entry) => {
                        field(entry, "License").and_then(licence_to_spdx)
                    }
                    ArchivedSource::Upstream(_) => None,
                },
            })
            .collect();
        let decisions = evaluate_releases(snapshot, view, component, &releases);
        let (version, source) = candidates
            .iter()
            .zip(&decisions)
            .find(|(_, decision)| decision.allowed)
            .map(|(candidate, _)| candidate.clone())?;
        let description = match source {
            ArchivedSource::Imported(entry) => return Some(entry),
            ArchivedSource::Upstream(url) => self.description(component, &version, &url).await?,
        };
        // The licence of the archived version may differ: decide again with it.
        let release = Release {
            version: version.clone(),
            published: None,
            yanked: None,
            licence: field(&description, "License").and_then(licence_to_spdx),
        };
        evaluate_releases(snapshot, view, component, &[release])
            .remove(0)
            .allowed
            .then_some(description)
    }

    /// The DESCRIPTION of an archived tarball, as a `PACKAGES` paragraph.
    async fn description(
        &self,
        component: &Component,
        version: &Version,
        url: &str,
    ) -> Option<Paragraph> {
        let key = (component.name.to_string(), version.to_string());
        if let Some(found) = lock(&self.descriptions).get(&key) {
            return Some(found.clone());
        }
        let filename = format!("{}_{}.tar.gz", component.name, version);
        let blob = self
            .files
            .fetch(UpstreamFile {
                url,
                filename: &filename,
                sha256: None,
                size: None,
            })
            .await
            .ok()?;
        let bytes = self
            .files
            .blobs()
            .get(&blob.sha256)
            .await
            .ok()?
            .bytes()
            .await
            .ok()?;
        let text = read_description(&bytes, component.name.as_str())?;
        let full = cran::parse_packages(&text).ok()?.into_iter().next()?;
        let mut paragraph = Paragraph { fields: Vec::new() };
        for name in INDEX_FIELDS {
            if let Some(value) = full.get(name) {
                paragraph.insert(name, value);
            }
        }
        lock(&self.descriptions).insert(key, paragraph.clone());
        Some(paragraph)
    }

    /// A package file of a tree (current, or from `Archive/` for source packages): an imported
    /// copy when there is one, else the upstream's through the file cache.
    pub async fn file(
        &self,
        snapshot: &PolicySnapshot,
        view: &View,
        tree_name: &str,
        filename: &str,
    ) -> Result<CranFileOutcome, GatewayError> {
        let Some((component, version)) = parse_filename(filename) else {
            return Ok(CranFileOutcome::Missing);
        };
        let imported = self.imported().await?;
        let imported_file = imported.file(tree_name, filename);
        let tree = match self.tree(tree_name).await {
            Ok(tree) => tree,
            // An imported file does not need the upstream's index.
            Err(error) if imported_file.is_none() => return Err(error),
            Err(_) => None,
        };
        let current = tree.as_ref().and_then(|tree| {
            tree.paragraphs.iter().find(|paragraph| {
                field(paragraph, "Package") == Some(component.name.as_str())
                    && field(paragraph, "Version")
                        .and_then(|text| Version::parse(Ecosystem::Cran, text).ok())
                        .as_ref()
                        == Some(&version)
            })
        });
        let known_licence = || {
            let from_import = imported_file.and_then(|file| {
                cran::parse_packages(&file.entry)
                    .ok()?
                    .pop()?
                    .get("License")
                    .and_then(licence_to_spdx)
            });
            from_import.or_else(|| {
                lock(&self.descriptions)
                    .get(&(component.name.to_string(), version.to_string()))
                    .and_then(|paragraph| field(paragraph, "License").and_then(licence_to_spdx))
            })
        };
        let release = match (current, &tree) {
            (Some(paragraph), Some(tree)) => release_of(paragraph, &tree.published)
                .map(|(_, release)| release)
                .unwrap_or_else(|| Release::bare(version.clone())),
            _ if imported_file.is_some() || tree_name == "src/contrib" => Release {
                version: version.clone(),
                published: None,
                yanked: None,
                licence: known_licence(),
            },
            _ => return Ok(CranFileOutcome::Missing),
        };
        if imported_file.is_none() && tree.is_none() {
            return Ok(CranFileOutcome::Missing);
        }
        let decision = evaluate_releases(snapshot, view, &component, &[release]).remove(0);
        if !decision.allowed {
            return Ok(CranFileOutcome::Refused(Box::new(decision)));
        }
        if let Some(file) = imported_file {
            return Ok(CranFileOutcome::Serve {
                blob: BlobRef {
                    sha256: file.sha256.clone(),
                    size: file.size,
                },
                version: version.to_string(),
            });
        }
        let is_current = current.is_some();
        let Some(tree) = tree else {
            return Ok(CranFileOutcome::Missing);
        };
        let url = if is_current {
            tree.freshness
                .origin
                .join(&format!("{tree_name}/{filename}"))
        } else {
            tree.freshness.origin.join(&format!(
                "src/contrib/Archive/{}/{filename}",
                component.name
            ))
        };
        if !matches!(tree.freshness.origin.scheme(), "http" | "https") {
            return Ok(CranFileOutcome::Missing);
        }
        let url = url.map_err(|error| UpstreamFailure::Malformed {
            url: filename.to_owned(),
            why: error.to_string(),
        })?;
        let blob = match self
            .files
            .fetch(UpstreamFile {
                url: url.as_str(),
                filename,
                sha256: None,
                size: None,
            })
            .await
        {
            Ok(blob) => blob,
            Err(GatewayError::Upstream(UpstreamFailure::Status { status: 404, .. })) => {
                return Ok(CranFileOutcome::Missing)
            }
            Err(error) => return Err(error),
        };
        Ok(CranFileOutcome::Serve {
            blob,
            version: version.to_string(),
        })
    }

    /// `src/contrib/Meta/archive.rds` for a view: every archived source version the view allows
    /// (from the upstream's own `archive.rds`, the `Archive/` listings seen, and imports), so
    /// that `remotes::install_version` finds older allowed versions and no denied one.
    pub async fn archive_rds(
        &self,
        snapshot: &PolicySnapshot,
        generation: i64,
        view: &View,
        day: Option<chrono::NaiveDate>,
    ) -> Result<Arc<Rendered>, GatewayError> {
        let upstream = self.upstream_archive().await;
        let imported = self.imported().await?;
        let key = (view.organisation.clone(), day);
        let cached = || {
            lock(&self.archive_files)
                .get(&key)
                .filter(|cached| {
                    cached.generation == generation
                        && cached.built.elapsed() < INDEX_REUSE
                        && Arc::ptr_eq(&cached.imported, &imported)
                        && match (&cached.upstream, &upstream) {
                            (Some(left), Some(right)) => Arc::ptr_eq(left, right),
                            (None, None) => true,
                            _ => false,
                        }
                })
                .map(|cached| Arc::clone(&cached.served))
        };
        if let Some(served) = cached() {
            return Ok(served);
        }
        let _building = self.archive_build.lock().await;
        if let Some(served) = cached() {
            return Ok(served);
        }
        let current: HashMap<String, Version> = match self.tree("src/contrib").await {
            Ok(Some(tree)) => tree
                .paragraphs
                .iter()
                .filter_map(|paragraph| {
                    Some((
                        field(paragraph, "Package")?.to_owned(),
                        Version::parse(Ecosystem::Cran, field(paragraph, "Version")?).ok()?,
                    ))
                })
                .collect(),
            _ => HashMap::new(),
        };
        let mut known: std::collections::BTreeMap<String, HashMap<String, ArchivedFile>> =
            std::collections::BTreeMap::new();
        if let Some(upstream) = &upstream {
            for (package, files) in &upstream.archive {
                let entry = known.entry(package.clone()).or_default();
                for file in files {
                    entry.insert(file.filename.clone(), file.clone());
                }
            }
        }
        for (package, listing) in lock(&self.archive_listings).iter() {
            let entry = known.entry(package.clone()).or_default();
            for (_, url) in listing {
                if let Some(filename) = url.rsplit('/').next() {
                    entry
                        .entry(filename.to_owned())
                        .or_insert_with(|| ArchivedFile {
                            filename: filename.to_owned(),
                            size: None,
                            modified: None,
                        });
                }
            }
        }
        let mut licences: HashMap<String, Option<String>> = HashMap::new();
        for (filename, file) in imported.trees.get("src/contrib").into_iter().flatten() {
            let Some((component, version)) = parse_filename(filename) else {
                continue;
            };
            if !filename.ends_with(".tar.gz")
                || current.get(component.name.as_str()) == Some(&version)
            {
                continue;
            }
            let licence = cran::parse_packages(&file.entry)
                .ok()
                .and_then(|mut paragraphs| paragraphs.pop())
                .and_then(|entry| entry.get("License").and_then(licence_to_spdx));
            licences.insert(filename.clone(), licence);
            known.entry(component.name.to_string()).or_default().insert(
                filename.clone(),
                ArchivedFile {
                    filename: filename.clone(),
                    size: Some(file.size),
                    modified: file.modified,
                },
            );
        }
        let mut allowed = Archive::new();
        for (package, files) in known {
            let Ok(component) = Component::new(Ecosystem::Cran, &package) else {
                continue;
            };
            let mut versions: Vec<(Version, ArchivedFile)> = files
                .into_values()
                .filter_map(|file| {
                    let (found, version) = parse_filename(&file.filename)?;
                    (found == component && file.filename.ends_with(".tar.gz"))
                        .then_some((version, file))
                })
                .collect();
            versions.sort_by(|left, right| left.0.cmp(&right.0));
            let releases: Vec<Release> = versions
                .iter()
                .map(|(version, file)| Release {
                    version: version.clone(),
                    published: None,
                    yanked: None,
                    licence: licences.get(&file.filename).cloned().flatten().or_else(|| {
                        lock(&self.descriptions)
                            .get(&(package.clone(), version.to_string()))
                            .and_then(|entry| field(entry, "License").and_then(licence_to_spdx))
                    }),
                })
                .collect();
            let decisions = evaluate_releases(snapshot, view, &component, &releases);
            let files: Vec<ArchivedFile> = versions
                .into_iter()
                .zip(decisions)
                .filter(|(_, decision)| decision.allowed)
                .map(|((_, file), _)| file)
                .collect();
            if !files.is_empty() {
                allowed.insert(package, files);
            }
        }
        let bytes = rds::serialize(&archive_value(&allowed));
        let served = Arc::new(Rendered::new(gzip(&bytes)?));
        let mut files = lock(&self.archive_files);
        if files.len() >= 1_000 {
            files.clear();
        }
        files.insert(
            key,
            CachedArchive {
                generation,
                upstream,
                imported,
                built: std::time::Instant::now(),
                served: Arc::clone(&served),
            },
        );
        Ok(served)
    }

    /// The upstream's `archive.rds`, revalidated like an index; none when there is no upstream,
    /// it has none, or it cannot be read (then the `Archive/` listings and imports still count).
    async fn upstream_archive(&self) -> Option<Arc<UpstreamArchive>> {
        if self.upstreams.is_empty() {
            return None;
        }
        let lookup = self
            .archives
            .get(
                ARCHIVE_RDS,
                &self.upstreams,
                Box::pin(self.load_cached_archive()),
                |upstream: Url, etag: Option<String>| {
                    Box::pin(async move {
                        let url = upstream.join(ARCHIVE_RDS).map_err(|error| {
                            UpstreamFailure::Malformed {
                                url: upstream.to_string(),
                                why: error.to_string(),
                            }
                        })?;
                        Ok(
                            match self
                                .client
                                .document(&url, etag.as_deref(), MAX_ARCHIVE_RDS_BYTES)
                                .await?
                            {
                                Document::Missing => Answer::Missing,
                                Document::NotModified => Answer::NotModified,
                                Document::Body { bytes, etag } => {
                                    Answer::Document((read_archive_rds(&bytes, &url)?, etag))
                                }
                            },
                        )
                    })
                },
                |upstream: Url, (archive, etag): (Archive, Option<String>), _previous| {
                    Box::pin(async move { self.save_archive(upstream, archive, etag).await })
                },
            )
            .await;
        match lookup {
            Ok(Lookup::Found(archive)) => Some(archive),
            Ok(Lookup::Absent(_)) => None,
            Err(error) => {
                tracing::warn!(%error, "the upstream archive.rds is not available; listing only the archived versions seen and imported");
                None
            }
        }
    }

    async fn load_cached_archive(&self) -> Result<Option<UpstreamArchive>, GatewayError> {
        let Some(stored) = self
            .database
            .upstream_page(SCOPE, &tree_key(ARCHIVE_RDS)?)
            .await?
        else {
            return Ok(None);
        };
        let (Ok(upstream), Ok(archive)) = (
            Url::parse(&stored.upstream),
            serde_json::from_str::<Archive>(&stored.document),
        ) else {
            return Ok(None);
        };
        Ok(Some(UpstreamArchive {
            freshness: Freshness::new(upstream, stored.etag, stored.fetched_at),
            archive,
        }))
    }

    async fn save_archive(
        &self,
        upstream: Url,
        archive: Archive,
        etag: Option<String>,
    ) -> Result<UpstreamArchive, GatewayError> {
        let now = Utc::now();
        let document = serde_json::to_string(&archive).map_err(|error| {
            GatewayError::Upstream(UpstreamFailure::Malformed {
                url: upstream.to_string(),
                why: error.to_string(),
            })
        })?;
        self.database
            .save_upstream_page(
                SCOPE,
                &tree_key(ARCHIVE_RDS)?,
                &UpstreamPage {
                    upstream: upstream.to_string(),
                    document,
                    etag: etag.clone(),
                    fetched_at: now,
                },
            )
            .await?;
        Ok(UpstreamArchive {
            freshness: Freshness::new(upstream, etag, now),
            archive,
        })
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Reads an upstream `archive.rds` (gzip-compressed or not).
fn read_archive_rds(bytes: &[u8], url: &Url) -> Result<Archive, UpstreamFailure> {
    let malformed = |why: String| UpstreamFailure::Malformed {
        url: url.to_string(),
        why,
    };
    let mut plain = Vec::new();
    let bytes = if bytes.starts_with(&[0x1f, 0x8b]) {
        flate2::read::GzDecoder::new(bytes)
            .take(4 * MAX_ARCHIVE_RDS_BYTES as u64)
            .read_to_end(&mut plain)
            .map_err(|error| {
                malformed(format!("archive.rds could not be decompressed: {error}"))
            })?;
        plain.as_slice()
    } else {
        bytes
    };
    rds::deserialize(bytes)
        .and_then(|value| archive_from_value(&value))
        .map_err(|error| malformed(error.to_string()))
}

/// Compresses a document as well as gzip can: it is built rarely and sent often.
fn gzip(bytes: &[u8]) -> Result<Vec<u8>, GatewayError> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut encoder, bytes)
        .and_then(|()| encoder.finish())
        .map_err(|error| {
            GatewayError::Store(formulary_store::StoreError::Conflict(error.to_string()))
        })
}

/// Removes packages whose install-time dependencies are not in the index (or not in a version
/// they accept), until nothing changes.
fn withhold_unsatisfiable(kept: &mut Vec<Paragraph>, withheld: &mut Vec<String>) {
    loop {
        let available: HashMap<String, Version> = kept
            .iter()
            .filter_map(|paragraph| {
                Some((
                    field(paragraph, "Package")?.to_owned(),
                    Version::parse(Ecosystem::Cran, field(paragraph, "Version")?).ok()?,
                ))
            })
            .collect();
        let before = kept.len();
        kept.retain(|paragraph| {
            let missing: Vec<String> = cran::dependencies(paragraph)
                .into_iter()
                .filter(|dependency| !BASE_PACKAGES.contains(&dependency.name.as_str()))
                .filter(|dependency| {
                    !available
                        .get(&dependency.name)
                        .is_some_and(|version| dependency.range.contains(version))
                })
                .map(|dependency| format!("{} ({})", dependency.name, dependency.range))
                .collect();
            if missing.is_empty() {
                return true;
            }
            withheld.push(format!(
                "{}: needs {}, which this view does not serve",
                field(paragraph, "Package").unwrap_or("?"),
                missing.join(", ")
            ));
            false
        });
        if kept.len() == before {
            return;
        }
    }
}

fn gunzip(bytes: &[u8], url: &Url) -> Result<String, UpstreamFailure> {
    let mut text = String::new();
    flate2::read::GzDecoder::new(bytes)
        .take(MAX_PACKAGES_BYTES as u64)
        .read_to_string(&mut text)
        .map_err(|error| UpstreamFailure::Malformed {
            url: url.to_string(),
            why: format!("PACKAGES.gz could not be decompressed: {error}"),
        })?;
    Ok(text)
}

/// Reads `<package>/DESCRIPTION` from a source tarball.
fn read_description(tarball: &[u8], package: &str) -> Option<String> {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(tarball));
    for entry in archive.entries().ok()? {
        let mut entry = entry.ok()?;
        let path = entry.path().ok()?.to_string_lossy().into_owned();
        if path == format!("{package}/DESCRIPTION") {
            let mut text = String::new();
            (&mut entry)
                .take(MAX_DESCRIPTION_BYTES)
                .read_to_string(&mut text)
                .ok()?;
            return Some(text);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_r_repository_trees_are_accepted() {
        for good in [
            "src/contrib",
            "bin/windows/contrib/4.4",
            "bin/macosx/big-sur-arm64/contrib/4.4",
            "bin/macosx/contrib/4.3",
        ] {
            assert!(is_tree(good), "{good}");
        }
        for bad in [
            "src",
            "src/contrib/../..",
            "bin/windows/contrib/latest",
            "bin/macosx/../contrib/4.4",
            "etc/passwd",
            "",
        ] {
            assert!(!is_tree(bad), "{bad}");
        }
    }

    #[test]
    fn file_names_carry_package_and_version() {
        let (component, version) = parse_filename("readxl_1.4.3.tar.gz").unwrap();
        assert_eq!(
            (component.name.as_str(), version.to_string().as_str()),
            ("readxl", "1.4.3")
        );
        assert!(parse_filename("data.table_1.15.4.zip").is_some());
        for bad in [
            "readxl.tar.gz",
            "../x_1.0.tar.gz",
            "readxl_1.0.exe",
            "1x_1.0.tar.gz",
        ] {
            assert!(parse_filename(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn packages_with_missing_dependencies_are_withheld_transitively() {
        let mut kept = cran::parse_packages("Package: a\nVersion: 1.0\nImports: b\n\nPackage: b\nVersion: 1.0\nImports: c (>= 2.0)\n\nPackage: c\nVersion: 1.0\n\nPackage: d\nVersion: 1.0\nDepends: R (>= 4.0), stats\n").unwrap();
        let mut withheld = Vec::new();
        withhold_unsatisfiable(&mut kept, &mut withheld);
        let names: Vec<&str> = kept
            .iter()
            .filter_map(|paragraph| paragraph.get("Package"))
            .collect();
        assert_eq!(
            names,
            ["c", "d"],
            "b needs c >= 2.0; a needs b; d needs only R and base packages"
        );
        assert_eq!(withheld.len(), 2);
    }
}
