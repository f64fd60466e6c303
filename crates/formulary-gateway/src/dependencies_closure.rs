//! Dependency closures of curated views: approving a component admits what it needs to install.
//!
//! For each organisation whose view of an ecosystem is curated, every component with an
//! approving entry in force in that view is a root. From each root the closure is walked: for
//! each component reached, the version an unpinned install resolves to (the newest version,
//! not a pre-release unless only pre-releases exist, that the view allows or that only the
//! missing formulary entry denies, within the ranges its dependents accept) is asked what it
//! needs; each requirement becomes an [`Admission`] of the versions it accepts. The policy engine
//! then allows those versions where nothing but a missing entry denied them, so a prohibition,
//! an advisory, a licence rule or a cooldown still applies to a dependency.
//!
//! What a version needs is ecosystem-specific ([`Requirements`]): PyPI's `Requires-Dist` from
//! core metadata (extras only when a dependent asks for them; environment markers are kept, as
//! any platform the organisation uses may need them), CRAN's Depends, Imports and LinkingTo.

use std::collections::{HashMap, HashSet, VecDeque};

use formulary_core::ecosystems::{Ecosystem, VersionRange};
use formulary_core::policy::{
    evaluate_releases, Admission, PolicySnapshot, ReasonCode, Release, View,
};
use formulary_core::{Component, Entry, OrgCode, Stance};

use crate::error::GatewayError;

/// One thing a version needs at install time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Requirement {
    /// The component needed.
    pub(crate) component: Component,
    /// The versions accepted.
    pub(crate) range: VersionRange,
    /// Optional features asked for (PyPI extras).
    pub(crate) extras: Vec<String>,
}

/// Where an ecosystem's versions and their requirements come from.
pub(crate) trait Requirements {
    /// Every known release of a component (its evidence, as the gateway decides it).
    async fn releases(&self, component: &Component) -> Result<Vec<Release>, GatewayError>;

    /// What one version needs with these extras; `None` when that is not known (no metadata).
    async fn requirements(
        &self,
        component: &Component,
        release: &Release,
        extras: &[String],
    ) -> Result<Option<Vec<Requirement>>, GatewayError>;
}

/// The outcome of working out one view's closure.
#[derive(Debug, Default)]
pub(crate) struct Closure {
    /// The admissions.
    pub(crate) admissions: Vec<Admission>,
    /// Components whose requirements could not be read, with why (for logs and `why`).
    pub(crate) unknown: Vec<String>,
}

/// The organisations whose view of `ecosystem` is curated (the national view included).
pub(crate) fn curated_organisations(
    snapshot: &PolicySnapshot,
    organisations: &[OrgCode],
    ecosystem: Ecosystem,
) -> Vec<OrgCode> {
    organisations
        .iter()
        .filter(|code| snapshot.settings_for(code, ecosystem).stance == Stance::Curated)
        .cloned()
        .collect()
}

/// The approved roots of a view: each component with an admitting entry in force for it, with
/// the first such entry.
fn roots<'a>(
    snapshot: &'a PolicySnapshot,
    view: &View,
    ecosystem: Ecosystem,
) -> Vec<(Component, &'a Entry)> {
    let today = view.at.date_naive();
    let mut found: Vec<(Component, &Entry)> = snapshot
        .components_with_entries()
        .filter(|component| component.ecosystem() == ecosystem)
        .filter_map(|component| {
            let entry = snapshot.entries_for(component).iter().find(|entry| {
                entry.draft.status.admits()
                    && entry.is_in_force_on(today)
                    && (entry.draft.organisation.is_national()
                        || entry.draft.organisation == view.organisation)
            })?;
            Some((component.clone(), entry.as_ref()))
        })
        .collect();
    found.sort_by(|left, right| left.0.cmp(&right.0));
    found
}

/// Works out the admissions of one organisation's view of one ecosystem.
pub(crate) async fn closure<R: Requirements>(
    snapshot: &PolicySnapshot,
    view: &View,
    ecosystem: Ecosystem,
    source: &R,
) -> Result<Closure, GatewayError> {
    let mut outcome = Closure::default();
    let mut releases: HashMap<Component, Vec<Release>> = HashMap::new();
    let mut needs: HashMap<(Component, String, Vec<String>), Option<Vec<Requirement>>> =
        HashMap::new();
    for (root, entry) in roots(snapshot, view, ecosystem) {
        // Ranges each reached component is admitted in (for this root), and the extras asked.
        let mut admitted: HashMap<Component, Vec<VersionRange>> = HashMap::new();
        let mut visited: HashSet<(Component, Vec<String>)> = HashSet::new();
        let mut queue: VecDeque<(Component, Vec<String>)> =
            VecDeque::from([(root.clone(), Vec::new())]);
        while let Some((component, extras)) = queue.pop_front() {
            if !visited.insert((component.clone(), extras.clone())) {
                continue;
            }
            if !releases.contains_key(&component) {
                let known = source.releases(&component).await?;
                releases.insert(component.clone(), known);
            }
            let known = &releases[&component];
            let Some(chosen) = resolved(
                snapshot,
                view,
                &component,
                known,
                admitted.get(&component),
                component == root,
            ) else {
                continue;
            };
            let key = (
                component.clone(),
                chosen.version.to_string(),
                extras.clone(),
            );
            if !needs.contains_key(&key) {
                let found = source.requirements(&component, &chosen, &extras).await?;
                needs.insert(key.clone(), found);
            }
            let Some(requirements) = &needs[&key] else {
                outcome
                    .unknown
                    .push(format!("{} {}", component.name, chosen.version));
                continue;
            };
            for requirement in requirements {
                if requirement.component == root {
                    continue;
                }
                admitted
                    .entry(requirement.component.clone())
                    .or_default()
                    .push(requirement.range.clone());
                outcome.admissions.push(Admission {
                    organisation: view.organisation.clone(),
                    component: requirement.component.clone(),
                    range: requirement.range.clone(),
                    dependent: component.clone(),
                    root: root.clone(),
                    entry_id: entry.id.clone(),
                });
                let mut extras = requirement.extras.clone();
                extras.sort();
                extras.dedup();
                queue.push_back((requirement.component.clone(), Vec::new()));
                if !extras.is_empty() {
                    queue.push_back((requirement.component.clone(), extras));
                }
            }
        }
    }
    outcome.unknown.sort();
    outcome.unknown.dedup();
    Ok(outcome)
}

/// The version an unpinned install of `component` resolves to in the view once admitted: the
/// newest release that the view allows, or that only the missing entry denies while `ranges`
/// admit it (roots must be allowed outright). Pre-releases only when nothing else qualifies;
/// yanked releases never.
fn resolved(
    snapshot: &PolicySnapshot,
    view: &View,
    component: &Component,
    known: &[Release],
    ranges: Option<&Vec<VersionRange>>,
    root: bool,
) -> Option<Release> {
    let visible: Vec<Release> = known
        .iter()
        .filter(|release| {
            release
                .published
                .is_none_or(|published| published <= view.at)
        })
        .cloned()
        .collect();
    let decisions = evaluate_releases(snapshot, view, component, &visible);
    let mut candidates: Vec<&Release> = visible
        .iter()
        .zip(&decisions)
        .filter(|(release, decision)| {
            if release.yanked.is_some() {
                return false;
            }
            if root {
                return decision.allowed;
            }
            ranges.is_some_and(|ranges| ranges.iter().all(|range| range.contains(&release.version)))
                && decision
                    .reasons
                    .iter()
                    .filter(|reason| reason.effect == formulary_core::policy::Effect::Deny)
                    .all(|reason| reason.code == ReasonCode::NotInFormulary)
        })
        .map(|(release, _)| release)
        .collect();
    candidates.sort_by(|left, right| right.version.cmp(&left.version));
    candidates
        .iter()
        .find(|release| !release.version.is_prerelease())
        .or_else(|| candidates.first())
        .map(|release| (*release).clone())
}

#[cfg(test)]
#[path = "dependencies_closure_tests.rs"]
mod tests;
