//! A CRAN package's evidence: the current version and its licence and dependencies from the
//! cached `PACKAGES`, archived versions (dated by when they were archived) from the cached
//! `Meta/archive.rds`, and the title, links and maintainer from the current tarball's own
//! DESCRIPTION (fetched once through the verified file cache, checked against `MD5sum`, and
//! then ready for installs too).

use std::time::Duration;

use chrono::{DateTime, Utc};
use deb822_fast::Paragraph;
use formulary_core::ecosystems::cran;
use formulary_core::ecosystems::{Ecosystem, Version};
use formulary_core::Component;
use formulary_store::{Algorithm, Digests};

use super::tree::{field, parse_filename};
use super::CranGateway;
use super::SOURCE_TREE;
use crate::dependencies::CranCatalogue;
use crate::engine::files::UpstreamFile;
use crate::error::GatewayError;
use crate::evidence::{
    bounded, closure_size, ClosureSize, DependencyEvidence, Evidence, VersionEvidence,
};

/// The DESCRIPTION fields that name what a package needs, and whether each is needed to
/// install it.
const DEPENDENCY_FIELDS: [(&str, bool); 4] = [
    ("Depends", true),
    ("Imports", true),
    ("LinkingTo", true),
    ("Suggests", false),
];

impl CranGateway {
    /// How long a request that has a cached copy waits for the upstream before it is served
    /// the cached copy (`upstream_patience_ms`): evidence pages wait no longer.
    pub fn patience(&self) -> Duration {
        self.trees.patience()
    }

    /// What the upstream says about a package; `None` when its source tree does not list it
    /// (and its archive has nothing either).
    pub async fn evidence(&self, component: &Component) -> Result<Option<Evidence>, GatewayError> {
        // Both documents at once: each waits at most the patience for its upstream.
        let (tree, archive) = tokio::join!(self.tree(SOURCE_TREE), self.upstream_archive());
        let Some(tree) = tree? else {
            return Ok(None);
        };
        let name = component.name.as_str();
        let current = tree
            .paragraphs
            .iter()
            .find(|paragraph| field(paragraph, "Package") == Some(name));
        let archived: Vec<(Version, Option<DateTime<Utc>>)> = archive
            .as_ref()
            .and_then(|archive| archive.archive().get(name).cloned())
            .unwrap_or_default()
            .into_iter()
            .filter_map(|file| {
                let (named, version) = parse_filename(&file.filename)?;
                (named == *component && file.filename.ends_with(".tar.gz")).then(|| {
                    let archived_at = file
                        .modified
                        .and_then(|seconds| DateTime::from_timestamp(seconds as i64, 0));
                    (version, archived_at)
                })
            })
            .collect();
        if current.is_none() && archived.is_empty() {
            return Ok(None);
        }
        let mut evidence = Evidence::empty(component, &tree.freshness);
        if archive.is_none() {
            evidence.gaps.push(
                "the upstream's archive (src/contrib/Meta/archive.rds) could not be read, so older versions are not listed"
                    .to_owned(),
            );
        }
        let mut versions: Vec<(Version, VersionEvidence)> = archived
            .into_iter()
            .map(|(version, archived_at)| {
                let evidence = VersionEvidence {
                    version: version.to_string(),
                    published: archived_at,
                    yanked: None,
                    archived: true,
                };
                (version, evidence)
            })
            .collect();
        let Some(current) = current else {
            versions.sort_by(|left, right| right.0.cmp(&left.0));
            evidence.versions = versions.into_iter().map(|(_, version)| version).collect();
            evidence.gaps.push(format!(
                "{name} is no longer in the upstream's current packages: only archived versions remain"
            ));
            return Ok(Some(evidence));
        };
        let version_text = field(current, "Version").unwrap_or_default().to_owned();
        if let Ok(version) = Version::parse(Ecosystem::Cran, &version_text) {
            let key = (name.to_owned(), version_text.clone());
            versions.retain(|(known, _)| *known != version);
            versions.push((
                version,
                VersionEvidence {
                    version: version_text.clone(),
                    published: tree
                        .dated_upstream
                        .contains(&key)
                        .then(|| tree.published.get(&key).copied())
                        .flatten(),
                    yanked: None,
                    archived: false,
                },
            ));
        }
        versions.sort_by(|left, right| right.0.cmp(&left.0));
        evidence.versions = versions.into_iter().map(|(_, version)| version).collect();
        evidence.newest = Some(version_text.clone());
        evidence.licence = field(current, "License").map(bounded);
        let description = self
            .current_description(component, &version_text, current, &tree.freshness.origin)
            .await;
        let described = description.as_ref().unwrap_or(current);
        for (field_name, needed) in DEPENDENCY_FIELDS {
            let Some(value) = field(described, field_name) else {
                continue;
            };
            // Read as an install-time field, whatever its name, to reuse one parser.
            let mut single = Paragraph { fields: Vec::new() };
            single.insert("Imports", value);
            for dependency in cran::dependencies(&single) {
                let Ok(needed_component) = Component::new(Ecosystem::Cran, &dependency.name) else {
                    continue;
                };
                evidence.add_dependency(DependencyEvidence {
                    name: dependency.name.clone(),
                    purl: needed_component.purl(),
                    requirement: dependency.range.to_string(),
                    condition: (!needed).then(|| "optional (Suggests)".to_owned()),
                    kind: field_name.to_owned(),
                });
            }
        }
        match &description {
            Some(description) => {
                evidence.summary = field(description, "Title").map(bounded);
                for (label, links) in [("Homepage", "URL"), ("Issues", "BugReports")] {
                    for url in field(description, links)
                        .unwrap_or_default()
                        .split([',', ' ', '\n', '\t'])
                        .filter(|url| !url.trim().is_empty())
                    {
                        evidence.add_link(label, url);
                    }
                }
                if let Some(maintainer) = field(description, "Maintainer") {
                    evidence.add_maintainer(maintainer);
                }
                if let Some(authors) = field(description, "Author") {
                    evidence.add_maintainer(&format!("Authors: {authors}"));
                }
            }
            None => evidence.gaps.push(format!(
                "the DESCRIPTION of {name} {version_text} could not be read from its tarball, so its title, links and maintainer are not known"
            )),
        }
        Ok(Some(evidence))
    }

    /// The full DESCRIPTION of the current source tarball, through the verified file cache.
    async fn current_description(
        &self,
        component: &Component,
        version: &str,
        entry: &Paragraph,
        origin: &url::Url,
    ) -> Option<Paragraph> {
        if !matches!(origin.scheme(), "http" | "https") {
            return None;
        }
        let parsed = Version::parse(Ecosystem::Cran, version).ok()?;
        let filename = format!("{}_{}.tar.gz", component.name, version);
        let url = origin.join(&format!("{SOURCE_TREE}/{filename}")).ok()?;
        let mut file = UpstreamFile::new(url.as_str(), &filename);
        if let Some(md5) = field(entry, "MD5sum") {
            if let Ok(digests) = Digests::none().with(Algorithm::Md5, md5) {
                file.digests = digests;
            }
        }
        file.check = Some(super::verify::check_for(&filename, component, &parsed));
        let blob = match self.files.fetch(&file).await {
            Ok(blob) => blob,
            Err(error) => {
                tracing::warn!(file = %filename, %error, "could not fetch a tarball to read its DESCRIPTION");
                return None;
            }
        };
        let bytes = self
            .files
            .blobs()
            .get(&blob.sha256)
            .await
            .ok()?
            .bytes()
            .await
            .ok()?;
        let text = super::index::read_description(&bytes, component.name.as_str())?;
        cran::parse_packages(&text).ok()?.into_iter().next()
    }

    /// How many packages a package needs, directly or not, from the cached `PACKAGES` (the
    /// source tree revalidated first when old).
    pub async fn closure_size(
        &self,
        component: &Component,
        budget: Duration,
    ) -> Result<ClosureSize, GatewayError> {
        self.source_tree().await?;
        let catalogue = CranCatalogue::load(&self.database).await?;
        closure_size(&catalogue, component, budget).await
    }
}
