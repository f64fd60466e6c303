//! CRAN versions decided as the gateway decides them, outside a request (`formulary policy
//! check`, the API, the component page): with the source tree's release evidence, and with the
//! packages they need at install time.
//!
//! The evidence is what the gateway keeps for `src/contrib`: the current version of each package
//! from the cached `PACKAGES` (its licence, and the first-seen date the store holds for it, which
//! is the cooldown's release date), and archived versions from the cached `Meta/archive.rds` and
//! `mirror import` (undated, as the gateway serves them; the licence of an imported one from its
//! DESCRIPTION). A release date is applied only to the version the tree lists as current. An
//! archived version whose DESCRIPTION Formulary has not seen is taken to need the packages the
//! nearest described version needs (in any version).
//!
//! A dependency constraint (`Imports: tibble (>= 2.0)`) is met as the gateway's index meets it:
//! the index lists, for each package, the newest version the view allows (an archived one when
//! newer ones are denied), and keeps a package only while each package it needs is kept in a
//! version that satisfies the constraint, transitively. For the lower bounds CRAN packages use,
//! that is "some allowed version satisfies it": a denied newest version does not make a package
//! uninstallable while an older allowed one satisfies the constraint, because the gateway serves
//! that one.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use deb822_fast::Paragraph;
use formulary_core::ecosystems::cran::{self, licence_to_spdx, Archive, Dependency};
use formulary_core::ecosystems::{Ecosystem, Version, VersionRange};
use formulary_core::policy::{
    evaluate_releases, Decision, Effect, PolicySnapshot, Reason, ReasonCode, Release, View,
};
use formulary_core::Component;
use formulary_store::Database;

use crate::cran::imported::ImportedFiles;
use crate::error::GatewayError;

/// Where the gateway caches the upstream's `archive.rds` (the key of `cran::ARCHIVE_RDS`).
const ARCHIVE_RDS: &str = "src/contrib/Meta/archive.rds";

/// One version of a package that the source tree can serve.
#[derive(Debug, Clone)]
pub(crate) struct Candidate {
    /// The release evidence the gateway decides it with.
    pub(crate) release: Release,
    /// What it needs at install time. For an archived version whose DESCRIPTION has not been
    /// seen, the packages the nearest described version needs, in any version.
    pub(crate) dependencies: Vec<Dependency>,
    /// True when `dependencies` come from its own DESCRIPTION.
    described: bool,
}

/// One package and the versions the source tree knows, newest first.
#[derive(Debug)]
struct Package {
    component: Component,
    candidates: Vec<Candidate>,
}

/// Every version of every package the source tree knows.
#[derive(Debug, Default)]
pub(crate) struct CranCatalogue {
    packages: HashMap<String, Package>,
}

impl CranCatalogue {
    /// Builds the catalogue from the tree's current `PACKAGES`, the first-seen dates by
    /// (package, version), the upstream's archive and the `PACKAGES` entries of imported files.
    pub(crate) fn new(
        current: &[Paragraph],
        published: &HashMap<(String, String), DateTime<Utc>>,
        archive: &Archive,
        imported: &[Paragraph],
    ) -> CranCatalogue {
        let mut catalogue = CranCatalogue::default();
        for paragraph in current {
            let Some((name, version_text, version)) = describe(paragraph) else {
                continue;
            };
            let published = published
                .get(&(name.to_owned(), version_text.to_owned()))
                .copied();
            catalogue.add(name, version, published, paragraph, true);
        }
        for paragraph in imported {
            if let Some((name, _, version)) = describe(paragraph) {
                catalogue.add(name, version, None, paragraph, false);
            }
        }
        for file in archive.values().flatten() {
            let Some((component, version)) = crate::cran::parse_filename(&file.filename) else {
                continue;
            };
            catalogue.add_undescribed(component.name.as_str(), version);
        }
        for package in catalogue.packages.values_mut() {
            package
                .candidates
                .sort_by(|left, right| right.release.version.cmp(&left.release.version));
            inherit_dependencies(&mut package.candidates);
        }
        catalogue
    }

    /// Reads what the gateway has cached for `src/contrib`.
    pub(crate) async fn load(database: &Database) -> Result<CranCatalogue, GatewayError> {
        let current = crate::cran::cached_index(database, "src/contrib").await?;
        let published = if current.is_empty() {
            HashMap::new()
        } else {
            database.published_releases(Ecosystem::Cran).await?
        };
        let archive: Archive = match database
            .upstream_document(
                crate::cran::tree::SCOPE,
                &crate::cran::tree::tree_key(ARCHIVE_RDS),
            )
            .await?
        {
            Some(stored) => serde_json::from_str(&stored.document).unwrap_or_default(),
            None => Archive::new(),
        };
        let mut imported: Vec<Paragraph> = ImportedFiles::load(database)
            .await?
            .trees
            .get("src/contrib")
            .into_iter()
            .flat_map(|files| files.values())
            .filter_map(|file| cran::parse_packages(&file.entry).ok()?.pop())
            .collect();
        // Archived versions the gateway has described from their own DESCRIPTION: judged by
        // what they really need, as the gateway's index judges them.
        if !current.is_empty() {
            let scope = crate::cran::DESCRIPTIONS_SCOPE;
            for key in database.upstream_document_keys(scope).await? {
                if let Some(stored) = database.upstream_document(scope, &key).await? {
                    if let Some(paragraph) = cran::parse_packages(&stored.document)
                        .ok()
                        .and_then(|mut paragraphs| paragraphs.pop())
                    {
                        imported.push(paragraph);
                    }
                }
            }
        }
        Ok(CranCatalogue::new(
            &current, &published, &archive, &imported,
        ))
    }

    fn add(
        &mut self,
        name: &str,
        version: Version,
        published: Option<DateTime<Utc>>,
        paragraph: &Paragraph,
        replace: bool,
    ) {
        let Some(candidates) = self.candidates_mut(name) else {
            return;
        };
        let candidate = Candidate {
            release: Release {
                dated_by_first_sight: false,
                version: version.clone(),
                published,
                yanked: None,
                licence: paragraph.get("License").and_then(licence_to_spdx),
                install_scripts: false,
            },
            dependencies: cran::dependencies(paragraph),
            described: true,
        };
        match candidates
            .iter_mut()
            .find(|known| known.release.version == version)
        {
            Some(known) if replace => *known = candidate,
            Some(_) => {}
            None => candidates.push(candidate),
        }
    }

    fn add_undescribed(&mut self, name: &str, version: Version) {
        let Some(candidates) = self.candidates_mut(name) else {
            return;
        };
        if !candidates
            .iter()
            .any(|known| known.release.version == version)
        {
            candidates.push(Candidate {
                release: Release::bare(version),
                dependencies: Vec::new(),
                described: false,
            });
        }
    }

    fn candidates_mut(&mut self, name: &str) -> Option<&mut Vec<Candidate>> {
        if !self.packages.contains_key(name) {
            let component = Component::new(Ecosystem::Cran, name).ok()?;
            self.packages.insert(
                name.to_owned(),
                Package {
                    component,
                    candidates: Vec::new(),
                },
            );
        }
        self.packages
            .get_mut(name)
            .map(|package| &mut package.candidates)
    }

    /// True when nothing is known (the gateway never fetched or imported a source tree).
    pub(crate) fn is_empty(&self) -> bool {
        self.packages.is_empty()
    }

    /// The package and candidate for one version, if the tree knows it.
    fn candidate(&self, name: &str, version: &Version) -> Option<(&Package, &Candidate)> {
        let package = self.packages.get(name)?;
        let candidate = package
            .candidates
            .iter()
            .find(|candidate| &candidate.release.version == version)?;
        Some((package, candidate))
    }
}

/// Gives each undescribed version the dependencies (names only, any version) of the nearest
/// described one: packages rarely change what they need, only which versions.
fn inherit_dependencies(candidates: &mut [Candidate]) {
    let described: Vec<(usize, Vec<Dependency>)> = candidates
        .iter()
        .enumerate()
        .filter(|(_, candidate)| candidate.described)
        .map(|(index, candidate)| {
            let any_version = candidate
                .dependencies
                .iter()
                .map(|dependency| Dependency {
                    name: dependency.name.clone(),
                    range: VersionRange::every(Ecosystem::Cran),
                })
                .collect();
            (index, any_version)
        })
        .collect();
    for (index, candidate) in candidates.iter_mut().enumerate() {
        if candidate.described {
            continue;
        }
        if let Some((_, dependencies)) = described
            .iter()
            .min_by_key(|(described, _)| described.abs_diff(index))
        {
            candidate.dependencies.clone_from(dependencies);
        }
    }
}

fn describe(paragraph: &Paragraph) -> Option<(&str, &str, Version)> {
    let name = paragraph.get("Package")?;
    let version_text = paragraph.get("Version")?;
    let version = Version::parse(Ecosystem::Cran, version_text).ok()?;
    Some((name, version_text, version))
}

/// Works out, for one view, what the gateway's index serves: for each package the newest
/// version the policy allows (as `PACKAGES` lists one version per package), kept only while every
/// package it needs is kept in a version that satisfies the constraint, until nothing changes.
/// Only the packages a question reaches are looked at; policy decisions are remembered.
pub(crate) struct Installability<'a> {
    snapshot: &'a PolicySnapshot,
    view: &'a View,
    catalogue: &'a CranCatalogue,
    decisions: HashMap<(String, Version), Decision>,
    /// The version served of each package looked at (`None`: no version is allowed).
    served: HashMap<String, Option<&'a Candidate>>,
}

impl<'a> Installability<'a> {
    /// For a view over a catalogue.
    pub(crate) fn new(
        snapshot: &'a PolicySnapshot,
        view: &'a View,
        catalogue: &'a CranCatalogue,
    ) -> Installability<'a> {
        Installability {
            snapshot,
            view,
            catalogue,
            decisions: HashMap::new(),
            served: HashMap::new(),
        }
    }

    /// The policy's decision on one candidate, with its own evidence (as the gateway decides it).
    fn decision(&mut self, package: &Package, candidate: &Candidate) -> &Decision {
        let key = (
            package.component.name.as_str().to_owned(),
            candidate.release.version.clone(),
        );
        let (snapshot, view) = (self.snapshot, self.view);
        self.decisions.entry(key).or_insert_with(|| {
            evaluate_releases(
                snapshot,
                view,
                &package.component,
                std::slice::from_ref(&candidate.release),
            )
            .swap_remove(0)
        })
    }

    /// The newest allowed version of a package, if the repository has it and any is allowed.
    fn served(&mut self, name: &str) -> Option<&'a Candidate> {
        if let Some(served) = self.served.get(name) {
            return *served;
        }
        let catalogue = self.catalogue;
        let served = catalogue.packages.get(name).and_then(|package| {
            package
                .candidates
                .iter()
                .find(|candidate| self.decision(package, candidate).allowed)
        });
        self.served.insert(name.to_owned(), served);
        served
    }

    /// The packages kept in the index among those `dependencies` reach: served, and with every
    /// dependency kept in a satisfying version (the gateway's fixed point, on this closure).
    fn kept(&mut self, dependencies: &[Dependency]) -> HashMap<String, &'a Candidate> {
        let mut kept: HashMap<String, &'a Candidate> = HashMap::new();
        let mut seen: std::collections::HashSet<String> = std::collections::HashSet::new();
        let mut queue: Vec<String> = dependencies.iter().map(|d| d.name.clone()).collect();
        while let Some(name) = queue.pop() {
            if !seen.insert(name.clone()) {
                continue;
            }
            if let Some(candidate) = self.served(&name) {
                queue.extend(candidate.dependencies.iter().map(|d| d.name.clone()));
                kept.insert(name, candidate);
            }
        }
        // Withhold what has an unmet dependency, then what needs what was withheld: each package
        // and each dependency edge is looked at once.
        let mut needed_by: HashMap<&str, Vec<&str>> = HashMap::new();
        let mut withhold: Vec<String> = Vec::new();
        for (name, candidate) in &kept {
            for dependency in &candidate.dependencies {
                needed_by
                    .entry(dependency.name.as_str())
                    .or_default()
                    .push(name.as_str());
            }
            let met = candidate.dependencies.iter().all(|dependency| {
                kept.get(&dependency.name)
                    .is_some_and(|served| dependency.range.contains(&served.release.version))
            });
            if !met {
                withhold.push(name.clone());
            }
        }
        let mut withheld: std::collections::HashSet<String> = std::collections::HashSet::new();
        while let Some(name) = withhold.pop() {
            if !withheld.insert(name.clone()) {
                continue;
            }
            for dependent in needed_by.get(name.as_str()).into_iter().flatten() {
                if !withheld.contains(*dependent) {
                    withhold.push((*dependent).to_owned());
                }
            }
        }
        kept.retain(|name, _| !withheld.contains(name));
        kept
    }

    /// Why a dependency is not met, given what is kept.
    fn why_unmet(
        &mut self,
        dependency: &Dependency,
        kept: &HashMap<String, &'a Candidate>,
    ) -> Option<String> {
        let catalogue = self.catalogue;
        let name = dependency.name.as_str();
        let Some(package) = catalogue.packages.get(name) else {
            return Some("which this repository does not have".to_owned());
        };
        let served = self.served(name);
        if let Some(served) = served {
            if dependency.range.contains(&served.release.version) {
                if kept.contains_key(name) {
                    return None;
                }
                let missing: Vec<&str> = served
                    .dependencies
                    .iter()
                    .filter(|needed| {
                        !kept
                            .get(&needed.name)
                            .is_some_and(|kept| needed.range.contains(&kept.release.version))
                    })
                    .map(|needed| needed.name.as_str())
                    .collect();
                return Some(format!(
                    "and {name} {} is allowed but cannot be installed: it needs {}, which cannot be installed in this view",
                    served.release.version,
                    missing.join(", ")
                ));
            }
        }
        let newest_satisfying = package
            .candidates
            .iter()
            .find(|candidate| dependency.range.contains(&candidate.release.version));
        Some(match (newest_satisfying, served) {
            (None, _) => format!(
                "and no version of {name} this repository has satisfies that (the newest is {})",
                package
                    .candidates
                    .first()
                    .map(|candidate| candidate.release.version.to_string())
                    .unwrap_or_default()
            ),
            (Some(satisfying), served) => {
                let decision = self.decision(package, satisfying);
                if decision.allowed {
                    // Only an upper bound gets here: R installs the one version listed.
                    format!(
                        "and the version of {name} this view serves, {}, does not satisfy that; R installs only the version a repository lists",
                        served.map(|served| served.release.version.to_string()).unwrap_or_default()
                    )
                } else {
                    format!(
                        "and {name} {} is denied: {}",
                        satisfying.release.version,
                        decision.headline().unwrap_or("denied")
                    )
                }
            }
        })
    }

    /// A denying reason for each dependency that cannot be met.
    pub(crate) fn unmet(&mut self, dependencies: &[Dependency]) -> Vec<Reason> {
        let kept = self.kept(dependencies);
        dependencies
            .iter()
            .filter_map(|dependency| {
                let why = self.why_unmet(dependency, &kept)?;
                Some(Reason {
                    code: ReasonCode::DependencyDenied,
                    effect: Effect::Deny,
                    message: format!(
                        "it needs {} ({}), {why}. Installing it must fail until that is resolved",
                        dependency.name, dependency.range
                    ),
                    advisory: None,
                    link: Some(format!("/components/cran/{}", dependency.name)),
                })
            })
            .collect()
    }
}

/// Decides the CRAN versions among `decisions` again as the gateway decides them: with the
/// source tree's release evidence (when the tree knows the version), and denied, with the reason,
/// when a package it needs at install time cannot be met in the view. Other decisions, and
/// versions the gateway has never seen, are left as they are.
pub async fn explain_cran_dependencies(
    database: &Database,
    snapshot: &PolicySnapshot,
    view: &View,
    decisions: &mut [Decision],
) -> Result<(), GatewayError> {
    if !decisions
        .iter()
        .any(|decision| decision.component.ecosystem() == Ecosystem::Cran)
    {
        return Ok(());
    }
    let catalogue = CranCatalogue::load(database).await?;
    if catalogue.is_empty() {
        return Ok(());
    }
    let mut installability = Installability::new(snapshot, view, &catalogue);
    for decision in decisions
        .iter_mut()
        .filter(|decision| decision.component.ecosystem() == Ecosystem::Cran)
    {
        let Ok(version) = Version::parse(Ecosystem::Cran, &decision.version) else {
            continue;
        };
        let Some((package, candidate)) =
            catalogue.candidate(decision.component.name.as_str(), &version)
        else {
            continue;
        };
        let mut decided = installability.decision(package, candidate).clone();
        decided.version.clone_from(&decision.version);
        for reason in installability.unmet(&candidate.dependencies) {
            decided.allowed = false;
            decided.reasons.push(reason);
        }
        *decision = decided;
    }
    Ok(())
}

#[cfg(test)]
#[path = "dependencies_tests.rs"]
mod tests;

impl crate::dependencies_closure::Requirements for CranCatalogue {
    async fn releases(&self, component: &Component) -> Result<Vec<Release>, GatewayError> {
        Ok(self
            .packages
            .get(component.name.as_str())
            .map(|package| {
                package
                    .candidates
                    .iter()
                    .map(|candidate| candidate.release.clone())
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn requirements(
        &self,
        component: &Component,
        release: &Release,
        _extras: &[String],
    ) -> Result<Option<Vec<crate::dependencies_closure::Requirement>>, GatewayError> {
        let Some((_, candidate)) = self.candidate(component.name.as_str(), &release.version) else {
            return Ok(None);
        };
        Ok(Some(
            candidate
                .dependencies
                .iter()
                .filter_map(|dependency| {
                    Some(crate::dependencies_closure::Requirement {
                        component: Component::new(Ecosystem::Cran, &dependency.name).ok()?,
                        range: dependency.range.clone(),
                        extras: Vec::new(),
                    })
                })
                .collect(),
        ))
    }
}
