//! An npm package's evidence, all from its cached packument: versions with their `time`,
//! deprecations (npm's yanks), and the `latest` version's licence, links, maintainers and
//! dependencies. npm packuments carry every version's dependencies, so the closure is counted
//! from packuments alone (one per package reached).

use std::time::Duration;

use formulary_core::ecosystems::{Ecosystem, VersionRange};
use formulary_core::policy::Release;
use formulary_core::Component;
use serde_json::Value;

use super::NpmGateway;
use crate::dependencies_closure::{Requirement, Requirements};
use crate::error::GatewayError;
use crate::evidence::{
    bounded, closure_size, ClosureSize, DependencyEvidence, Evidence, VersionEvidence,
};

/// Largest packument read whole for evidence (the gateway serves larger ones as they are).
const MAX_PACKUMENT_BYTES: usize = 64 * 1024 * 1024;

impl NpmGateway {
    /// How long a request that has a cached copy waits for the upstream before it is served
    /// the cached copy (`upstream_patience_ms`): evidence pages wait no longer.
    pub fn patience(&self) -> Duration {
        self.packages.patience()
    }

    /// What the registry says about a package; `None` when no registry has it.
    pub async fn evidence(&self, component: &Component) -> Result<Option<Evidence>, GatewayError> {
        let Some(package) = self.package(component).await? else {
            return Ok(None);
        };
        let (package, kept) = self.with_text(component, package).await?;
        let mut evidence = Evidence::empty(component, &package.freshness);
        let mut versions: Vec<(formulary_core::ecosystems::Version, VersionEvidence)> = package
            .versions
            .iter()
            .zip(package.releases.iter())
            .map(|((version, facts), release)| {
                (
                    version.clone(),
                    VersionEvidence {
                        version: facts.version.clone(),
                        published: release.published,
                        yanked: facts.deprecated.as_deref().map(bounded),
                        archived: false,
                    },
                )
            })
            .collect();
        versions.sort_by(|left, right| right.0.cmp(&left.0));
        evidence.versions = versions.into_iter().map(|(_, version)| version).collect();
        if kept.len() > MAX_PACKUMENT_BYTES {
            evidence.gaps.push(
                "the packument is too large to read for its links and maintainers".to_owned(),
            );
            return Ok(Some(evidence));
        }
        let text = kept.text();
        let Some(document) = text
            .ok()
            .and_then(|text| serde_json::from_slice::<Value>(&text).ok())
        else {
            evidence
                .gaps
                .push("the cached packument could not be read as JSON".to_owned());
            return Ok(Some(evidence));
        };
        let latest = document
            .pointer("/dist-tags/latest")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or_else(|| {
                evidence
                    .versions
                    .first()
                    .map(|version| version.version.clone())
            });
        evidence.summary = document
            .get("description")
            .and_then(Value::as_str)
            .map(bounded);
        let described = latest
            .as_deref()
            .and_then(|latest| document.get("versions")?.get(latest));
        evidence.newest = latest;
        let text_of = |value: Option<&Value>| -> Option<String> {
            match value? {
                Value::String(text) => Some(text.clone()),
                Value::Object(object) => {
                    object.get("url").and_then(Value::as_str).map(str::to_owned)
                }
                _ => None,
            }
        };
        let source = described.unwrap_or(&document);
        evidence.licence = match source.get("license").or_else(|| document.get("license")) {
            Some(Value::String(licence)) => Some(bounded(licence)),
            Some(Value::Object(licence)) => {
                licence.get("type").and_then(Value::as_str).map(bounded)
            }
            _ => None,
        };
        if let Some(home) = text_of(source.get("homepage").or_else(|| document.get("homepage"))) {
            evidence.add_link("Homepage", &home);
        }
        if let Some(repository) = text_of(
            source
                .get("repository")
                .or_else(|| document.get("repository")),
        ) {
            // `git+https://…` and `git://…` name a web page too.
            let web = repository
                .trim_start_matches("git+")
                .trim_end_matches(".git")
                .replacen("git://", "https://", 1);
            evidence.add_link("Source", &web);
        }
        if let Some(bugs) = text_of(source.get("bugs").or_else(|| document.get("bugs"))) {
            evidence.add_link("Issues", &bugs);
        }
        for person in document
            .get("maintainers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            match person {
                Value::String(text) => evidence.add_maintainer(text),
                Value::Object(fields) => {
                    let name = fields
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    match fields.get("email").and_then(Value::as_str) {
                        Some(email) => evidence.add_maintainer(&format!("{name} <{email}>")),
                        None => evidence.add_maintainer(name),
                    }
                }
                _ => {}
            }
        }
        if let Some(described) = described {
            for (field, condition) in [
                ("dependencies", None),
                ("optionalDependencies", Some("optional")),
                ("peerDependencies", Some("peer")),
            ] {
                for (name, range) in described
                    .get(field)
                    .and_then(Value::as_object)
                    .into_iter()
                    .flatten()
                {
                    let Ok(needed) = Component::new(Ecosystem::Npm, name) else {
                        continue;
                    };
                    evidence.add_dependency(DependencyEvidence {
                        name: needed.name.to_string(),
                        purl: needed.purl(),
                        requirement: range.as_str().map_or_else(|| "*".to_owned(), bounded),
                        condition: condition.map(str::to_owned),
                        kind: field.to_owned(),
                    });
                }
            }
        } else {
            evidence
                .gaps
                .push("the packument does not describe its latest version".to_owned());
        }
        Ok(Some(evidence))
    }

    /// How many packages a package needs, directly or not (`dependencies` of each package's
    /// newest version; optional and peer dependencies are not followed).
    pub async fn closure_size(
        &self,
        component: &Component,
        budget: Duration,
    ) -> Result<ClosureSize, GatewayError> {
        closure_size(self, component, budget).await
    }
}

impl Requirements for NpmGateway {
    async fn releases(&self, component: &Component) -> Result<Vec<Release>, GatewayError> {
        Ok(self
            .package(component)
            .await?
            .map(|package| package.releases.as_ref().clone())
            .unwrap_or_default())
    }

    async fn requirements(
        &self,
        component: &Component,
        release: &Release,
        _extras: &[String],
    ) -> Result<Option<Vec<Requirement>>, GatewayError> {
        let Some(package) = self.package(component).await? else {
            return Ok(None);
        };
        let (package, kept) = self.with_text(component, package).await?;
        if kept.len() > MAX_PACKUMENT_BYTES {
            return Ok(None);
        }
        let text = kept.text();
        let Some(document) = text
            .ok()
            .and_then(|text| serde_json::from_slice::<Value>(&text).ok())
        else {
            return Ok(None);
        };
        let Some(described) = package
            .versions
            .iter()
            .find(|(version, _)| *version == release.version)
            .and_then(|(_, facts)| document.get("versions")?.get(&facts.version))
        else {
            return Ok(None);
        };
        Ok(Some(
            described
                .get("dependencies")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
                .filter_map(|(name, range)| {
                    Some(Requirement {
                        component: Component::new(Ecosystem::Npm, name).ok()?,
                        range: range
                            .as_str()
                            .and_then(|text| VersionRange::parse(Ecosystem::Npm, text).ok())
                            .unwrap_or_else(|| VersionRange::every(Ecosystem::Npm)),
                        extras: Vec::new(),
                    })
                })
                .collect(),
        ))
    }
}
