//! Search, component reports, the decision log, metrics and the audit log over JSON.

use axum::extract::{Path, Query, State};
use axum::Json;
use formulary_core::ecosystems::Ecosystem;
use formulary_core::{Component, OrgCode};
use formulary_store::AuditRecord;
use serde::{Deserialize, Serialize};

use super::requests::RequestView;
use crate::auth::Authenticated;
use crate::catalogue::{
    component_from_path, component_report, search as search_components, ComponentReport, SearchHit,
};
use crate::error::ApiError;
use crate::evidence::{gather, may_ask_upstream, EvidenceAnswer};
use crate::reports::{
    decision_log, metrics as compute_metrics, DecisionLogFilter, DecisionLogRow, Metrics,
};
use crate::state::AppState;

/// Query of `GET /api/v1/search`.
#[derive(Debug, Deserialize)]
pub(crate) struct SearchQuery {
    q: String,
    ecosystem: Option<String>,
    organisation: Option<String>,
}

fn organisation_or_default(state: &AppState, text: Option<&str>) -> Result<OrgCode, ApiError> {
    match text {
        Some(code) => super::parse_field("organisation", code),
        None => Ok(state.default_organisation.clone()),
    }
}

/// `GET /api/v1/search?q=…`.
pub(crate) async fn search(
    State(state): State<AppState>,
    Query(query): Query<SearchQuery>,
) -> Result<Json<Vec<SearchHit>>, ApiError> {
    let ecosystem = match query.ecosystem.as_deref() {
        None | Some("") => None,
        Some(text) => Some(
            text.parse::<Ecosystem>()
                .map_err(|error| ApiError::bad_request(error.to_string()))?,
        ),
    };
    let organisation = organisation_or_default(&state, query.organisation.as_deref())?;
    Ok(Json(
        search_components(&state, &query.q, ecosystem, &organisation).await?,
    ))
}

/// Query naming a view's organisation.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ViewQuery {
    organisation: Option<String>,
}

/// A component report with its requests.
#[derive(Debug, Serialize)]
pub(crate) struct ComponentView {
    #[serde(flatten)]
    report: ComponentReport,
    requests: Vec<RequestView>,
}

/// `GET /api/v1/components/npm/@scope/name`: a scoped npm package (the scope is a path segment).
pub(crate) async fn scoped_component(
    state: State<AppState>,
    caller: Option<Authenticated>,
    Path((ecosystem, scope, name)): Path<(String, String, String)>,
    query: Query<ViewQuery>,
) -> Result<Json<ComponentView>, ApiError> {
    component(
        state,
        caller,
        Path((ecosystem, format!("{scope}/{name}"))),
        query,
    )
    .await
}

/// `GET /api/v1/components/{ecosystem}/{name}?organisation=…`. Anyone may read the decisions;
/// the requests listed are only those the caller's token may see (none without one).
pub(crate) async fn component(
    State(state): State<AppState>,
    caller: Option<Authenticated>,
    Path((ecosystem, name)): Path<(String, String)>,
    Query(query): Query<ViewQuery>,
) -> Result<Json<ComponentView>, ApiError> {
    let component = component_from_path(&ecosystem, &name)?;
    let organisation = organisation_or_default(&state, query.organisation.as_deref())?;
    let mut report = component_report(&state, &component, &organisation).await?;
    crate::workflow::visible_to(
        caller.as_ref().map(|Authenticated(principal)| principal),
        &mut report.requests,
    );
    let requests = report
        .requests
        .iter()
        .map(|request| RequestView::of(request, None))
        .collect();
    Ok(Json(ComponentView { report, requests }))
}

/// Query of `GET /api/v1/evidence`.
#[derive(Debug, Deserialize)]
pub(crate) struct EvidenceQuery {
    purl: String,
    organisation: Option<String>,
}

/// `GET /api/v1/evidence?purl=pkg:pypi/requests&organisation=RJ1`: what the upstream says about
/// a component (versions and dates, yanks, licence, links, maintainers, dependencies and the
/// closure size), with the advisories Formulary holds. Answers within the gateway's patience:
/// `state` says whether the evidence is fresh, the cached copy (`stale`, with its age), still
/// being fetched (`pending`) or unavailable.
pub(crate) async fn evidence(
    State(state): State<AppState>,
    caller: Option<Authenticated>,
    Query(query): Query<EvidenceQuery>,
) -> Result<Json<EvidenceAnswer>, ApiError> {
    let component: Component = super::parse_field("purl", &query.purl)?;
    let organisation = organisation_or_default(&state, query.organisation.as_deref())?;
    if state
        .snapshot
        .current()
        .organisation(&organisation)
        .is_none()
    {
        return Err(ApiError::not_found(format!("organisation {organisation}")));
    }
    let may_ask = may_ask_upstream(&state, caller.is_some());
    Ok(Json(
        gather(&state, &component, &organisation, may_ask).await,
    ))
}

/// `GET /api/v1/decisions`: the public decision log, newest first.
pub(crate) async fn decisions(
    State(state): State<AppState>,
    Query(filter): Query<DecisionLogFilter>,
) -> Result<Json<Vec<DecisionLogRow>>, ApiError> {
    // A filter that can never match is a mistake worth saying, not an empty list.
    if !filter.organisation.is_empty() {
        super::parse_field::<OrgCode>("organisation", &filter.organisation)?;
    }
    Ok(Json(decision_log(&state, &filter).await?))
}

/// `GET /api/v1/metrics`.
pub(crate) async fn metrics(State(state): State<AppState>) -> Result<Json<Metrics>, ApiError> {
    Ok(Json(compute_metrics(&state).await?))
}

/// Query of `GET /api/v1/audit`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct AuditQuery {
    #[serde(default)]
    after: i64,
    limit: Option<i64>,
}

/// `GET /api/v1/audit?after=N&limit=M`: auditors and national curators.
pub(crate) async fn audit(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Query(query): Query<AuditQuery>,
) -> Result<Json<Vec<AuditRecord>>, ApiError> {
    if !caller.may_read_audit() {
        return Err(ApiError::forbidden(format!(
            "the audit log is open to auditors and national curators; {} is {}",
            caller.name,
            caller.describe_roles()
        )));
    }
    Ok(Json(
        state
            .database
            .audit_page(query.after, query.limit.unwrap_or(1000))
            .await?,
    ))
}
