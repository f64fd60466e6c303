//! The CRAN front-end (an adapter on the gateway engine): `PACKAGES` indexes per repository
//! tree (`src/contrib`, `bin/windows/contrib/4.4`, `bin/macosx/…/contrib/4.4`), filtered by
//! policy, `Meta/archive.rds`, and package files fetched through the engine's file cache,
//! verified against `MD5sum` and their own DESCRIPTION.
//!
//! R has no yank marker, so a denied version leaves the index. When the newest version of a
//! package is denied, the newest allowed version from the upstream's `Archive/` takes its place,
//! described from the archived tarball's own DESCRIPTION, so `install.packages()` installs that
//! instead. A package whose dependencies cannot be served leaves the index too: the index never
//! promises an install that must fail.

mod archive;
mod evidence;
mod files;
pub(crate) mod imported;
mod index;
pub(crate) mod mirror;
mod published;
pub(crate) mod tree;
mod verify;

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use deb822_fast::Paragraph;
use formulary_core::ecosystems::cran;
use formulary_core::ecosystems::Ecosystem;
use formulary_store::{BlobStore, Database, UpstreamDocument};
use url::Url;

use crate::engine::documents::{Answer, Freshness, Lookup, Revalidated, Revalidating};
use crate::engine::files::FileCache;
use crate::engine::health::UpstreamStatus;
use crate::engine::rendered::Rendered;
use crate::engine::sanity::{HeldDocument, Sanity};
use crate::engine::upstream::{
    as_folders, Document, UpstreamClient, UpstreamFailure, UpstreamOptions,
};
use crate::engine::views::Views;
use crate::error::GatewayError;
use archive::UpstreamArchive;
use imported::ImportedFiles;
use tree::{field, release_of, tree_key, SCOPE};

pub use files::CranFileOutcome;
pub use index::ServedIndex;
pub(crate) use index::DESCRIPTIONS_SCOPE;
pub use tree::{cached_index, is_tree, parse_filename, refusal_slug};

/// Largest `PACKAGES` index read (CRAN's is about 10 MB uncompressed).
const MAX_PACKAGES_BYTES: usize = 128 * 1024 * 1024;
/// How long a built index is reused while nothing else changes.
const INDEX_REUSE: Duration = Duration::from_secs(30);

/// One repository tree as last fetched.
#[derive(Debug)]
struct Tree {
    /// Where it came from (its files are relative to `freshness.origin`) and when.
    freshness: Freshness,
    paragraphs: Vec<Paragraph>,
    /// Publication dates: the upstream's (`Meta/current.rds`) where it gives them, else when
    /// versions that appeared after Formulary first saw the tree were first seen.
    published: HashMap<(String, String), DateTime<Utc>>,
    /// The versions whose date is the upstream's own (the others' are first sightings).
    dated_upstream: HashSet<(String, String)>,
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
            dated_upstream: self.dated_upstream.clone(),
        }
    }
}

/// The CRAN front-end.
#[derive(Debug)]
pub struct CranGateway {
    database: Database,
    client: UpstreamClient,
    files: Arc<FileCache>,
    upstreams: Vec<Url>,
    trees: Revalidating<Tree>,
    /// DESCRIPTIONs of archived tarballs, by (package, version).
    descriptions: Descriptions,
    /// Fetches of archived tarballs' DESCRIPTIONs that outlived the index build that started
    /// them (a build waits for them at most the patience).
    describing: Mutex<HashMap<(String, String), Describing>>,
    /// Replaced whenever such a fetch finishes, so that the next request rebuilds the indexes
    /// that went without it.
    described: Arc<Mutex<Arc<()>>>,
    /// How long an index build waits for the upstream beyond the cached documents (archived
    /// DESCRIPTIONs, `archive.rds`): the requests' patience.
    patience: Duration,
    indexes: Views<ServedIndex>,
    /// Files put in by `mirror import cran`, and when they were read from the store.
    imported: Mutex<Option<(std::time::Instant, Arc<ImportedFiles>)>>,
    /// How long the list of imported files is trusted before it is read again.
    reload_after: Duration,
    /// The upstream's `src/contrib/Meta/archive.rds`.
    archives: Revalidating<UpstreamArchive>,
    /// Built `archive.rds` files per organisation and snapshot day.
    archive_files: Views<Rendered>,
    /// Upstream indexes held back because they look wrong next to the cached ones.
    sanity: Sanity,
}

impl CranGateway {
    /// A gateway over CRAN-like repositories (tried in order; none for an air-gapped site).
    pub fn new(
        database: Database,
        blobs: BlobStore,
        upstreams: Vec<Url>,
        options: &UpstreamOptions,
    ) -> Result<CranGateway, reqwest::Error> {
        let upstreams = as_folders(upstreams);
        let client = UpstreamClient::new(options.budget)?;
        let revalidate_after = options.revalidate_after;
        Ok(CranGateway {
            database: database.clone(),
            files: Arc::new(FileCache::new(database.clone(), blobs, client.clone())),
            client,
            upstreams,
            trees: Revalidating::new(revalidate_after, options.patience),
            descriptions: Arc::default(),
            describing: Mutex::default(),
            described: Arc::default(),
            patience: options.patience,
            indexes: Views::new(INDEX_REUSE, 1_000),
            imported: Mutex::new(None),
            reload_after: revalidate_after,
            // Needed only when a current version is denied: an index build never waits for it
            // beyond the patience, even the first time (the fetch goes on behind).
            archives: Revalidating::new(revalidate_after, options.patience)
                .answering_within_patience(),
            archive_files: Views::new(INDEX_REUSE, 1_000),
            sanity: Sanity::default(),
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

    /// Fetches or revalidates the source tree's index (`src/contrib/PACKAGES`) when old, so what
    /// is cached is current; for work done outside a request, such as dependency closures.
    pub async fn source_tree(&self) -> Result<(), GatewayError> {
        self.tree("src/contrib").await.map(|_| ())
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
                    let (client, name) = (self.client.clone(), name.to_owned());
                    Box::pin(async move {
                        fetch_packages(&client, &upstream, &name, etag.as_deref()).await
                    })
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

    async fn load_cached(&self, name: &str) -> Result<Option<Tree>, GatewayError> {
        let key = tree_key(name);
        let Some(stored) = self.database.upstream_document(SCOPE, &key).await? else {
            return Ok(None);
        };
        let paragraphs = cran::read_packages(&stored.document).paragraphs;
        let freshness = Freshness::stored(&stored)?;
        let mut published = self.published_dates(&paragraphs).await?;
        let dated_upstream = if name == SOURCE_TREE {
            let times = self.stored_published_times().await;
            published_upstream(&mut published, &paragraphs, &times)
        } else {
            HashSet::new()
        };
        let tree = Tree {
            freshness,
            paragraphs,
            published,
            dated_upstream,
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
        let read = cran::read_packages(text);
        if !read.skipped.is_empty() {
            tracing::warn!(tree = name, %upstream, skipped = ?read.skipped, "PACKAGES entries skipped: they cannot be read (the rest of the index is served)");
        }
        let paragraphs = read.paragraphs;
        self.sanity.admit(
            name,
            upstream,
            previous.map_or(0, |tree| tree.paragraphs.len()),
            paragraphs.len(),
        )?;
        let now = Utc::now();
        let mut published = previous
            .map(|tree| tree.published.clone())
            .unwrap_or_default();
        // The upstream's own publication times where it gives them (CRAN's current.rds);
        // versions it does not date are dated by when they were first seen.
        let upstream_times = if name == SOURCE_TREE {
            self.refresh_published_times(upstream).await
        } else {
            published::PublishedTimes::new()
        };
        let dated_upstream = published_upstream(&mut published, &paragraphs, &upstream_times);
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
                    if let Some((component, mut release)) =
                        release_of(paragraph, &HashMap::new(), &HashSet::new())
                    {
                        release.published = Some(now);
                        release.dated_by_first_sight = true;
                        self.database.record_release(&component, &release).await?;
                        published.insert(key, now);
                    }
                }
            }
        }
        let key = tree_key(name);
        let stored = UpstreamDocument {
            upstream: upstream.to_string(),
            document: text.to_owned(),
            etag: etag.clone(),
            fetched_at: now,
        };
        self.database
            .save_upstream_document(SCOPE, &key, &stored)
            .await?;
        Ok(Tree {
            freshness: Freshness::new(upstream.clone(), etag, now),
            paragraphs,
            published,
            dated_upstream,
        })
    }
}

/// The tree that `Meta/current.rds` describes.
const SOURCE_TREE: &str = "src/contrib";

/// Puts the upstream's publication times (by tarball name) in place of any other date; returns
/// the versions so dated.
fn published_upstream(
    published: &mut HashMap<(String, String), DateTime<Utc>>,
    paragraphs: &[Paragraph],
    times: &published::PublishedTimes,
) -> HashSet<(String, String)> {
    let mut dated = HashSet::new();
    if times.is_empty() {
        return dated;
    }
    for paragraph in paragraphs {
        let (Some(package), Some(version)) =
            (field(paragraph, "Package"), field(paragraph, "Version"))
        else {
            continue;
        };
        if let Some(time) = times.get(&format!("{package}_{version}.tar.gz")) {
            let key = (package.to_owned(), version.to_owned());
            published.insert(key.clone(), *time);
            dated.insert(key);
        }
    }
    dated
}

/// Fetches a tree's `PACKAGES.gz` (else `PACKAGES`) from one upstream.
async fn fetch_packages(
    client: &UpstreamClient,
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
        match client.document(&url, etag, MAX_PACKAGES_BYTES).await? {
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

/// A fetch of an archived tarball's DESCRIPTION running behind.
type Describing = tokio::task::JoinHandle<Option<Paragraph>>;

/// DESCRIPTIONs of archived tarballs, by (package, version).
type Descriptions = Arc<Mutex<HashMap<(String, String), Paragraph>>>;

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
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

impl crate::Watched for CranGateway {
    fn upstream_health(&self) -> Vec<UpstreamStatus> {
        self.client.health()
    }

    fn held_back(&self) -> Vec<HeldDocument> {
        self.sanity.held()
    }

    fn accept_held(&self, document: &str) -> Option<HeldDocument> {
        let held = self.sanity.accept(document)?;
        self.trees.expire(document);
        Some(held)
    }
}
