//! What the catalogue shows about a component: each known version's decision for a view, the
//! evidence behind it, the decisions organisations made (precedent), its mentor and the requests
//! for it. Shared by the web pages and the JSON API.

use chrono::{DateTime, Utc};
use formulary_core::advisory::Advisory;
use formulary_core::ecosystems::Ecosystem;
use formulary_core::policy::{evaluate_releases, Decision, Release, View};
use formulary_core::{Component, OrgCode, Status};
use formulary_store::{EntryFilter, RequestFilter, StoredEntry, StoredRequest};
use serde::Serialize;

use crate::error::ApiError;
use crate::state::AppState;

/// How many versions a component page lists (newest first).
const VERSIONS_SHOWN: usize = 40;

/// One version and its decision in the view.
#[derive(Debug, Clone, Serialize)]
pub struct VersionRow {
    /// The decision with every reason.
    pub decision: Decision,
    /// When it was published upstream, when known.
    pub published: Option<DateTime<Utc>>,
    /// Its licence (SPDX), when known.
    pub licence: Option<String>,
    /// True when the version runs an install script (npm `preinstall`, `install`,
    /// `postinstall`).
    pub install_scripts: bool,
}

/// A decision an organisation made about the component.
#[derive(Debug, Clone, Serialize)]
pub struct Precedent {
    /// The entry's id.
    pub entry_id: String,
    /// Whose formulary it is in.
    pub organisation: OrgCode,
    /// The versions covered.
    pub range: String,
    /// The status given.
    pub status: Status,
    /// Conditions of use.
    pub constraints: Option<String>,
    /// Why.
    pub reason: String,
    /// Who decided.
    pub decided_by: String,
    /// When.
    pub decided_at: DateTime<Utc>,
    /// When it ends, for pilots and exceptions.
    pub expires: Option<chrono::NaiveDate>,
}

/// Everything the catalogue shows about one component, for one view.
#[derive(Debug, Clone, Serialize)]
pub struct ComponentReport {
    /// The component.
    pub component: Component,
    /// The organisation whose decisions are shown.
    pub organisation: OrgCode,
    /// Known versions, newest first, each with its decision.
    pub versions: Vec<VersionRow>,
    /// Decisions in force, every organisation's (precedent).
    pub precedents: Vec<Precedent>,
    /// Advisories that name the component.
    pub advisories: Vec<AdvisoryRow>,
    /// The named person who answers questions about it.
    pub mentor: Option<String>,
    /// Requests for it, newest first.
    #[serde(skip)]
    pub requests: Vec<StoredRequest>,
}

/// An advisory, as the catalogue lists it.
#[derive(Debug, Clone, Serialize)]
pub struct AdvisoryRow {
    /// OSV id.
    pub id: String,
    /// One line about it.
    pub summary: String,
    /// `low` … `critical`, or None when unrated.
    pub severity: Option<String>,
    /// A malicious-package report.
    pub malicious: bool,
    /// Withdrawn records affect nothing.
    pub withdrawn: bool,
}

impl ComponentReport {
    /// True when the view lets at least one known version through.
    pub fn any_allowed(&self) -> bool {
        self.versions.iter().any(|row| row.decision.allowed)
    }

    /// Requests still open.
    pub fn open_requests(&self) -> impl Iterator<Item = &StoredRequest> {
        self.requests
            .iter()
            .filter(|request| request.state.is_open())
    }
}

fn precedent(stored: &StoredEntry) -> Precedent {
    let draft = &stored.entry.draft;
    Precedent {
        entry_id: stored.entry.id.clone(),
        organisation: draft.organisation.clone(),
        range: draft.range.as_str().to_owned(),
        status: draft.status,
        constraints: draft.constraints.clone(),
        reason: draft.reason.clone(),
        decided_by: draft.decided_by.clone(),
        decided_at: stored.entry.created_at,
        expires: draft.expires,
    }
}

fn advisory_row(advisory: &Advisory) -> AdvisoryRow {
    AdvisoryRow {
        id: advisory.id.clone(),
        summary: advisory.summary.clone(),
        severity: advisory.severity.map(|severity| severity.to_string()),
        malicious: advisory.malicious,
        withdrawn: advisory.withdrawn.is_some(),
    }
}

/// Reads an ecosystem and a name from a path, as a component (404 when malformed).
pub fn component_from_path(ecosystem: &str, name: &str) -> Result<Component, ApiError> {
    let ecosystem: Ecosystem = ecosystem.parse().map_err(|_| {
        ApiError::not_found(format!(
            "there is no ecosystem '{}'; use pypi, cran, npm or generic",
            ecosystem.escape_debug()
        ))
    })?;
    Component::new(ecosystem, name).map_err(|error| ApiError::not_found(error.to_string()))
}

/// Builds the catalogue's report on `component` as `organisation` sees it now.
pub async fn component_report(
    state: &AppState,
    component: &Component,
    organisation: &OrgCode,
) -> Result<ComponentReport, ApiError> {
    let snapshot = state.snapshot.current();
    if snapshot.organisation(organisation).is_none() {
        return Err(ApiError::not_found(format!("organisation {organisation}")));
    }
    let mut releases: Vec<Release> = state.database.releases_of(component).await?;
    releases.sort_by(|a, b| b.version.cmp(&a.version));
    let view = View {
        organisation: organisation.clone(),
        at: Utc::now(),
    };
    let mut decisions = evaluate_releases(&snapshot, &view, component, &releases);
    formulary_gateway::explain_cran_dependencies(&state.database, &snapshot, &view, &mut decisions)
        .await
        .map_err(|error| {
            tracing::warn!(%error, "could not explain CRAN dependencies");
            ApiError::new(
                axum::http::StatusCode::BAD_GATEWAY,
                "Dependencies could not be checked",
                error.to_string(),
            )
        })?;
    let versions = decisions
        .into_iter()
        .zip(&releases)
        .take(VERSIONS_SHOWN)
        .map(|(decision, release)| VersionRow {
            decision,
            published: release.published,
            licence: release.licence.clone(),
            install_scripts: release.install_scripts,
        })
        .collect();
    let entries = state
        .database
        .list_entries(&EntryFilter {
            component: Some(component.clone()),
            ..EntryFilter::default()
        })
        .await?;
    let mut precedents: Vec<Precedent> = entries.iter().map(precedent).collect();
    precedents.sort_by(|a, b| {
        (
            !a.organisation.is_national(),
            &a.organisation,
            std::cmp::Reverse(a.decided_at),
        )
            .cmp(&(
                !b.organisation.is_national(),
                &b.organisation,
                std::cmp::Reverse(b.decided_at),
            ))
    });
    let mentor = entries
        .iter()
        .filter(|stored| {
            stored.entry.draft.organisation == *organisation
                || stored.entry.draft.organisation.is_national()
        })
        .find_map(|stored| stored.entry.draft.mentor.clone())
        .or_else(|| {
            entries
                .iter()
                .find_map(|stored| stored.entry.draft.mentor.clone())
        });
    let advisories = snapshot
        .advisories_for(component)
        .iter()
        .map(|advisory| advisory_row(advisory))
        .collect();
    let requests = state
        .database
        .requests(&RequestFilter {
            component: Some(component.clone()),
            ..RequestFilter::default()
        })
        .await?;
    Ok(ComponentReport {
        component: component.clone(),
        organisation: organisation.clone(),
        versions,
        precedents,
        advisories,
        mentor,
        requests,
    })
}

/// One search result.
#[derive(Debug, Clone, Serialize)]
pub struct SearchHit {
    /// The component.
    pub component: Component,
    /// The statuses its entries in force give it in the view (national and the organisation's).
    pub statuses: Vec<Status>,
    /// How many requests for it are open.
    pub open_requests: usize,
}

/// Most results a search returns.
pub const SEARCH_LIMIT: usize = 50;

/// Components whose name contains `text`, with what the view's formulary says about them.
pub async fn search(
    state: &AppState,
    text: &str,
    ecosystem: Option<Ecosystem>,
    organisation: &OrgCode,
) -> Result<Vec<SearchHit>, ApiError> {
    let components = state
        .database
        .search_components(text, ecosystem, SEARCH_LIMIT)
        .await?;
    let snapshot = state.snapshot.current();
    let today = Utc::now().date_naive();
    let open = state
        .database
        .requests(&RequestFilter {
            open_only: true,
            ..RequestFilter::default()
        })
        .await?;
    Ok(components
        .into_iter()
        .map(|component| {
            let mut statuses: Vec<Status> = snapshot
                .entries_for(&component)
                .iter()
                .filter(|entry| {
                    (entry.draft.organisation.is_national()
                        || entry.draft.organisation == *organisation)
                        && entry.is_in_force_on(today)
                })
                .map(|entry| entry.draft.status)
                .collect();
            statuses.sort_by_key(|status| Status::ALL.iter().position(|known| known == status));
            statuses.dedup();
            let open_requests = open
                .iter()
                .filter(|request| request.draft.component == component)
                .count();
            SearchHit {
                component,
                statuses,
                open_requests,
            }
        })
        .collect())
}
