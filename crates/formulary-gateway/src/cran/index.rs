//! The `PACKAGES` index of a tree for one view: denied versions leave it, the newest allowed
//! archived version stands in for a denied current one, and packages whose dependencies the view
//! cannot serve are withheld.

use std::collections::HashMap;
use std::io::Read;
use std::sync::Arc;

use deb822_fast::Paragraph;
use formulary_core::ecosystems::cran::{self, licence_to_spdx, BASE_PACKAGES};
use formulary_core::ecosystems::{Ecosystem, Version};
use formulary_core::policy::{evaluate_releases, PolicySnapshot, Release, View};
use formulary_core::Component;

use super::archive::UpstreamArchive;
use super::imported::ImportedFiles;
use super::tree::{field, parse_filename, release_of, INDEX_FIELDS};
use super::{lock, CranGateway, Tree};
use crate::engine::files::UpstreamFile;
use crate::engine::rendered::Rendered;
use crate::engine::views::{Sources, ViewKey};
use crate::error::GatewayError;

/// Largest archived tarball read for its DESCRIPTION.
const MAX_DESCRIPTION_BYTES: u64 = 1024 * 1024;

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

/// What the source tree knows of archived versions, read once per index build.
struct Archived<'a> {
    /// The upstream's `archive.rds`, if it has one.
    upstream: Option<&'a UpstreamArchive>,
    /// Imported files.
    imported: &'a ImportedFiles,
}

/// Where an archived version of a package can be had.
#[derive(Debug, Clone)]
enum ArchivedSource {
    /// At this upstream URL.
    Upstream(String),
    /// Imported, with this `PACKAGES` entry.
    Imported(Paragraph),
}

impl CranGateway {
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
        let key = ViewKey {
            document: tree_name.to_owned(),
            organisation: view.organisation.clone(),
            day,
        };
        // Archived versions stand in for denied current ones in the source tree: they come from
        // the upstream's own archive.rds (one cached, revalidated document) and imports.
        let archive = if tree_name == "src/contrib" {
            self.upstream_archive().await
        } else {
            None
        };
        let imported = self.imported().await?;
        let described: Arc<()> = Arc::clone(&lock(&self.described));
        let mut sources: Vec<Arc<dyn std::any::Any + Send + Sync>> =
            vec![tree.clone(), imported.clone(), described];
        if let Some(archive) = &archive {
            sources.push(archive.clone());
        }
        let archived = Archived {
            upstream: archive.as_deref(),
            imported: &imported,
        };
        let served = self
            .indexes
            .get_or_build(
                key.clone(),
                Sources::new(generation, sources),
                self.build_index(snapshot, view, &tree, tree_name, &key, &archived),
            )
            .await?;
        Ok(Some(served))
    }

    async fn build_index(
        &self,
        snapshot: &PolicySnapshot,
        view: &View,
        tree: &Tree,
        tree_name: &str,
        key: &ViewKey,
        archived: &Archived<'_>,
    ) -> Result<ServedIndex, GatewayError> {
        let started = std::time::Instant::now();
        // Archived DESCRIPTIONs not seen yet are fetched within the requests' patience, all
        // together; what is still on its way is used by the next build.
        let deadline = tokio::time::Instant::now() + self.patience;
        let mut kept: Vec<Paragraph> = Vec::with_capacity(tree.paragraphs.len());
        let mut withheld = Vec::new();
        for paragraph in &tree.paragraphs {
            let Some((component, release)) =
                release_of(paragraph, &tree.published, &tree.dated_upstream)
            else {
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
                .archived_substitute(snapshot, view, archived, &component, tree_name, deadline)
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
                // No allowed version to offer: the stanza stays listed, marked, so that R
                // reaches the refused download and prints the reason in the URL it shows
                // (left out, R says only "not available for this version of R").
                None => {
                    let mut refused = paragraph.clone();
                    refused.set(REFUSED_FIELD, &reason.replace(['\n', '\r'], " "));
                    // R downloads from `{repository}/{Path}/{file}` and prints that URL when
                    // the download is refused: the reason is in it.
                    refused.set(
                        "Path",
                        &format!("_blocked/{}", super::tree::refusal_slug(&decision)),
                    );
                    withheld.push(format!(
                        "{} {}: {reason}; listed as refused",
                        component.name, release.version
                    ));
                    kept.push(refused);
                }
            }
        }
        withhold_unsatisfiable(&mut kept, &mut withheld);
        let text = cran::render_packages(&kept);
        // A rebuild that changed nothing (the usual case) keeps the same bodies: no compression,
        // no hashing, and connections keep sending them from the same file.
        let previous = self
            .indexes
            .previous(key)
            .filter(|previous| previous.packages.body == text.as_bytes());
        let (packages, packages_gz) = match previous {
            Some(previous) => (previous.packages.clone(), previous.packages_gz.clone()),
            None => {
                let gz = gzip(text.as_bytes())?;
                (Rendered::new(text.into_bytes()), Rendered::new(gz))
            }
        };
        tracing::info!(
            tree = tree_name,
            organisation = %view.organisation,
            listed = kept.len(),
            withheld = withheld.len(),
            elapsed_ms = started.elapsed().as_millis(),
            "built a PACKAGES index for a view"
        );
        Ok(ServedIndex {
            packages,
            packages_gz,
            stale: tree.freshness.stale,
            withheld,
        })
    }

    /// The archived versions of a package, newest first: those the upstream's `archive.rds`
    /// lists (at `src/contrib/Archive/<pkg>/<file>` of that upstream) and those imported. No
    /// request is made per package.
    fn archived_versions(
        archived: &Archived<'_>,
        component: &Component,
    ) -> Vec<(Version, ArchivedSource)> {
        let mut found: Vec<(Version, ArchivedSource)> = Vec::new();
        if let Some(upstream) = archived.upstream {
            let files = upstream
                .archive()
                .get(component.name.as_str())
                .into_iter()
                .flatten();
            for file in files {
                let Some((named, version)) = parse_filename(&file.filename) else {
                    continue;
                };
                if &named != component || !file.filename.ends_with(".tar.gz") {
                    continue;
                }
                let Ok(url) = upstream.origin().join(&format!(
                    "src/contrib/Archive/{}/{}",
                    component.name, file.filename
                )) else {
                    continue;
                };
                found.push((version, ArchivedSource::Upstream(url.to_string())));
            }
        }
        for (version, _, file) in archived.imported.sources_of(component) {
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

    /// The newest allowed archived version of a package, described from its tarball's
    /// DESCRIPTION. Source trees only.
    async fn archived_substitute(
        &self,
        snapshot: &PolicySnapshot,
        view: &View,
        archived: &Archived<'_>,
        component: &Component,
        tree_name: &str,
        deadline: tokio::time::Instant,
    ) -> Option<Paragraph> {
        if tree_name != "src/contrib" {
            return None;
        }
        let candidates = Self::archived_versions(archived, component);
        if candidates.is_empty() {
            return None;
        }
        let releases: Vec<Release> = candidates
            .iter()
            .map(|(version, source)| Release {
                dated_by_first_sight: false,
                version: version.clone(),
                published: None,
                yanked: None,
                licence: match source {
                    ArchivedSource::Imported(entry) => {
                        field(entry, "License").and_then(licence_to_spdx)
                    }
                    ArchivedSource::Upstream(_) => None,
                },
                install_scripts: false,
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
            ArchivedSource::Upstream(url) => {
                self.description(component, &version, &url, deadline)
                    .await?
            }
        };
        // The licence of the archived version may differ: decide again with it.
        let release = Release {
            dated_by_first_sight: false,
            version: version.clone(),
            published: None,
            yanked: None,
            licence: field(&description, "License").and_then(licence_to_spdx),
            install_scripts: false,
        };
        evaluate_releases(snapshot, view, component, &[release])
            .remove(0)
            .allowed
            .then_some(description)
    }

    /// The DESCRIPTION of an archived tarball, as a `PACKAGES` paragraph: from memory, or
    /// fetched (the tarball, through the verified file cache) waiting at most until `deadline`.
    /// A fetch still running then goes on behind; when it finishes, the indexes are rebuilt
    /// at the next request.
    async fn description(
        &self,
        component: &Component,
        version: &Version,
        url: &str,
        deadline: tokio::time::Instant,
    ) -> Option<Paragraph> {
        let key = (component.name.to_string(), version.to_string());
        if let Some(found) = lock(&self.descriptions).get(&key) {
            return Some(found.clone());
        }
        let stored_key = format!("{}_{}", component.name, version);
        if let Ok(Some(stored)) = self
            .database
            .upstream_document(DESCRIPTIONS_SCOPE, &stored_key)
            .await
        {
            if let Some(paragraph) = cran::parse_packages(&stored.document)
                .ok()
                .and_then(|mut paragraphs| paragraphs.pop())
            {
                lock(&self.descriptions).insert(key, paragraph.clone());
                return Some(paragraph);
            }
        }
        let running = lock(&self.describing).remove(&key);
        let mut task = running.unwrap_or_else(|| {
            let (files, descriptions, described, database) = (
                Arc::clone(&self.files),
                Arc::clone(&self.descriptions),
                Arc::clone(&self.described),
                self.database.clone(),
            );
            let (component, version, url, key) = (
                component.clone(),
                version.clone(),
                url.to_owned(),
                key.clone(),
            );
            tokio::spawn(async move {
                let paragraph = fetch_description(&files, &component, &version, &url).await?;
                store_description(&database, &component, &version, &url, &paragraph).await;
                lock(&descriptions).insert(key, paragraph.clone());
                *lock(&described) = Arc::new(());
                Some(paragraph)
            })
        });
        match tokio::time::timeout_at(deadline, &mut task).await {
            Ok(described) => described.ok().flatten(),
            Err(_) => {
                tracing::info!(package = %component.name, %version, "the upstream is slow: building the index without this archived version's DESCRIPTION, which is fetched behind");
                lock(&self.describing).insert(key, task);
                None
            }
        }
    }
}

/// Fetches an archived tarball (verified, into the file cache) and reads its DESCRIPTION.
async fn fetch_description(
    files: &crate::engine::files::FileCache,
    component: &Component,
    version: &Version,
    url: &str,
) -> Option<Paragraph> {
    let filename = format!("{}_{}.tar.gz", component.name, version);
    let mut file = UpstreamFile::new(url, &filename);
    file.check = Some(super::verify::check_for(&filename, component, version));
    let blob = files.fetch(&file).await.ok()?;
    let bytes = files
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
    Some(paragraph)
}

/// Keeps an archived version's DESCRIPTION in the store, so that `policy check` and the API
/// judge it by what it really needs, as the index does (and a restart does not fetch it again).
async fn store_description(
    database: &formulary_store::Database,
    component: &Component,
    version: &Version,
    url: &str,
    paragraph: &Paragraph,
) {
    let stored = formulary_store::UpstreamDocument {
        upstream: url.to_owned(),
        document: cran::render_packages(std::slice::from_ref(paragraph)),
        etag: None,
        fetched_at: chrono::Utc::now(),
    };
    let key = format!("{}_{}", component.name, version);
    if let Err(error) = database
        .save_upstream_document(DESCRIPTIONS_SCOPE, &key, &stored)
        .await
    {
        tracing::warn!(%error, package = %component.name, %version, "could not store an archived version's DESCRIPTION");
    }
}

/// Where the DESCRIPTIONs of archived versions the gateway has read are kept
/// (`<package>_<version>` → a `PACKAGES` paragraph of the index fields).
pub(crate) const DESCRIPTIONS_SCOPE: &str = "cran-descriptions";

/// Compresses a document as well as gzip can: it is built rarely and sent often.
pub(crate) fn gzip(bytes: &[u8]) -> Result<Vec<u8>, GatewayError> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut encoder, bytes)
        .and_then(|()| encoder.finish())
        .map_err(|error| {
            GatewayError::Store(formulary_store::StoreError::Conflict(error.to_string()))
        })
}

/// The field that marks a stanza the view refuses (its value is the reason). R ignores fields
/// it does not know; `available.packages(fields = "Formulary-Refused")` shows it.
pub(crate) const REFUSED_FIELD: &str = "Formulary-Refused";

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
            if field(paragraph, REFUSED_FIELD).is_some() {
                return true;
            }
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

/// Reads `<package>/DESCRIPTION` from a source tarball.
pub(super) fn read_description(tarball: &[u8], package: &str) -> Option<String> {
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
    use formulary_core::ecosystems::cran;

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
