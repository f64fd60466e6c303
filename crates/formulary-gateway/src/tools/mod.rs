//! Desktop tools (`generic` components) as files the gateway pulls through: each version's
//! files per platform come from `tool_artifacts` (added by a curator from a manifest), are
//! decided by the same policy as packages (prohibitions, curated stances, pilots, recalls), and
//! are fetched once from the vendor, checked against the manifest's SHA-256 and size (and the
//! vendor's signature, with the key pinned in the manifest, when the vendor signs the file), and
//! kept in the blob store. An adapter on the engine, like `pypi/` and `cran/`.

use formulary_core::ecosystems::{Ecosystem, Version};
use formulary_core::policy::{evaluate_version, Decision, PolicySnapshot, Release, View};
use formulary_core::Component;
use formulary_store::{Algorithm, BlobRef, BlobStore, Database, Digests, ToolArtifact};

use crate::engine::files::{FileCache, UpstreamFile};
use crate::engine::upstream::UpstreamClient;
use crate::error::GatewayError;

mod signature;

/// What to answer for a tool file.
#[derive(Debug)]
pub enum ToolFileOutcome {
    /// Serve this blob.
    Serve(BlobRef),
    /// The policy denies the version.
    Refused(Box<Decision>),
    /// No such tool file.
    Missing,
}

/// A tool version as a view sees it: its files and the policy's decision.
#[derive(Debug, Clone)]
pub struct OfferedTool {
    /// Every file of this version, one per platform.
    pub artifacts: Vec<ToolArtifact>,
    /// The decision for the view.
    pub decision: Decision,
}

/// The tool front-end's logic.
#[derive(Debug)]
pub struct ToolGateway {
    database: Database,
    files: FileCache,
    /// Fetches vendors' signatures.
    client: UpstreamClient,
}

impl ToolGateway {
    /// A gateway fetching tool files within the given request budget.
    pub fn new(
        database: Database,
        blobs: BlobStore,
        budget: crate::engine::upstream::Budget,
    ) -> Result<ToolGateway, reqwest::Error> {
        let client = UpstreamClient::new(budget)?;
        Ok(ToolGateway {
            files: FileCache::new(database.clone(), blobs, client.clone()),
            database,
            client,
        })
    }

    /// Every tool version with files, decided for a view (newest versions first per tool).
    pub async fn offered(
        &self,
        snapshot: &PolicySnapshot,
        view: &View,
    ) -> Result<Vec<OfferedTool>, GatewayError> {
        let artifacts = self.database.tool_artifacts().await?;
        let mut by_version: std::collections::BTreeMap<(String, String), Vec<ToolArtifact>> =
            std::collections::BTreeMap::new();
        for artifact in artifacts {
            by_version
                .entry((artifact.name.clone(), artifact.version.clone()))
                .or_default()
                .push(artifact);
        }
        let mut offered = Vec::new();
        for ((name, version), artifacts) in by_version {
            let Some(decision) = decide(snapshot, view, &name, &version, &self.database).await?
            else {
                continue;
            };
            offered.push(OfferedTool {
                artifacts,
                decision,
            });
        }
        Ok(offered)
    }

    /// A tool file for a view: refused when the version is denied, else from the blob store,
    /// fetched once from the vendor and verified when not cached (digests, size, and the
    /// vendor's signature when the manifest pins a key).
    pub async fn file(
        &self,
        snapshot: &PolicySnapshot,
        view: &View,
        name: &str,
        version: &str,
        platform: &str,
    ) -> Result<ToolFileOutcome, GatewayError> {
        let artifacts = self.database.tool_artifacts().await?;
        let Some(artifact) = artifacts.iter().find(|artifact| {
            artifact.name == name && artifact.version == version && artifact.platform == platform
        }) else {
            return Ok(ToolFileOutcome::Missing);
        };
        let Some(decision) = decide(snapshot, view, name, version, &self.database).await? else {
            return Ok(ToolFileOutcome::Missing);
        };
        if !decision.allowed {
            return Ok(ToolFileOutcome::Refused(Box::new(decision)));
        }
        let digests = Digests::none()
            .with(Algorithm::Sha256, &artifact.sha256)
            .map_err(|error| GatewayError::CorruptUpstreamFile {
                filename: artifact.filename.clone(),
                why: format!("the manifest's SHA-256 is malformed: {error}"),
            })?;
        let mut file = UpstreamFile {
            url: &artifact.url,
            filename: &artifact.filename,
            digests,
            size: Some(artifact.size),
            check: None,
        };
        let Some(vendor_signature) = &artifact.signature else {
            return Ok(ToolFileOutcome::Serve(self.files.fetch(&file).await?));
        };
        // Only a file verified with its signature is ever cached, so a cached one is served.
        if let Some(blob) = self.files.cached(&file).await? {
            return Ok(ToolFileOutcome::Serve(blob));
        }
        let pending = signature::fetch(&self.client, vendor_signature, &artifact.filename).await?;
        file.check = Some(pending.check.clone());
        match self.files.fetch(&file).await {
            Ok(blob) => Ok(ToolFileOutcome::Serve(blob)),
            Err(error) => Err(pending.refusal(&artifact.filename, error)),
        }
    }
}

/// The policy's decision on one tool version, compared with every version that has files.
async fn decide(
    snapshot: &PolicySnapshot,
    view: &View,
    name: &str,
    version: &str,
    database: &Database,
) -> Result<Option<Decision>, GatewayError> {
    let (Ok(component), Ok(parsed)) = (
        Component::new(Ecosystem::Generic, name),
        Version::parse(Ecosystem::Generic, version),
    ) else {
        return Ok(None);
    };
    let releases: Vec<Release> = database
        .tool_artifacts()
        .await?
        .into_iter()
        .filter(|artifact| artifact.name == name)
        .filter_map(|artifact| Version::parse(Ecosystem::Generic, &artifact.version).ok())
        .map(Release::bare)
        .collect();
    Ok(Some(evaluate_version(
        snapshot, view, &component, &parsed, &releases,
    )))
}
