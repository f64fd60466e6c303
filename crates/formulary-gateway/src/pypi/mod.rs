//! The PyPI front-end (an adapter on the gateway engine): project pages from PEP 503/691
//! indexes, passed on as upstream wrote them (upload times, hashes, sizes, yanks and their
//! reasons, metadata, provenance, project status), with policy added: a denied version's files
//! are yanked with the policy's reason beside any reason of the publisher's, so resolvers skip
//! them and an exact pin reaches the refused download.

mod evidence;
pub(crate) mod mirror;
mod page;
mod requirements;
pub(crate) mod verify;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use formulary_core::ecosystems::pypi::{self, DistributionFile, ProjectPage};
use formulary_core::ecosystems::Version;
use formulary_core::policy::{Decision, PolicySnapshot, Release, View};
use formulary_core::Component;
use formulary_store::{
    Algorithm, BlobRef, BlobStore, Database, Digests, StoreError, UpstreamDocument,
};
use url::Url;

use crate::engine::documents::{Answer, Freshness, Lookup, Revalidated, Revalidating};
use crate::engine::files::{FileCache, Streamed, UpstreamFile};
use crate::engine::health::UpstreamStatus;
use crate::engine::rendered::Rendered;
use crate::engine::sanity::{HeldDocument, Sanity};
use crate::engine::timed::Timed;
use crate::engine::upstream::{as_folders, Fetched, UpstreamClient, UpstreamOptions};
use crate::engine::views::Views;
use crate::error::GatewayError;

pub use page::{without_request_sentence, ServedPage};

/// Files larger than this (or of unknown size) are streamed to the first client while they are
/// stored; smaller ones are verified before the first byte is sent, so that a corrupt upstream
/// copy is answered with a clear 502.
const STREAM_ABOVE_BYTES: u64 = 4 * 1024 * 1024;

/// URL scheme of files that live only in the blob store (imported for air-gapped sites).
const BLOB_SCHEME: &str = "formulary-blob:";

/// What the gateway knows about one project: the upstream page and the release evidence.
#[derive(Debug)]
struct Project {
    freshness: Freshness,
    page: ProjectPage,
    releases: Vec<Release>,
}

impl Revalidated for Project {
    fn freshness(&self) -> &Freshness {
        &self.freshness
    }

    fn with_freshness(&self, freshness: Freshness) -> Project {
        Project {
            freshness,
            page: self.page.clone(),
            releases: self.releases.clone(),
        }
    }
}

/// How long a built page is reused while nothing else changes: bounds how late time-based rules
/// (cooldown ends, pilot expiries) reach a page.
const PAGE_REUSE: Duration = Duration::from_secs(30);

/// The answer for a project page.
#[derive(Debug, Clone)]
pub enum PageOutcome {
    /// Serve this page.
    Page(Arc<ServedPage>),
    /// No upstream has the project.
    Missing,
}

/// The answer for a file.
pub enum FileOutcome {
    /// Serve this blob.
    Serve {
        /// Where it is stored.
        blob: BlobRef,
        /// The version it belongs to.
        version: String,
    },
    /// Serve these bytes as they arrive from upstream (the first request for a large uncached
    /// file); they are stored at the same time, and the stream breaks off before its last chunk
    /// if the file turns out not to match its published digest.
    Stream {
        /// The bytes.
        body: futures::stream::BoxStream<'static, Result<bytes::Bytes, std::io::Error>>,
        /// The size the index or the upstream announced, when known.
        size: Option<u64>,
        /// The digest the index announced.
        sha256: Option<String>,
        /// The version it belongs to.
        version: String,
    },
    /// The policy denies the file's version.
    Refused(Box<Decision>),
    /// No such file.
    Missing,
}

/// A file found and decided.
enum Located {
    Missing,
    Refused(Box<Decision>),
    Allowed {
        file: Box<DistributionFile>,
        version: String,
    },
}

/// The PyPI front-end's logic.
#[derive(Debug)]
pub struct PypiGateway {
    database: Database,
    client: UpstreamClient,
    upstreams: Vec<Url>,
    projects: Revalidating<Project>,
    files: FileCache,
    pages: Views<PageOutcome>,
    /// Where this gateway's cached index documents are kept apart from other gateways'.
    scope: String,
    /// Upstream pages held back because they look wrong next to the cached ones.
    sanity: Sanity,
    /// Whether legacy files (`.egg`, `.exe`, `.msi`) the upstream lists are served.
    legacy_files: bool,
    /// The root listing, rendered, read from the store at most once per [`ROOT_LISTING_TTL`].
    root: Timed<RootListing>,
}

/// How long the root listing is reused: a project first cached by another replica appears in
/// this one's listing within this time (at once for projects this replica caches itself).
pub const ROOT_LISTING_TTL: std::time::Duration = std::time::Duration::from_secs(5);

/// `/simple/` as HTML and as PEP 691 JSON, rendered once for every request until it changes.
#[derive(Debug)]
pub struct RootListing {
    /// The PEP 503 page.
    pub html: Rendered,
    /// The PEP 691 document.
    pub json: Rendered,
}

/// The cache scope of the gateway serving organisations that have no upstreams of their own
/// (and of files imported with `mirror import`).
pub const DEFAULT_SCOPE: &str = "pypi";

impl PypiGateway {
    /// A gateway over `upstreams` (simple index URLs, tried in order; none for an air-gapped
    /// site that serves only imported files).
    pub fn new(
        database: Database,
        blobs: BlobStore,
        upstreams: Vec<Url>,
        options: &UpstreamOptions,
    ) -> Result<PypiGateway, reqwest::Error> {
        let upstreams = as_folders(upstreams);
        let client = UpstreamClient::new(options.budget)?;
        Ok(PypiGateway {
            database: database.clone(),
            files: FileCache::new(database.clone(), blobs, client.clone()),
            client,
            upstreams,
            projects: Revalidating::new(options.revalidate_after, options.patience),
            pages: Views::new(PAGE_REUSE, 10_000),
            scope: DEFAULT_SCOPE.to_owned(),
            sanity: Sanity::default(),
            legacy_files: false,
            root: Timed::new(ROOT_LISTING_TTL),
        })
    }

    /// Serves (or, by default, leaves out) the legacy files (`.egg`, `.exe`, `.msi`) upstream
    /// indexes still list: neither pip nor uv installs them, and the installers run code.
    pub fn serving_legacy_files(mut self, serve: bool) -> PypiGateway {
        self.legacy_files = serve;
        self
    }

    /// Makes this the gateway of one organisation that has upstreams of its own: its cached
    /// index documents are kept apart from the default gateway's.
    pub fn for_organisation(mut self, organisation: &formulary_core::OrgCode) -> PypiGateway {
        self.scope = format!("{DEFAULT_SCOPE}@{organisation}");
        self
    }

    /// Names of the projects this gateway has seen, for the root index.
    pub async fn known_projects(&self) -> Result<Vec<String>, GatewayError> {
        Ok(self.database.upstream_document_keys(&self.scope).await?)
    }

    /// The root index, rendered: read from the store at most once per [`ROOT_LISTING_TTL`]
    /// (the last listing is served when the store fails), so `/simple/` costs no database
    /// round trip or rendering per request.
    pub async fn root_listing(&self) -> Result<Arc<RootListing>, GatewayError> {
        self.root
            .get(|| async {
                let projects = self.known_projects().await?;
                Ok::<_, GatewayError>(RootListing {
                    html: Rendered::new(pypi::render_root_html(&projects)),
                    json: Rendered::new(pypi::render_root_json(&projects)),
                })
            })
            .await
    }

    /// The project, fetched or revalidated when its cached copy is old, served from the cache
    /// (marked stale) when every upstream fails.
    async fn project(&self, component: &Component) -> Result<Option<Arc<Project>>, GatewayError> {
        let name = component.name.as_str();
        let lookup = self
            .projects
            .get(
                name,
                &self.upstreams,
                Box::pin(self.load_cached(component)),
                |index: Url, etag: Option<String>| {
                    let (client, name) = (self.client.clone(), name.to_owned());
                    Box::pin(async move {
                        Ok(
                            match client.project_page(&index, &name, etag.as_deref()).await? {
                                Fetched::Page { page, etag } => Answer::Document((page, etag)),
                                Fetched::NotModified => Answer::NotModified,
                                Fetched::Missing => Answer::Missing,
                            },
                        )
                    })
                },
                |index: Url,
                 (page, etag): (ProjectPage, Option<String>),
                 previous: Option<Arc<Project>>| {
                    Box::pin(async move {
                        self.refresh(component, &index, page, etag, previous.as_deref())
                            .await
                    })
                },
            )
            .await?;
        Ok(match lookup {
            Lookup::Found(project) => Some(project),
            // Every upstream says the project does not exist; imported files still count.
            Lookup::Absent(cached) => {
                cached.filter(|project| project.freshness.origin.as_str().starts_with(BLOB_SCHEME))
            }
        })
    }

    async fn load_cached(&self, component: &Component) -> Result<Option<Project>, GatewayError> {
        let Some(stored) = self
            .database
            .upstream_document(&self.scope, component.name.as_str())
            .await?
        else {
            return Ok(None);
        };
        let base = Url::parse("https://cached.invalid/")
            .map_err(|error| StoreError::Conflict(error.to_string()))?;
        let page = pypi::parse_json(stored.document.as_bytes(), &base).map_err(|error| {
            StoreError::Conflict(format!("cached page of {component}: {error}"))
        })?;
        let releases = self.database.releases_of(component).await?;
        let project = Project {
            freshness: Freshness::stored(&stored)?,
            page,
            releases,
        };
        Ok(Some(project))
    }

    /// Stores a newly fetched page and works out each release's evidence. Publication time
    /// comes from the index's `upload-time` (PEP 700). Where the index gives none (HTML-only
    /// indexes), a version that appears after Formulary first saw the project is dated by when
    /// it first appeared, so the cooldown holds brand-new releases; versions present at the first
    /// sight stay undated, so a whole index is not blocked on day one.
    async fn refresh(
        &self,
        component: &Component,
        index: &Url,
        mut page: ProjectPage,
        etag: Option<String>,
        previous: Option<&Project>,
    ) -> Result<Project, GatewayError> {
        let upstream_files = |page: &ProjectPage| {
            page.files
                .iter()
                .filter(|file| !file.url.starts_with(BLOB_SCHEME))
                .count()
        };
        self.sanity.admit(
            component.name.as_str(),
            index,
            previous.map_or(0, |previous| upstream_files(&previous.page)),
            upstream_files(&page),
        )?;
        if previous.is_none() {
            // A project new to this gateway: list it at once.
            self.root.invalidate();
        }
        if let Some(previous) = previous {
            // Keep imported files that the upstream does not have.
            let imported: Vec<DistributionFile> = previous
                .page
                .files
                .iter()
                .filter(|file| {
                    file.url.starts_with(BLOB_SCHEME)
                        && !page
                            .files
                            .iter()
                            .any(|upstream| upstream.filename == file.filename)
                })
                .cloned()
                .collect();
            page.files.extend(imported);
        }
        let known: HashMap<String, Release> = self
            .database
            .releases_of(component)
            .await?
            .into_iter()
            .map(|release| (release.version.to_string(), release))
            .collect();
        let has_history = !known.is_empty();
        let now = Utc::now();
        let mut releases = Vec::new();
        for (version, files) in files_by_version(component, &page) {
            let upload_time = files
                .iter()
                .filter_map(|file| file.upload_time.as_deref())
                .filter_map(formulary_core::advisory::parse_timestamp)
                .min();
            let text = version.to_string();
            let previous_release = known.get(&text);
            let published = upload_time
                .or_else(|| previous_release.and_then(|release| release.published))
                .or_else(|| (has_history && previous_release.is_none()).then_some(now));
            let dated_by_first_sight = upload_time.is_none()
                && published.is_some()
                && previous_release.is_none_or(|release| release.dated_by_first_sight);
            let yanked = files.iter().all(|file| file.yanked.is_some()).then(|| {
                files
                    .iter()
                    .find_map(|file| file.yanked.clone())
                    .unwrap_or_default()
            });
            let release = Release {
                dated_by_first_sight,
                version,
                published,
                yanked,
                licence: previous_release.and_then(|release| release.licence.clone()),
                install_scripts: false,
            };
            if previous_release != Some(&release) {
                self.database.record_release(component, &release).await?;
            }
            releases.push(release);
        }
        let document = String::from_utf8(pypi::render_json(&page)).unwrap_or_default();
        let stored = UpstreamDocument {
            upstream: index.to_string(),
            document,
            etag: etag.clone(),
            fetched_at: now,
        };
        self.database
            .save_upstream_document(&self.scope, component.name.as_str(), &stored)
            .await?;
        Ok(Project {
            freshness: Freshness::new(index.clone(), etag, now),
            page,
            releases,
        })
    }

    /// Finds a file of a project and decides its version for a view.
    async fn locate(
        &self,
        snapshot: &PolicySnapshot,
        view: &View,
        component: &Component,
        filename: &str,
    ) -> Result<Located, GatewayError> {
        if pypi::check_filename(filename).is_err()
            || (!self.legacy_files && pypi::is_legacy_distribution(filename))
        {
            return Ok(Located::Missing);
        }
        let Some(project) = self.project(component).await? else {
            return Ok(Located::Missing);
        };
        let Some(file) = project
            .page
            .files
            .iter()
            .find(|file| file.filename == filename)
            .cloned()
        else {
            return Ok(Located::Missing);
        };
        let Some(version) = pypi::version_from_filename(&component.name, filename) else {
            return Ok(Located::Missing);
        };
        let decision = formulary_core::policy::evaluate_version(
            snapshot,
            view,
            component,
            &version,
            &project.releases,
        );
        if !decision.allowed {
            return Ok(Located::Refused(Box::new(decision)));
        }
        Ok(Located::Allowed {
            file: Box::new(file),
            version: version.to_string(),
        })
    }

    /// A file for a view: refused when its version is denied, else served from the blob store,
    /// fetched once from upstream (and checked against its published digest) when not cached.
    ///
    /// With `stream` false (the client asked for a range), a large uncached file is fetched
    /// whole and verified first, so that the range can be answered from the cache.
    pub async fn file(
        &self,
        snapshot: &PolicySnapshot,
        view: &View,
        component: &Component,
        filename: &str,
        stream: bool,
    ) -> Result<FileOutcome, GatewayError> {
        match self.locate(snapshot, view, component, filename).await? {
            Located::Missing => Ok(FileOutcome::Missing),
            Located::Refused(decision) => Ok(FileOutcome::Refused(decision)),
            Located::Allowed { file, version } => {
                // Large files, and files whose size the index does not give, reach the client
                // as they arrive (pip gives up after 15 s without a byte); they are verified at
                // the end and only then cached.
                let large_or_unknown = file.size.is_none_or(|size| size > STREAM_ABOVE_BYTES);
                if stream && large_or_unknown && !file.url.starts_with(BLOB_SCHEME) {
                    return Ok(
                        match self
                            .files
                            .fetch_streaming(&upstream_file(&file), STREAM_ABOVE_BYTES)
                            .await?
                        {
                            Streamed::Cached(blob) => FileOutcome::Serve { blob, version },
                            Streamed::Arriving { body, length } => FileOutcome::Stream {
                                body,
                                size: length,
                                sha256: file.sha256().map(str::to_owned),
                                version,
                            },
                        },
                    );
                }
                Ok(FileOutcome::Serve {
                    blob: self.ensure_blob(&file).await?,
                    version,
                })
            }
        }
    }

    /// A file's core metadata (PEP 658/714: `<file>.metadata`), under the same policy as the file.
    /// Fetched once from `<upstream file URL>.metadata` and checked against the digest the index
    /// announced; imported wheels carry theirs in the blob store.
    pub async fn metadata(
        &self,
        snapshot: &PolicySnapshot,
        view: &View,
        component: &Component,
        filename: &str,
    ) -> Result<FileOutcome, GatewayError> {
        let (file, version) = match self.locate(snapshot, view, component, filename).await? {
            Located::Missing => return Ok(FileOutcome::Missing),
            Located::Refused(decision) => return Ok(FileOutcome::Refused(decision)),
            Located::Allowed { file, version } => (file, version),
        };
        let Some(hashes) = file.core_metadata.clone() else {
            return Ok(FileOutcome::Missing);
        };
        if file.url.starts_with(BLOB_SCHEME) {
            let Some(digest) = hashes.get("sha256") else {
                return Ok(FileOutcome::Missing);
            };
            if !self.files.blobs().contains(digest).await? {
                return Ok(FileOutcome::Missing);
            }
            return Ok(FileOutcome::Serve {
                blob: BlobRef {
                    sha256: digest.clone(),
                    size: 0,
                },
                version,
            });
        }
        let metadata_file = DistributionFile {
            filename: format!("{}.metadata", file.filename),
            url: format!("{}.metadata", file.url),
            hashes,
            ..DistributionFile::default()
        };
        Ok(FileOutcome::Serve {
            blob: self.ensure_blob(&metadata_file).await?,
            version,
        })
    }

    async fn ensure_blob(&self, file: &DistributionFile) -> Result<BlobRef, GatewayError> {
        if let Some(digest) = file
            .url
            .strip_prefix(BLOB_SCHEME)
            .and_then(|rest| rest.strip_prefix("sha256/"))
        {
            if self.files.blobs().contains(digest).await? {
                return Ok(BlobRef {
                    sha256: digest.to_owned(),
                    size: file.size.unwrap_or(0),
                });
            }
            return Err(GatewayError::Store(StoreError::NotFound(format!(
                "the imported file {}",
                file.filename
            ))));
        }
        self.files.fetch(&upstream_file(file)).await
    }
}

/// What the file cache needs to know about a distribution file: every digest the index
/// publishes, its size, and the format check for its kind (a `.metadata` file has none).
fn upstream_file(file: &DistributionFile) -> UpstreamFile<'_> {
    let mut digests = Digests::none();
    for (name, value) in &file.hashes {
        if let Some(algorithm) = Algorithm::parse(name) {
            match digests.clone().with(algorithm, value) {
                Ok(more) => digests = more,
                Err(error) => {
                    tracing::warn!(file = %file.filename, %error, "ignoring a malformed published digest")
                }
            }
        }
    }
    UpstreamFile {
        url: &file.url,
        filename: &file.filename,
        digests,
        size: file.size,
        check: verify::check_for(&file.filename),
    }
}

/// The page's files grouped by the version their names carry (files whose names carry no
/// version of this project are left out).
fn files_by_version<'a>(
    component: &Component,
    page: &'a ProjectPage,
) -> BTreeMap<Version, Vec<&'a DistributionFile>> {
    let mut grouped: BTreeMap<Version, Vec<&DistributionFile>> = BTreeMap::new();
    for file in &page.files {
        if let Some(version) = pypi::version_from_filename(&component.name, &file.filename) {
            grouped.entry(version).or_default().push(file);
        }
    }
    grouped
}

impl crate::Watched for PypiGateway {
    fn upstream_health(&self) -> Vec<UpstreamStatus> {
        self.client.health()
    }

    fn held_back(&self) -> Vec<HeldDocument> {
        self.sanity.held()
    }

    fn accept_held(&self, document: &str) -> Option<HeldDocument> {
        let held = self.sanity.accept(document)?;
        self.projects.expire(document);
        Some(held)
    }
}
