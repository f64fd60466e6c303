//! A packument for one view: upstream's document with policy applied, rendered once per form
//! (full and abbreviated), each with its own entity tag.

use std::sync::Arc;

use formulary_core::ecosystems::npm;
use formulary_core::policy::{evaluate_releases, Decision, PolicySnapshot, ReasonCode, View};
use formulary_core::Component;

use super::{NpmGateway, Package};
use crate::engine::rendered::Rendered;
use crate::engine::views::{Sources, ViewKey};
use crate::error::GatewayError;

/// A packument ready to serve for one view.
#[derive(Debug)]
pub struct ServedPackument {
    /// The full form (`application/json`).
    pub full: Rendered,
    /// The abbreviated form (`application/vnd.npm.install-v1+json`).
    pub abbreviated: Rendered,
    /// True when the upstream could not be reached and the packument comes from the cache.
    pub stale: bool,
    /// How many versions the view withholds.
    pub withheld: usize,
}

/// The answer for a packument.
#[derive(Debug, Clone)]
pub enum PackumentOutcome {
    /// Serve this packument.
    Packument(Arc<ServedPackument>),
    /// The view allows no version of the package (a curated view without an entry, or every
    /// version denied); the decision says why.
    NotInFormulary(Box<Decision>),
    /// No upstream has the package.
    Missing,
}

fn not_in_formulary(decision: &Decision) -> bool {
    !decision.allowed
        && decision
            .reasons
            .iter()
            .any(|reason| reason.code == ReasonCode::NotInFormulary)
}

impl NpmGateway {
    /// The packument for a view. `tarballs_base` is the absolute URL under which this view's
    /// tarballs live (`https://formulary.example/o/RJ1/npm/`), built from the configured public
    /// URL by the caller.
    pub async fn packument(
        &self,
        snapshot: &PolicySnapshot,
        generation: i64,
        view: &View,
        day: Option<chrono::NaiveDate>,
        component: &Component,
        tarballs_base: &str,
    ) -> Result<PackumentOutcome, GatewayError> {
        let Some(package) = self.package(component).await? else {
            return Ok(PackumentOutcome::Missing);
        };
        let key = ViewKey {
            document: format!("{}\u{0}{tarballs_base}", component.name),
            organisation: view.organisation.clone(),
            day,
        };
        let source: Arc<dyn std::any::Any + Send + Sync> = package.clone();
        let outcome = self
            .views
            .get_or_build(key, Sources::new(generation, vec![source]), async {
                Ok::<_, GatewayError>(decide(snapshot, view, component, &package, tarballs_base))
            })
            .await?;
        Ok(PackumentOutcome::clone(&outcome))
    }
}

/// Decides every version visible in the view (a dated view does not see versions published
/// after its day) and builds both forms.
fn decide(
    snapshot: &PolicySnapshot,
    view: &View,
    component: &Component,
    package: &Package,
    tarballs_base: &str,
) -> PackumentOutcome {
    let visible: Vec<usize> = package
        .releases
        .iter()
        .enumerate()
        .filter(|(_, release)| {
            release
                .published
                .is_none_or(|published| published <= view.at)
        })
        .map(|(index, _)| index)
        .collect();
    let releases: Vec<_> = visible
        .iter()
        .map(|index| package.releases[*index].clone())
        .collect();
    let decisions = evaluate_releases(snapshot, view, component, &releases);
    if !decisions.is_empty() && decisions.iter().all(|decision| !decision.allowed) {
        // Nothing to install: say why (a 404 whose reason npm prints), rather than serve a
        // packument without versions, which npm reports only as "No versions available". The
        // reason given is the curated view's when it applies, else the newest version's.
        let newest = releases
            .iter()
            .zip(&decisions)
            .max_by(|left, right| left.0.version.cmp(&right.0.version))
            .map(|(_, decision)| decision);
        let chosen = decisions
            .iter()
            .find(|decision| not_in_formulary(decision))
            .or(newest);
        if let Some(decision) = chosen {
            return PackumentOutcome::NotInFormulary(Box::new(decision.clone()));
        }
    }
    let allowed: Vec<String> = visible
        .iter()
        .zip(&decisions)
        .filter(|(_, decision)| decision.allowed)
        .map(|(index, _)| package.versions[*index].1.version.clone())
        .collect();
    let allowed_set: std::collections::HashSet<&str> = allowed.iter().map(String::as_str).collect();
    let tags = npm::repoint_tags(&package.packument.dist_tags(), &allowed);
    let name = component.name.as_str();
    let served = package.packument.for_view(
        &|version| allowed_set.contains(version),
        &|_, filename| format!("{tarballs_base}{name}/-/{filename}"),
        &tags,
    );
    PackumentOutcome::Packument(Arc::new(ServedPackument {
        full: Rendered::new(served.render_full()),
        abbreviated: Rendered::new(served.render_abbreviated()),
        stale: package.freshness.stale,
        withheld: package.versions.len() - allowed.len(),
    }))
}
