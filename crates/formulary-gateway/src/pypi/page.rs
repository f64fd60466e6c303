//! A project page for one view: upstream's page as it was, with policy added.

use std::collections::HashMap;
use std::sync::Arc;

use formulary_core::ecosystems::pypi::{self, ProjectPage, ProjectStatus};
use formulary_core::policy::{evaluate_releases, Decision, PolicySnapshot, Release, View};
use formulary_core::Component;

use super::{PageOutcome, Project, PypiGateway};
use crate::engine::rendered::Rendered;
use crate::engine::views::{Sources, ViewKey};
use crate::error::GatewayError;

/// A project page ready to serve for one view, rendered at most once per format.
#[derive(Debug)]
pub struct ServedPage {
    /// The page, with file URLs pointing at this gateway and denied versions yanked with their
    /// reason.
    pub page: ProjectPage,
    /// True when the upstream could not be reached and the page comes from the cache.
    pub stale: bool,
    json: std::sync::OnceLock<Rendered>,
    html: std::sync::OnceLock<Rendered>,
}

impl ServedPage {
    /// The page as PEP 691 JSON.
    pub fn json(&self) -> &Rendered {
        self.json
            .get_or_init(|| Rendered::new(pypi::render_json(&self.page)))
    }

    /// The page as PEP 503 HTML.
    pub fn html(&self) -> &Rendered {
        self.html
            .get_or_init(|| Rendered::new(pypi::render_html(&self.page)))
    }
}

/// The yank reason served for a file: the publisher's, and the policy's beside it, which ends
/// with where to request the component (`request_base` is the server's public URL).
pub(crate) fn served_yank(
    publisher: Option<&str>,
    decision: &Decision,
    request_base: &str,
) -> Option<String> {
    let policy = (!decision.allowed).then(|| {
        format!(
            "Blocked by Formulary: {}. Request it at {request_base}requests/new?component={}",
            without_request_sentence(decision.headline().unwrap_or("denied by policy")),
            decision.component.purl()
        )
    });
    match (publisher, policy) {
        (None, None) => None,
        (Some(reason), None) => Some(reason.to_owned()),
        (None, Some(policy)) => Some(policy),
        (Some(""), Some(policy)) => Some(format!("Yanked by the publisher. {policy}")),
        (Some(reason), Some(policy)) => {
            Some(format!("Yanked by the publisher: {reason}. {policy}"))
        }
    }
}

/// A headline without its closing "Request it to start a review." (the request link follows).
pub fn without_request_sentence(headline: &str) -> &str {
    let headline = headline.trim_end_matches('.');
    headline
        .strip_suffix(". Request it to start a review")
        .unwrap_or(headline)
}

impl PypiGateway {
    /// The project page for a view: upstream's page as it was, with each denied version's files
    /// yanked with the policy's reason (beside any reason of the publisher's) and file URLs
    /// under `files_base` (relative to the page, e.g. `../../files/requests/`). Where every
    /// version is denied, the page also says so with PEP 792 `quarantined` and the reason.
    ///
    /// `generation` identifies the snapshot (its change counter) and `day` the snapshot date of a
    /// dated view: a page built for the same project, view, generation and upstream document is
    /// reused for up to 30 seconds. Yank reasons end with where to request the component, under
    /// `request_base` (the server's public URL, ending in `/`).
    #[expect(
        clippy::too_many_arguments,
        reason = "the view, its moment and two URL bases"
    )]
    pub async fn page(
        &self,
        snapshot: &PolicySnapshot,
        generation: i64,
        view: &View,
        day: Option<chrono::NaiveDate>,
        component: &Component,
        files_base: &str,
        request_base: &str,
    ) -> Result<PageOutcome, GatewayError> {
        let Some(project) = self.project(component).await? else {
            return Ok(PageOutcome::Missing);
        };
        // The page for this view is reused while the policy and the upstream page are the same:
        // the policy is evaluated once per build, not on every request.
        let key = ViewKey {
            document: format!("{}\u{0}{files_base}", component.name),
            organisation: view.organisation.clone(),
            day,
        };
        let source: Arc<dyn std::any::Any + Send + Sync> = project.clone();
        let outcome = self
            .pages
            .get_or_build(key, Sources::new(generation, vec![source]), async {
                Ok::<_, GatewayError>(decide(
                    snapshot,
                    view,
                    component,
                    &project,
                    files_base,
                    request_base,
                    self.legacy_files,
                ))
            })
            .await?;
        Ok(PageOutcome::clone(&outcome))
    }
}

/// Decides every release visible in the view and builds the page. A project the view allows no
/// version of is still listed, every file yanked with the reason: pip then picks a yanked file
/// (PEP 592 lets an installer do so when nothing else matches), prints the yank reason and
/// reaches the refused download, and uv names the yanked versions with their reason, so both
/// show why and where to request it, where a 404 showed "from versions: none".
fn decide(
    snapshot: &PolicySnapshot,
    view: &View,
    component: &Component,
    project: &Project,
    files_base: &str,
    request_base: &str,
    legacy_files: bool,
) -> PageOutcome {
    let releases: Vec<Release> = project
        .releases
        .iter()
        .filter(|release| {
            release
                .published
                .is_none_or(|published| published <= view.at)
        })
        .cloned()
        .collect();
    let decisions = evaluate_releases(snapshot, view, component, &releases);
    PageOutcome::Page(Arc::new(build(
        component,
        project,
        &decisions,
        files_base,
        request_base,
        legacy_files,
    )))
}

/// Builds the served page from the upstream page and the decisions.
fn build(
    component: &Component,
    project: &Project,
    decisions: &[Decision],
    files_base: &str,
    request_base: &str,
    legacy_files: bool,
) -> ServedPage {
    let by_version: HashMap<&str, &Decision> = decisions
        .iter()
        .map(|decision| (decision.version.as_str(), decision))
        .collect();
    // Where every version is denied, nothing can be resolved anyway: the newest version the
    // publisher did not yank stays un-yanked, so an unpinned install picks it and reaches its
    // refused download, whose reason (and where to request it) pip and uv print.
    let all_denied = !decisions.is_empty() && decisions.iter().all(|decision| !decision.allowed);
    let shown = if all_denied {
        decisions
            .iter()
            .filter(|decision| decision.yanked.is_none())
            .filter_map(|decision| {
                formulary_core::ecosystems::Version::parse(
                    formulary_core::ecosystems::Ecosystem::Pypi,
                    &decision.version,
                )
                .ok()
            })
            .max_by(|left, right| {
                (!left.is_prerelease(), left).cmp(&(!right.is_prerelease(), right))
            })
    } else {
        None
    };
    let mut files = Vec::with_capacity(project.page.files.len());
    let mut versions = Vec::new();
    for file in &project.page.files {
        let Some(version) = pypi::version_from_filename(&component.name, &file.filename) else {
            continue;
        };
        let Some(decision) = by_version.get(version.to_string().as_str()) else {
            continue;
        };
        if pypi::check_filename(&file.filename).is_err()
            || (!legacy_files && pypi::is_legacy_distribution(&file.filename))
        {
            continue;
        }
        let mut served = file.clone();
        served.url = format!("{files_base}{}", file.filename);
        served.yanked = if shown.as_ref() == Some(&version) {
            file.yanked.clone()
        } else {
            served_yank(file.yanked.as_deref(), decision, request_base)
        };
        versions.push(version);
        files.push(served);
    }
    versions.sort();
    versions.dedup();
    // PEP 700's `versions` passes on the upstream's list as it is (it holds releases with no
    // files, in the upstream's order); an HTML upstream gives none, so it is made from the files.
    let versions = if project.page.versions.is_empty() {
        versions.iter().map(ToString::to_string).collect()
    } else {
        project.page.versions.clone()
    };
    let mut page = ProjectPage {
        name: project.page.name.clone(),
        files,
        versions,
        status: project.page.status.clone(),
        meta: project.page.meta.clone(),
    };
    if page.name.is_empty() {
        page.name = component.name.to_string();
    }
    if all_denied {
        let reason = decisions
            .iter()
            .rev()
            .find_map(Decision::headline)
            .unwrap_or("every version is denied by policy");
        page.status = Some(ProjectStatus {
            status: "quarantined".to_owned(),
            reason: Some(format!("Blocked by Formulary: {reason}")),
        });
    }
    ServedPage {
        page,
        stale: project.freshness.stale,
        json: std::sync::OnceLock::new(),
        html: std::sync::OnceLock::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use formulary_core::ecosystems::Ecosystem;

    fn decision(allowed: bool, headline: &str) -> Decision {
        let reasons = if allowed {
            Vec::new()
        } else {
            vec![formulary_core::policy::Reason {
                code: formulary_core::policy::ReasonCode::Prohibited,
                effect: formulary_core::policy::Effect::Deny,
                message: headline.to_owned(),
                advisory: None,
                link: None,
            }]
        };
        Decision {
            component: Component::new(Ecosystem::Pypi, "demo").expect("name"),
            version: "1.0".to_owned(),
            allowed,
            yanked: None,
            reasons,
        }
    }

    #[test]
    fn a_publishers_yank_keeps_its_reason_and_policy_adds_its_own() {
        let allowed = decision(true, "");
        let denied = decision(false, "prohibited by the national formulary");
        assert_eq!(
            served_yank(None, &allowed, "https://formulary.example/"),
            None
        );
        assert_eq!(
            served_yank(Some("broken build"), &allowed, "https://formulary.example/").as_deref(),
            Some("broken build")
        );
        assert_eq!(
            served_yank(Some(""), &allowed, "https://formulary.example/").as_deref(),
            Some("")
        );
        let both = served_yank(Some("broken build"), &denied, "https://formulary.example/")
            .expect("yanked");
        assert!(both.contains("broken build"), "{both}");
        assert!(
            both.contains("prohibited by the national formulary"),
            "{both}"
        );
        let policy = served_yank(None, &denied, "https://formulary.example/").expect("yanked");
        assert!(policy.starts_with("Blocked by Formulary: "), "{policy}");
        assert!(
            policy.ends_with(
                "Request it at https://formulary.example/requests/new?component=pkg:pypi/demo"
            ),
            "{policy}"
        );
    }
}
