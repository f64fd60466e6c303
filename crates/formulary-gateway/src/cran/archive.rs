//! `src/contrib/Meta/archive.rds` for one view: every archived source version the view allows,
//! from the upstream's own `archive.rds` and imports.

use std::collections::HashMap;
use std::io::Read;
use std::sync::Arc;

use chrono::Utc;
use formulary_core::ecosystems::cran::{
    archive_from_value, archive_value, rds, Archive, ArchivedFile,
};
use formulary_core::ecosystems::{Ecosystem, Version};
use formulary_core::policy::{evaluate_releases, PolicySnapshot, Release, View};
use formulary_core::Component;
use formulary_store::UpstreamDocument;
use url::Url;

use super::index::gzip;
use super::tree::{field, parse_filename, refusal_slug, release_of, tree_key, SCOPE};
use super::CranGateway;
use crate::engine::documents::{Answer, Freshness, Lookup, Revalidated};
use crate::engine::rendered::Rendered;
use crate::engine::upstream::{Document, UpstreamFailure};
use crate::engine::views::{Sources, ViewKey};
use crate::error::GatewayError;

/// The archive an upstream lists in `src/contrib/Meta/archive.rds`.
#[derive(Debug)]
pub(crate) struct UpstreamArchive {
    freshness: Freshness,
    archive: Archive,
}

impl UpstreamArchive {
    /// The archived tarballs it lists.
    pub(super) fn archive(&self) -> &Archive {
        &self.archive
    }

    /// The upstream it came from (archived files are under its `src/contrib/Archive/`).
    pub(super) fn origin(&self) -> &Url {
        &self.freshness.origin
    }
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
pub(crate) const ARCHIVE_RDS: &str = "src/contrib/Meta/archive.rds";
/// Largest upstream `archive.rds` read (CRAN's is a few MB).
const MAX_ARCHIVE_RDS_BYTES: usize = 64 * 1024 * 1024;

impl CranGateway {
    /// `src/contrib/Meta/archive.rds` for a view: every archived source version the view allows
    /// (from the upstream's own `archive.rds` and imports), so
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
        let key = ViewKey {
            document: ARCHIVE_RDS.to_owned(),
            organisation: view.organisation.clone(),
            day,
        };
        let mut sources: Vec<Arc<dyn std::any::Any + Send + Sync>> = vec![imported.clone()];
        if let Some(upstream) = &upstream {
            sources.push(upstream.clone());
        }
        self.archive_files
            .get_or_build(
                key,
                Sources::new(generation, sources),
                self.build_archive_rds(snapshot, view, upstream.as_deref(), &imported),
            )
            .await
    }

    async fn build_archive_rds(
        &self,
        snapshot: &PolicySnapshot,
        view: &View,
        upstream: Option<&UpstreamArchive>,
        imported: &super::imported::ImportedFiles,
    ) -> Result<Rendered, GatewayError> {
        let tree = self.tree("src/contrib").await.ok().flatten();
        let current: HashMap<String, Version> = tree
            .iter()
            .flat_map(|tree| &tree.paragraphs)
            .filter_map(|paragraph| {
                Some((
                    field(paragraph, "Package")?.to_owned(),
                    Version::parse(Ecosystem::Cran, field(paragraph, "Version")?).ok()?,
                ))
            })
            .collect();
        let mut known: std::collections::BTreeMap<String, HashMap<String, ArchivedFile>> =
            std::collections::BTreeMap::new();
        if let Some(upstream) = upstream {
            for (package, files) in &upstream.archive {
                let entry = known.entry(package.clone()).or_default();
                for file in files {
                    entry.insert(file.filename.clone(), file.clone());
                }
            }
        }
        for (filename, file) in imported.trees.get("src/contrib").into_iter().flatten() {
            let Some((component, version)) = parse_filename(filename) else {
                continue;
            };
            if !filename.ends_with(".tar.gz")
                || current.get(component.name.as_str()) == Some(&version)
            {
                continue;
            }
            known.entry(component.name.to_string()).or_default().insert(
                filename.clone(),
                ArchivedFile {
                    filename: filename.clone(),
                    size: Some(file.size),
                    modified: file.modified,
                    ..ArchivedFile::default()
                },
            );
        }
        // Every archived version is listed, allowed or not, and so is a current version the
        // view refuses (its PACKAGES stanza offers an older one instead): what a client pins
        // reaches the download, and a refused one shows its reason in the URL R prints, where
        // leaving it out made `remotes::install_version` say only "version is invalid".
        let refused_current: Vec<(String, ArchivedFile)> = tree
            .iter()
            .flat_map(|tree| {
                tree.paragraphs.iter().filter_map(|paragraph| {
                    let (component, release) =
                        release_of(paragraph, &tree.published, &tree.dated_upstream)?;
                    let decision = evaluate_releases(
                        snapshot,
                        view,
                        &component,
                        std::slice::from_ref(&release),
                    )
                    .pop()?;
                    (!decision.allowed).then(|| {
                        (
                            component.name.to_string(),
                            ArchivedFile {
                                filename: format!(
                                    "_blocked/{}/{}_{}.tar.gz",
                                    refusal_slug(&decision),
                                    component.name,
                                    release.version
                                ),
                                size: None,
                                modified: release
                                    .published
                                    .map(|published| published.timestamp() as f64),
                                ..ArchivedFile::default()
                            },
                        )
                    })
                })
            })
            .collect();
        let mut listed = Archive::new();
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
            // Decided as a download of the file is (archived versions carry no publication
            // time there either), so the archive and the download give one answer.
            let releases: Vec<Release> = versions
                .iter()
                .map(|(version, _)| Release::bare(version.clone()))
                .collect();
            let decisions = evaluate_releases(snapshot, view, &component, &releases);
            let files = versions
                .into_iter()
                .zip(decisions)
                .map(|((_, mut file), decision)| {
                    if !decision.allowed {
                        file.filename =
                            format!("_blocked/{}/{}", refusal_slug(&decision), file.filename);
                    }
                    file
                })
                .collect();
            listed.insert(package, files);
        }
        for (package, file) in refused_current {
            listed.entry(package).or_default().push(file);
        }
        let bytes = rds::serialize(&archive_value(&listed));
        Ok(Rendered::new(gzip(&bytes)?))
    }

    /// The upstream's `archive.rds`, revalidated like an index; none when there is no upstream,
    /// it has none, or it cannot be read (then imports still count).
    pub(super) async fn upstream_archive(&self) -> Option<Arc<UpstreamArchive>> {
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
                    let client = self.client.clone();
                    Box::pin(async move {
                        let url = upstream.join(ARCHIVE_RDS).map_err(|error| {
                            UpstreamFailure::Malformed {
                                url: upstream.to_string(),
                                why: error.to_string(),
                            }
                        })?;
                        Ok(
                            match client
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
            .upstream_document(SCOPE, &tree_key(ARCHIVE_RDS))
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
            .save_upstream_document(
                SCOPE,
                &tree_key(ARCHIVE_RDS),
                &UpstreamDocument {
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
