use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use formulary_core::ecosystems::pypi::{self, DistributionFile, ProjectPage};
use formulary_core::ecosystems::Version;
use formulary_core::policy::{
    evaluate_releases, Decision, PolicySnapshot, ReasonCode, Release, View,
};
use formulary_core::Component;
use formulary_store::{BlobRef, BlobStore, Database, StoreError, UpstreamPage};
use url::Url;

use crate::error::GatewayError;
use crate::files::{FileCache, UpstreamFile};
use crate::revalidating::{Answer, Freshness, Lookup, Revalidated, Revalidating};
use crate::upstream::{as_folders, Fetched, UpstreamClient};

/// Files the index announces as larger than this are streamed to the first client while they are
/// stored; smaller ones (and files of unknown size) are verified before the first byte is sent,
/// so that a corrupt upstream copy is answered with a clear 502.
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

/// A document rendered once, with its strong entity tag.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// The bytes.
    pub body: bytes::Bytes,
    /// `"<sha256 of the body>"`.
    pub etag: String,
}

impl Rendered {
    /// Wraps rendered bytes and computes their entity tag.
    pub fn new(body: Vec<u8>) -> Rendered {
        use sha2::Digest;
        let etag = format!("\"{}\"", hex::encode(sha2::Sha256::digest(&body)));
        Rendered {
            body: bytes::Bytes::from(body),
            etag,
        }
    }
}

/// A project page ready to serve for one view, rendered at most once per format.
#[derive(Debug)]
pub struct ServedPage {
    /// The page, with file URLs pointing at this gateway and denied versions yanked with their
    /// reason.
    pub page: ProjectPage,
    /// True when the upstream could not be reached and the page comes from the cache.
    pub stale: bool,
    json: std::sync::OnceLock<Rendered>,
    html: std::sync::OnceLock<Rendered>,
}

impl ServedPage {
    /// The page as PEP 691 JSON.
    pub fn json(&self) -> &Rendered {
        self.json
            .get_or_init(|| Rendered::new(pypi::render_json(&self.page)))
    }

    /// The page as PEP 503 HTML.
    pub fn html(&self) -> &Rendered {
        self.html
            .get_or_init(|| Rendered::new(pypi::render_html(&self.page)))
    }
}

/// How long a built page is reused while nothing else changes: bounds how late time-based rules
/// (cooldown ends, pilot expiries) reach a page.
const PAGE_REUSE: Duration = Duration::from_secs(30);

/// A built page and what it was built from.
#[derive(Debug)]
struct CachedPage {
    generation: i64,
    project: Arc<Project>,
    files_base: String,
    built: std::time::Instant,
    served: Arc<ServedPage>,
}

/// Pages are cached per project, organisation and snapshot day (`None`: now).
type PageKey = (String, formulary_core::OrgCode, Option<chrono::NaiveDate>);

/// The answer for a project page.
#[derive(Debug)]
pub enum PageOutcome {
    /// Serve this page.
    Page(Arc<ServedPage>),
    /// The view allows no version of the project (a curated view without an entry).
    NotInFormulary(Box<Decision>),
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
        /// The size the index announced.
        size: u64,
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
    pages: Mutex<HashMap<PageKey, CachedPage>>,
    /// Where this gateway's cached index documents are kept apart from other gateways'.
    scope: String,
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
        timeout: Duration,
        revalidate_after: Duration,
    ) -> Result<PypiGateway, reqwest::Error> {
        let upstreams = as_folders(upstreams);
        let client = UpstreamClient::new(timeout)?;
        Ok(PypiGateway {
            database,
            files: FileCache::new(blobs, client.clone()),
            client,
            upstreams,
            projects: Revalidating::new(
                chrono::Duration::from_std(revalidate_after)
                    .unwrap_or(chrono::Duration::minutes(10)),
            ),
            pages: Mutex::new(HashMap::new()),
            scope: DEFAULT_SCOPE.to_owned(),
        })
    }

    /// Makes this the gateway of one organisation that has upstreams of its own: its cached
    /// index documents are kept apart from the default gateway's.
    pub fn for_organisation(mut self, organisation: &formulary_core::OrgCode) -> PypiGateway {
        self.scope = format!("{DEFAULT_SCOPE}@{organisation}");
        self
    }

    /// Names of the projects this gateway has seen, for the root index.
    pub async fn known_projects(&self) -> Result<Vec<String>, GatewayError> {
        Ok(self.database.cached_projects(&self.scope).await?)
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
                    Box::pin(async move {
                        Ok(
                            match self
                                .client
                                .project_page(&index, name, etag.as_deref())
                                .await?
                            {
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
        let Some(stored) = self.database.upstream_page(&self.scope, component).await? else {
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
            let yanked = files.iter().all(|file| file.yanked.is_some()).then(|| {
                files
                    .iter()
                    .find_map(|file| file.yanked.clone())
                    .unwrap_or_default()
            });
            let release = Release {
                version,
                published,
                yanked,
                licence: previous_release.and_then(|release| release.licence.clone()),
            };
            if previous_release != Some(&release) {
                self.database.record_release(component, &release).await?;
            }
            releases.push(release);
        }
        let document = String::from_utf8(pypi::render_json(&page)).unwrap_or_default();
        let stored = UpstreamPage {
            upstream: index.to_string(),
            document,
            etag: etag.clone(),
            fetched_at: now,
        };
        self.database
            .save_upstream_page(&self.scope, component, &stored)
            .await?;
        Ok(Project {
            freshness: Freshness::new(index.clone(), etag, now),
            page,
            releases,
        })
    }

    /// The project page for a view: denied versions yanked with their reason, file URLs under
    /// `files_base` (relative to the page, e.g. `../../files/requests/`).
    ///
    /// `generation` identifies the snapshot (its change counter) and `day` the snapshot date of a
    /// dated view: a page built for the same project, view, generation and upstream document is
    /// reused for up to 30 seconds.
    pub async fn page(
        &self,
        snapshot: &PolicySnapshot,
        generation: i64,
        view: &View,
        day: Option<chrono::NaiveDate>,
        component: &Component,
        files_base: &str,
    ) -> Result<PageOutcome, GatewayError> {
        let Some(project) = self.project(component).await? else {
            return Ok(PageOutcome::Missing);
        };
        let key: PageKey = (component.name.to_string(), view.organisation.clone(), day);
        {
            let pages = self
                .pages
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(cached) = pages.get(&key) {
                let current = cached.generation == generation
                    && Arc::ptr_eq(&cached.project, &project)
                    && cached.files_base == files_base
                    && cached.built.elapsed() < PAGE_REUSE;
                if current {
                    return Ok(PageOutcome::Page(Arc::clone(&cached.served)));
                }
            }
        }
        let releases: Vec<Release> = project
            .releases
            .iter()
            .filter(|release| {
                release
                    .published
                    .is_none_or(|published| published <= view.at)
            })
            .cloned()
            .collect();
        let decisions = evaluate_releases(snapshot, view, component, &releases);
        let outside = |decision: &Decision| {
            !decision.allowed
                && decision
                    .reasons
                    .iter()
                    .any(|reason| reason.code == ReasonCode::NotInFormulary)
        };
        if let Some(first) = decisions.first().filter(|_| decisions.iter().all(outside)) {
            return Ok(PageOutcome::NotInFormulary(Box::new(first.clone())));
        }
        let by_version: HashMap<String, &Decision> = decisions
            .iter()
            .map(|decision| (decision.version.clone(), decision))
            .collect();
        let mut files = Vec::with_capacity(project.page.files.len());
        let mut versions = Vec::new();
        for file in &project.page.files {
            let Some(version) = pypi::version_from_filename(&component.name, &file.filename) else {
                continue;
            };
            let Some(decision) = by_version.get(&version.to_string()) else {
                continue;
            };
            if pypi::check_filename(&file.filename).is_err() {
                continue;
            }
            let mut served = file.clone();
            served.url = format!("{files_base}{}", file.filename);
            served.upload_time = releases
                .iter()
                .find(|release| release.version == version)
                .and_then(|release| release.published)
                .map(|time| time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                .or(served.upload_time);
            if !decision.allowed {
                served.yanked = Some(format!(
                    "Blocked by Formulary: {}",
                    decision.headline().unwrap_or("denied by policy")
                ));
            }
            versions.push(version);
            files.push(served);
        }
        versions.sort();
        versions.dedup();
        let page = ProjectPage {
            name: component.name.to_string(),
            files,
            versions: versions.iter().map(ToString::to_string).collect(),
        };
        let served = Arc::new(ServedPage {
            page,
            stale: project.freshness.stale,
            json: std::sync::OnceLock::new(),
            html: std::sync::OnceLock::new(),
        });
        let mut pages = self
            .pages
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if pages.len() >= 10_000 {
            pages.clear();
        }
        pages.insert(
            key,
            CachedPage {
                generation,
                project,
                files_base: files_base.to_owned(),
                built: std::time::Instant::now(),
                served: Arc::clone(&served),
            },
        );
        Ok(PageOutcome::Page(served))
    }

    /// Finds a file of a project and decides its version for a view.
    async fn locate(
        &self,
        snapshot: &PolicySnapshot,
        view: &View,
        component: &Component,
        filename: &str,
    ) -> Result<Located, GatewayError> {
        if pypi::check_filename(filename).is_err() {
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
    pub async fn file(
        &self,
        snapshot: &PolicySnapshot,
        view: &View,
        component: &Component,
        filename: &str,
    ) -> Result<FileOutcome, GatewayError> {
        match self.locate(snapshot, view, component, filename).await? {
            Located::Missing => Ok(FileOutcome::Missing),
            Located::Refused(decision) => Ok(FileOutcome::Refused(decision)),
            Located::Allowed { file, version } => {
                let large = file.size.filter(|size| *size > STREAM_ABOVE_BYTES);
                match large {
                    Some(size) if !file.url.starts_with(BLOB_SCHEME) => {
                        match self.files.fetch_streaming(upstream_file(&file)).await? {
                            Ok(blob) => Ok(FileOutcome::Serve { blob, version }),
                            Err(body) => Ok(FileOutcome::Stream {
                                body,
                                size,
                                sha256: file.sha256().map(str::to_owned),
                                version,
                            }),
                        }
                    }
                    _ => Ok(FileOutcome::Serve {
                        blob: self.ensure_blob(&file).await?,
                        version,
                    }),
                }
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
        self.files.fetch(upstream_file(file)).await
    }
}

/// What the file cache needs to know about a distribution file.
fn upstream_file(file: &DistributionFile) -> UpstreamFile<'_> {
    UpstreamFile {
        url: &file.url,
        filename: &file.filename,
        sha256: file.sha256(),
        size: file.size,
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
