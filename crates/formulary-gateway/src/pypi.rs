use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use formulary_core::ecosystems::pypi::{self, DistributionFile, ProjectPage};
use formulary_core::ecosystems::{Ecosystem, Version};
use formulary_core::policy::{
    evaluate_releases, Decision, PolicySnapshot, ReasonCode, Release, View,
};
use formulary_core::Component;
use formulary_store::{BlobRef, BlobStore, Database, StoreError, UpstreamPage};
use url::Url;

use crate::error::GatewayError;
use crate::single_flight::SingleFlight;
use crate::upstream::{Fetched, UpstreamClient, UpstreamFailure};

/// URL scheme of files that live only in the blob store (imported for air-gapped sites).
const BLOB_SCHEME: &str = "formulary-blob:";

/// What the gateway knows about one project: the upstream page and the release evidence.
#[derive(Debug)]
struct Project {
    page: ProjectPage,
    releases: Vec<Release>,
    upstream: String,
    etag: Option<String>,
    checked_at: DateTime<Utc>,
    stale: bool,
}

/// A project page ready to render for one view.
#[derive(Debug, Clone)]
pub struct ServedPage {
    /// The page, with file URLs pointing at this gateway and denied versions yanked with their
    /// reason.
    pub page: ProjectPage,
    /// True when the upstream could not be reached and the page comes from the cache.
    pub stale: bool,
}

/// The answer for a project page.
#[derive(Debug)]
pub enum PageOutcome {
    /// Serve this page.
    Page(ServedPage),
    /// The view allows no version of the project (a curated view without an entry).
    NotInFormulary(Box<Decision>),
    /// No upstream has the project.
    Missing,
}

/// The answer for a file.
#[derive(Debug)]
pub enum FileOutcome {
    /// Serve this blob.
    Serve {
        /// Where it is stored.
        blob: BlobRef,
        /// The version it belongs to.
        version: String,
    },
    /// The policy denies the file's version.
    Refused(Box<Decision>),
    /// No such file.
    Missing,
}

/// The PyPI front-end's logic.
#[derive(Debug)]
pub struct PypiGateway {
    database: Database,
    blobs: BlobStore,
    client: UpstreamClient,
    upstreams: Vec<Url>,
    revalidate_after: chrono::Duration,
    projects: Mutex<HashMap<String, Arc<Project>>>,
    fetched_urls: Mutex<HashMap<String, BlobRef>>,
    page_flight: SingleFlight,
    file_flight: SingleFlight,
}

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
        let upstreams = upstreams
            .into_iter()
            .map(|mut url| {
                if !url.path().ends_with('/') {
                    url.set_path(&format!("{}/", url.path()));
                }
                url
            })
            .collect();
        Ok(PypiGateway {
            database,
            blobs,
            client: UpstreamClient::new(timeout)?,
            upstreams,
            revalidate_after: chrono::Duration::from_std(revalidate_after)
                .unwrap_or(chrono::Duration::minutes(10)),
            projects: Mutex::new(HashMap::new()),
            fetched_urls: Mutex::new(HashMap::new()),
            page_flight: SingleFlight::default(),
            file_flight: SingleFlight::default(),
        })
    }

    /// Names of the projects this gateway has seen, for the root index.
    pub async fn known_projects(&self) -> Result<Vec<String>, GatewayError> {
        Ok(self.database.cached_projects(Ecosystem::Pypi).await?)
    }

    fn remembered(&self, name: &str) -> Option<Arc<Project>> {
        self.projects
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(name)
            .cloned()
    }

    fn remember(&self, name: &str, project: Project) -> Arc<Project> {
        let project = Arc::new(project);
        self.projects
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(name.to_owned(), Arc::clone(&project));
        project
    }

    fn is_fresh(&self, project: &Project) -> bool {
        !project.stale && Utc::now() - project.checked_at < self.revalidate_after
    }

    /// The project, fetched or revalidated when its cached copy is old, served from the cache
    /// (marked stale) when every upstream fails.
    async fn project(&self, component: &Component) -> Result<Option<Arc<Project>>, GatewayError> {
        let name = component.name.as_str();
        if let Some(project) = self
            .remembered(name)
            .filter(|project| self.is_fresh(project))
        {
            return Ok(Some(project));
        }
        let _flight = self.page_flight.lock(name).await;
        if let Some(project) = self
            .remembered(name)
            .filter(|project| self.is_fresh(project))
        {
            return Ok(Some(project));
        }
        let cached = match self.remembered(name) {
            Some(project) => Some(project),
            None => self.load_cached(component).await?,
        };
        if self.upstreams.is_empty() {
            return Ok(cached);
        }
        let mut failure: Option<UpstreamFailure> = None;
        for index in &self.upstreams {
            let etag = cached
                .as_ref()
                .filter(|project| project.upstream == index.as_str())
                .and_then(|project| project.etag.clone());
            match self.client.project_page(index, name, etag.as_deref()).await {
                Ok(Fetched::Page { page, etag }) => {
                    let project = self
                        .refresh(component, index, page, etag, cached.as_deref())
                        .await?;
                    return Ok(Some(self.remember(name, project)));
                }
                Ok(Fetched::NotModified) => {
                    if let Some(project) = &cached {
                        let renewed = Project {
                            page: project.page.clone(),
                            releases: project.releases.clone(),
                            upstream: project.upstream.clone(),
                            etag: project.etag.clone(),
                            checked_at: Utc::now(),
                            stale: false,
                        };
                        return Ok(Some(self.remember(name, renewed)));
                    }
                }
                Ok(Fetched::Missing) => {}
                Err(error) => {
                    tracing::warn!(project = name, %error, "upstream index failed");
                    failure = Some(error);
                }
            }
        }
        match (failure, cached) {
            (Some(_), Some(project)) => {
                let stale = Project {
                    page: project.page.clone(),
                    releases: project.releases.clone(),
                    upstream: project.upstream.clone(),
                    etag: project.etag.clone(),
                    checked_at: Utc::now() - self.revalidate_after + chrono::Duration::seconds(30),
                    stale: true,
                };
                Ok(Some(self.remember(name, stale)))
            }
            (Some(error), None) => Err(GatewayError::Upstream(error)),
            // Every upstream says the project does not exist; imported files still count.
            (None, cached) => {
                Ok(cached.filter(|project| project.upstream.starts_with(BLOB_SCHEME)))
            }
        }
    }

    async fn load_cached(
        &self,
        component: &Component,
    ) -> Result<Option<Arc<Project>>, GatewayError> {
        let Some(stored) = self.database.upstream_page(component).await? else {
            return Ok(None);
        };
        let base = Url::parse("https://cached.invalid/")
            .map_err(|error| StoreError::Conflict(error.to_string()))?;
        let page = pypi::parse_json(stored.document.as_bytes(), &base).map_err(|error| {
            StoreError::Conflict(format!("cached page of {component}: {error}"))
        })?;
        let releases = self.database.releases_of(component).await?;
        let project = Project {
            page,
            releases,
            upstream: stored.upstream,
            etag: stored.etag,
            checked_at: stored.fetched_at,
            stale: false,
        };
        Ok(Some(self.remember(component.name.as_str(), project)))
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
        self.database.save_upstream_page(component, &stored).await?;
        Ok(Project {
            page,
            releases,
            upstream: index.to_string(),
            etag,
            checked_at: now,
            stale: false,
        })
    }

    /// The project page for a view: denied versions yanked with their reason, file URLs under
    /// `files_base` (relative to the page, e.g. `../../files/requests/`).
    pub async fn page(
        &self,
        snapshot: &PolicySnapshot,
        view: &View,
        component: &Component,
        files_base: &str,
    ) -> Result<PageOutcome, GatewayError> {
        let Some(project) = self.project(component).await? else {
            return Ok(PageOutcome::Missing);
        };
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
            served.core_metadata = None;
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
        Ok(PageOutcome::Page(ServedPage {
            page,
            stale: project.stale,
        }))
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
        if pypi::check_filename(filename).is_err() {
            return Ok(FileOutcome::Missing);
        }
        let Some(project) = self.project(component).await? else {
            return Ok(FileOutcome::Missing);
        };
        let Some(file) = project
            .page
            .files
            .iter()
            .find(|file| file.filename == filename)
        else {
            return Ok(FileOutcome::Missing);
        };
        let Some(version) = pypi::version_from_filename(&component.name, filename) else {
            return Ok(FileOutcome::Missing);
        };
        let decision = formulary_core::policy::evaluate_version(
            snapshot,
            view,
            component,
            &version,
            &project.releases,
        );
        if !decision.allowed {
            return Ok(FileOutcome::Refused(Box::new(decision)));
        }
        let blob = self.ensure_blob(file).await?;
        Ok(FileOutcome::Serve {
            blob,
            version: version.to_string(),
        })
    }

    async fn ensure_blob(&self, file: &DistributionFile) -> Result<BlobRef, GatewayError> {
        if let Some(digest) = file
            .url
            .strip_prefix(BLOB_SCHEME)
            .and_then(|rest| rest.strip_prefix("sha256/"))
        {
            if self.blobs.contains(digest).await? {
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
        if let Some(found) = self.cached_blob(file).await? {
            return Ok(found);
        }
        let _flight = self.file_flight.lock(&file.url).await;
        if let Some(found) = self.cached_blob(file).await? {
            return Ok(found);
        }
        let url = Url::parse(&file.url).map_err(|error| UpstreamFailure::Malformed {
            url: file.filename.clone(),
            why: error.to_string(),
        })?;
        let stream = self.client.file(&url).await?;
        match self.blobs.put_stream(stream, file.sha256()).await {
            Ok(blob) => {
                self.fetched_urls
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(file.url.clone(), blob.clone());
                Ok(blob)
            }
            Err(StoreError::DigestMismatch { expected, actual }) => {
                tracing::error!(file = %file.filename, %expected, %actual, "upstream file does not match its published sha256; not cached");
                Err(GatewayError::CorruptUpstreamFile {
                    filename: file.filename.clone(),
                })
            }
            Err(StoreError::Interrupted { bytes, why }) => {
                Err(GatewayError::Upstream(UpstreamFailure::Unreachable {
                    url: file.filename.clone(),
                    why: format!("the download broke off after {bytes} bytes: {why}"),
                }))
            }
            Err(other) => Err(other.into()),
        }
    }

    async fn cached_blob(&self, file: &DistributionFile) -> Result<Option<BlobRef>, GatewayError> {
        if let Some(digest) = file.sha256() {
            if self.blobs.contains(digest).await? {
                return Ok(Some(BlobRef {
                    sha256: digest.to_owned(),
                    size: file.size.unwrap_or(0),
                }));
            }
            return Ok(None);
        }
        Ok(self
            .fetched_urls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&file.url)
            .cloned())
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
