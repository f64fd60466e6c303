//! A packument for one view: upstream's document with policy applied, rendered once per form
//! (full and abbreviated), each with its own entity tag.

use std::sync::Arc;

use formulary_core::ecosystems::npm;
use formulary_core::policy::{evaluate_releases, Decision, PolicySnapshot, ReasonCode, View};
use formulary_core::Component;

use super::text::PackumentText;
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

/// Every version visible in one view (a dated view does not see versions published after its
/// day) with its decision: worked out once per policy snapshot and packument, and shared by the
/// packument and every tarball request of that view.
#[derive(Debug)]
pub(crate) struct ViewDecisions {
    /// (index into the package's versions, decision), in the packument's order.
    pub(crate) decided: Vec<(usize, Decision)>,
}

impl ViewDecisions {
    /// The decision of the version at `index` in the package's versions, if the view sees it.
    pub(crate) fn of(&self, index: usize) -> Option<&Decision> {
        // `decided` is in index order (built from an enumeration), so a binary search finds it.
        self.decided
            .binary_search_by_key(&index, |(decided, _)| *decided)
            .ok()
            .map(|position| &self.decided[position].1)
    }
}

impl NpmGateway {
    /// The decisions of every visible version of `package` in a view, reused while the policy
    /// snapshot and the packument are the same (for up to 30 s, so time-based rules still apply).
    pub(crate) async fn decisions(
        &self,
        snapshot: &PolicySnapshot,
        generation: i64,
        view: &View,
        day: Option<chrono::NaiveDate>,
        component: &Component,
        package: &Arc<Package>,
    ) -> Result<Arc<ViewDecisions>, GatewayError> {
        let key = ViewKey {
            document: component.name.to_string(),
            organisation: view.organisation.clone(),
            day,
        };
        let source: Arc<dyn std::any::Any + Send + Sync> = package.clone();
        self.decisions
            .get_or_build(key, Sources::new(generation, vec![source]), async {
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
                Ok::<_, GatewayError>(ViewDecisions {
                    decided: visible.into_iter().zip(decisions).collect(),
                })
            })
            .await
    }

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
        let (package, text) = self.with_text(component, package).await?;
        let decisions = self
            .decisions(snapshot, generation, view, day, component, &package)
            .await?;
        let key = ViewKey {
            document: format!("{}\u{0}{tarballs_base}", component.name),
            organisation: view.organisation.clone(),
            day,
        };
        let sources: Vec<Arc<dyn std::any::Any + Send + Sync>> =
            vec![package.clone(), decisions.clone()];
        let outcome = self
            .views
            .get_or_build(key, Sources::new(generation, sources), async {
                build(component, &package, &text, &decisions, tarballs_base)
            })
            .await?;
        Ok(PackumentOutcome::clone(&outcome))
    }
}

/// Builds both forms from the decisions, or says that the view allows no version at all.
fn build(
    component: &Component,
    package: &Package,
    kept: &PackumentText,
    decided: &ViewDecisions,
    tarballs_base: &str,
) -> Result<PackumentOutcome, GatewayError> {
    let decisions: Vec<&Decision> = decided
        .decided
        .iter()
        .map(|(_, decision)| decision)
        .collect();
    if !decisions.is_empty() && decisions.iter().all(|decision| !decision.allowed) {
        // Nothing to install: say why (a 404 whose reason npm prints), rather than serve a
        // packument without versions, which npm reports only as "No versions available". The
        // reason given is the curated view's when it applies, else the newest version's.
        let newest = decided
            .decided
            .iter()
            .max_by(|left, right| package.versions[left.0].0.cmp(&package.versions[right.0].0))
            .map(|(_, decision)| decision);
        let chosen = decisions
            .iter()
            .copied()
            .find(|decision| not_in_formulary(decision))
            .or(newest);
        if let Some(decision) = chosen {
            return Ok(PackumentOutcome::NotInFormulary(Box::new(decision.clone())));
        }
    }
    let allowed: Vec<String> = decided
        .decided
        .iter()
        .filter(|(_, decision)| decision.allowed)
        .map(|(index, _)| package.versions[*index].1.version.clone())
        .collect();
    let allowed_set: std::collections::HashSet<&str> = allowed.iter().map(String::as_str).collect();
    let name = component.name.as_str();
    let malformed = |why: String| crate::engine::upstream::UpstreamFailure::Malformed {
        url: name.to_owned(),
        why,
    };
    let text = kept
        .text()
        .map_err(|error| malformed(format!("the kept packument cannot be read: {error}")))?;
    let packument =
        npm::Packument::parse(&text, name).map_err(|error| malformed(error.to_string()))?;
    drop(text);
    let tags = npm::repoint_tags(&packument.dist_tags(), &allowed);
    let served = packument.for_view(
        &|version| allowed_set.contains(version),
        &|_, filename| format!("{tarballs_base}{name}/-/{filename}"),
        &tags,
    );
    Ok(PackumentOutcome::Packument(Arc::new(ServedPackument {
        full: Rendered::new(served.render_full()),
        abbreviated: Rendered::new(served.render_abbreviated()),
        stale: package.freshness.stale,
        withheld: package.versions.len() - allowed.len(),
    })))
}
