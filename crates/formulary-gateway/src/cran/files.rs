//! A package file of a tree for one view: refused when its version is denied, else an imported
//! copy or the upstream's through the engine's file cache, checked against `MD5sum` and its own
//! DESCRIPTION before it is cached.

use formulary_core::ecosystems::cran::{self, licence_to_spdx};
use formulary_core::ecosystems::{Ecosystem, Version};
use formulary_core::policy::{evaluate_releases, Decision, PolicySnapshot, Release, View};
use formulary_store::{Algorithm, BlobRef, Digests};

use super::tree::{field, parse_filename, release_of};
use super::{lock, verify, CranGateway};
use crate::engine::files::UpstreamFile;
use crate::engine::upstream::UpstreamFailure;
use crate::error::GatewayError;

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

impl CranGateway {
    /// A package file of a tree (current, or from `Archive/` for source packages): an imported
    /// copy when there is one, else the upstream's through the file cache.
    pub async fn file(
        &self,
        snapshot: &PolicySnapshot,
        view: &View,
        tree_name: &str,
        filename: &str,
    ) -> Result<CranFileOutcome, GatewayError> {
        self.file_or_decision(snapshot, view, tree_name, filename, true)
            .await
    }

    /// The refusal the gateway makes for this file in this view, if it refuses it, decided
    /// exactly as a download is (nothing is fetched). A refusal page shows this decision, never
    /// text taken from its URL.
    pub async fn refusal(
        &self,
        snapshot: &PolicySnapshot,
        view: &View,
        tree_name: &str,
        filename: &str,
    ) -> Result<Option<Decision>, GatewayError> {
        Ok(
            match self
                .file_or_decision(snapshot, view, tree_name, filename, false)
                .await?
            {
                CranFileOutcome::Refused(decision) => Some(*decision),
                _ => None,
            },
        )
    }

    async fn file_or_decision(
        &self,
        snapshot: &PolicySnapshot,
        view: &View,
        tree_name: &str,
        filename: &str,
        fetch: bool,
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
            (Some(paragraph), Some(tree)) => {
                release_of(paragraph, &tree.published, &tree.dated_upstream)
                    .map(|(_, release)| release)
                    .unwrap_or_else(|| Release::bare(version.clone()))
            }
            _ if imported_file.is_some() || tree_name == "src/contrib" => Release {
                dated_by_first_sight: false,
                version: version.clone(),
                published: None,
                yanked: None,
                licence: known_licence(),
                install_scripts: false,
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
        if !fetch {
            return Ok(CranFileOutcome::Missing);
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
        let md5 = current
            .and_then(|paragraph| field(paragraph, "MD5sum"))
            .map(str::to_owned);
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
        // Every file is checked before it is cached: against `MD5sum` when the index gives one,
        // and its own DESCRIPTION must name this package and version.
        let mut upstream_file = UpstreamFile::new(url.as_str(), filename);
        if let Some(md5) = &md5 {
            match Digests::none().with(Algorithm::Md5, md5) {
                Ok(digests) => upstream_file.digests = digests,
                Err(error) => {
                    tracing::warn!(file = filename, %error, "ignoring a malformed MD5sum in PACKAGES")
                }
            }
        }
        upstream_file.check = Some(verify::check_for(filename, &component, &version));
        let blob = match self.files.fetch(&upstream_file).await {
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
}
