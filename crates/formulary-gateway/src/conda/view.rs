//! A subdirectory's `repodata.json` for one view: every record whose version the view denies
//! is left out, so a conda solver never chooses it; everything else is upstream's bytes.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::NaiveDate;
use formulary_core::ecosystems::{Ecosystem, Version};
use formulary_core::policy::{evaluate_releases, PolicySnapshot, View};

use super::{CondaGateway, Subdir};
use crate::engine::rendered::Rendered;
use crate::engine::views::{Sources, ViewKey};
use crate::error::GatewayError;

/// A repodata ready to serve for one view.
#[derive(Debug)]
pub struct ServedRepodata {
    /// The filtered `repodata.json`.
    pub json: Rendered,
    /// True when the upstream could not be reached and the document comes from the cache.
    pub stale: bool,
    /// How many records the view withholds.
    pub withheld: usize,
    /// How many records it serves.
    pub served: usize,
}

/// The answer for a `repodata.json`.
#[derive(Debug, Clone)]
pub enum RepodataOutcome {
    /// Serve this document.
    Repodata(Arc<ServedRepodata>),
    /// The channel is not configured, or no upstream has the subdirectory.
    Missing,
}

impl CondaGateway {
    /// The `repodata.json` of a channel's subdirectory for a view.
    pub async fn repodata(
        &self,
        snapshot: &PolicySnapshot,
        generation: i64,
        view: &View,
        day: Option<NaiveDate>,
        channel: &str,
        subdir: &str,
    ) -> Result<RepodataOutcome, GatewayError> {
        let Some(cached) = self.subdir(channel, subdir).await? else {
            return Ok(RepodataOutcome::Missing);
        };
        let key = ViewKey {
            document: format!("{channel}/{subdir}"),
            organisation: view.organisation.clone(),
            day,
        };
        let source: Arc<dyn std::any::Any + Send + Sync> = cached.clone();
        let outcome = self
            .views
            .get_or_build(key, Sources::new(generation, vec![source]), async {
                let started = std::time::Instant::now();
                let built = build(snapshot, view, &cached);
                tracing::debug!(
                    channel,
                    subdir,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "built a view's repodata.json"
                );
                Ok::<_, GatewayError>(built)
            })
            .await?;
        Ok(RepodataOutcome::clone(&outcome))
    }
}

/// Decides every version of every package in the subdirectory (a dated view does not see
/// records published after its day) and renders the document with the allowed records.
fn build(snapshot: &PolicySnapshot, view: &View, subdir: &Subdir) -> RepodataOutcome {
    let mut allowed: HashMap<&str, HashSet<String>> = HashMap::new();
    for (name, package) in subdir.packages.iter() {
        let decisions = evaluate_releases(snapshot, view, &package.component, &package.releases);
        let versions = package
            .releases
            .iter()
            .zip(&decisions)
            .filter(|(_, decision)| decision.allowed)
            .map(|(release, _)| release.version.to_string())
            .collect();
        allowed.insert(name.as_str(), versions);
    }
    let (mut served, mut withheld) = (0, 0);
    // Each distinct (name, version) is parsed once, however many builds it has.
    let mut decided: HashMap<(String, String), bool> = HashMap::new();
    let json = subdir.repodata.render(|record| {
        let facts = &record.facts;
        let visible = super::moment(facts.published_seconds()).is_none_or(|at| at <= view.at);
        let name = facts.name.to_ascii_lowercase();
        let keep = visible
            && *decided
                .entry((name, facts.version.clone()))
                .or_insert_with_key(|(name, version)| {
                    Version::parse(Ecosystem::Conda, version)
                        .ok()
                        .zip(allowed.get(name.as_str()))
                        .is_some_and(|(version, versions)| versions.contains(&version.to_string()))
                });
        if keep {
            served += 1;
        } else {
            withheld += 1;
        }
        keep
    });
    RepodataOutcome::Repodata(Arc::new(ServedRepodata {
        json: Rendered::new(json),
        stale: subdir.freshness.stale,
        withheld,
        served,
    }))
}
