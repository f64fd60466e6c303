//! `npm audit` answered by the formulary: for each package and version a project has
//! installed, the OSV advisories (GHSA-, MAL-, …) that affect it and the formulary's own
//! prohibitions (national, or the view's organisation's, as the policy applies them), in the
//! shape npm's bulk advisory endpoint returns.
//!
//! npm tests every version of a package against an advisory's `vulnerable_versions` to work
//! out which are vulnerable and whether a fix exists, so that range lists exactly the known
//! versions affected (from the packument), which is what OSV's rules and the formulary's say,
//! whatever their range syntax.

use std::collections::BTreeMap;

use formulary_core::ecosystems::npm::{BulkAdvisory, BulkRequest, Cvss};
use formulary_core::ecosystems::{Ecosystem, Version};
use formulary_core::policy::{
    evaluate_releases, Effect, PolicySnapshot, ReasonCode, Release, View,
};
use formulary_core::{Component, Severity, Status};
use sha2::Digest;

use super::NpmGateway;
use crate::error::GatewayError;

/// The answer: package name → advisories.
pub type BulkAnswer = BTreeMap<String, Vec<BulkAdvisory>>;

/// npm's severity word.
fn severity_word(severity: Severity) -> &'static str {
    match severity {
        Severity::Low => "low",
        Severity::Medium => "moderate",
        Severity::High => "high",
        Severity::Critical => "critical",
    }
}

/// A stable number for an advisory or entry id (npm keys advisories by a number), below 2^53 so
/// that JavaScript reads it exactly.
fn numeric_id(text: &str) -> u64 {
    let digest = sha2::Sha256::digest(text.as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(bytes) & ((1 << 53) - 1)
}

/// `1.0.0 || 1.0.1 || …`: exactly these versions, as an npm range.
fn exactly(versions: &[&Version]) -> String {
    versions
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" || ")
}

impl NpmGateway {
    /// The advisories and prohibitions that concern the installed versions in `request`, in
    /// one view. `base` is the public URL links to this server start with.
    pub async fn audit(
        &self,
        snapshot: &PolicySnapshot,
        view: &View,
        request: &BulkRequest,
        base: &str,
    ) -> Result<BulkAnswer, GatewayError> {
        let mut answer = BulkAnswer::new();
        for (name, installed) in request {
            let Ok(component) = Component::new(Ecosystem::Npm, name) else {
                continue;
            };
            let installed: Vec<Version> = installed
                .iter()
                .filter_map(|text| Version::parse(Ecosystem::Npm, text).ok())
                .collect();
            let advisories: Vec<_> = snapshot
                .advisories_for(&component)
                .iter()
                .filter(|advisory| {
                    installed
                        .iter()
                        .any(|version| advisory.affects(&component, version))
                })
                .cloned()
                .collect();
            let prohibitions: Vec<_> = snapshot
                .entries_for(&component)
                .iter()
                .filter(|entry| {
                    entry.draft.status == Status::Prohibited
                        && installed
                            .iter()
                            .any(|version| entry.draft.range.contains(version))
                })
                .cloned()
                .collect();
            if advisories.is_empty() && prohibitions.is_empty() {
                continue;
            }
            // Every version known, to say exactly which are affected.
            let releases: Vec<Release> = match self.package(&component).await {
                Ok(Some(package)) => package.releases.as_ref().clone(),
                Ok(None) => Vec::new(),
                Err(error) => {
                    tracing::warn!(%error, %component, "npm audit: packument unavailable; reporting the installed versions only");
                    Vec::new()
                }
            };
            let mut releases = releases;
            for version in &installed {
                if !releases.iter().any(|release| &release.version == version) {
                    releases.push(Release::bare(version.clone()));
                }
            }
            releases.sort_by(|left, right| left.version.cmp(&right.version));
            let mut found = Vec::new();
            for advisory in &advisories {
                let affected: Vec<&Version> = releases
                    .iter()
                    .map(|release| &release.version)
                    .filter(|version| advisory.affects(&component, version))
                    .collect();
                let title = if advisory.summary.trim().is_empty() {
                    advisory.id.clone()
                } else {
                    format!("{} ({})", advisory.summary.trim(), advisory.id)
                };
                found.push(BulkAdvisory {
                    id: numeric_id(&advisory.id),
                    url: advisory.link(),
                    title: if advisory.malicious {
                        format!("Malicious package: {title}")
                    } else {
                        title
                    },
                    severity: severity_word(advisory.effective_severity()).to_owned(),
                    vulnerable_versions: exactly(&affected),
                    cwe: Vec::new(),
                    cvss: Cvss {
                        score: advisory.cvss_score.unwrap_or(0.0),
                        vector_string: None,
                    },
                });
            }
            if !prohibitions.is_empty() {
                let decisions = evaluate_releases(snapshot, view, &component, &releases);
                for entry in &prohibitions {
                    // Versions this entry denies in this view (an organisation's exception may
                    // set a national prohibition aside).
                    let denied: Vec<&Version> = releases
                        .iter()
                        .zip(&decisions)
                        .filter(|(_, decision)| {
                            decision.reasons.iter().any(|reason| {
                                reason.code == ReasonCode::Prohibited
                                    && reason.effect == Effect::Deny
                                    && reason.message.contains(&format!("entry {},", entry.id))
                            })
                        })
                        .map(|(release, _)| &release.version)
                        .collect();
                    if !denied.iter().any(|version| installed.contains(version)) {
                        continue;
                    }
                    found.push(BulkAdvisory {
                        id: numeric_id(&entry.id),
                        url: format!(
                            "{base}/components/{}/{}",
                            component.ecosystem(),
                            component.name
                        ),
                        title: format!(
                            "Prohibited by Formulary (entry {}): {}",
                            entry.id,
                            entry.draft.reason.trim()
                        ),
                        severity: "high".to_owned(),
                        vulnerable_versions: exactly(&denied),
                        cwe: Vec::new(),
                        cvss: Cvss {
                            score: 0.0,
                            vector_string: None,
                        },
                    });
                }
            }
            if !found.is_empty() {
                answer.insert(name.clone(), found);
            }
        }
        Ok(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_numbers_javascript_reads_exactly() {
        let id = numeric_id("GHSA-35jh-r3h4-6jhm");
        assert_eq!(id, numeric_id("GHSA-35jh-r3h4-6jhm"));
        assert_ne!(id, numeric_id("MAL-2024-1"));
        assert!(id < (1 << 53));
    }

    #[test]
    fn affected_versions_become_an_exact_npm_range() {
        let versions: Vec<Version> = ["1.0.0", "1.0.1"]
            .iter()
            .map(|text| Version::parse(Ecosystem::Npm, text).expect("version"))
            .collect();
        let range = exactly(&versions.iter().collect::<Vec<_>>());
        assert_eq!(range, "1.0.0 || 1.0.1");
        let parsed = nodejs_semver_range(&range);
        assert!(parsed);
    }

    fn nodejs_semver_range(text: &str) -> bool {
        formulary_core::ecosystems::VersionRange::parse(Ecosystem::Npm, text).is_ok()
    }
}
