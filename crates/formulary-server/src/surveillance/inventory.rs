//! Inventory reports and "who has version X?" over the API:
//!
//! - `PUT /api/v1/inventory/{org}/{environment}?kind=project` takes a CycloneDX or SPDX JSON
//!   SBOM, or `{"components": [purls]}` (what `formulary report` sends after reading a lockfile),
//!   from anyone holding a role in the organisation (people and CI service tokens alike).
//! - `GET /api/v1/who-has?purl=pkg:pypi/requests@2.19.1` answers from the ledger and the
//!   inventory, for auditors and national curators (everyone), and organisation admins (their
//!   organisation's people).

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::Json;
use formulary_core::inventory::read_report;
use formulary_core::{Component, OrgCode, Role};
use formulary_store::{Holder, NewReport};
use serde::{Deserialize, Serialize};

use crate::api::parse_field;
use crate::auth::Authenticated;
use crate::error::ApiError;
use crate::identity::Principal;
use crate::state::AppState;

/// Largest report body accepted.
pub(crate) const MAX_REPORT_BYTES: usize = 32 * 1024 * 1024;

/// Query of the report endpoint.
#[derive(Debug, Deserialize)]
pub(crate) struct ReportQuery {
    kind: Option<String>,
}

/// The answer to a report.
#[derive(Debug, Serialize)]
pub(crate) struct ReportAnswer {
    environment_id: String,
    organisation: String,
    environment: String,
    new_environment: bool,
    format: &'static str,
    components: usize,
    skipped: Vec<String>,
}

/// `PUT /api/v1/inventory/{org}/{environment}`.
pub(crate) async fn report(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path((organisation, environment)): Path<(String, String)>,
    Query(query): Query<ReportQuery>,
    body: Bytes,
) -> Result<Json<ReportAnswer>, ApiError> {
    let organisation: OrgCode = parse_field("organisation", &organisation)?;
    let member = caller.memberships.iter().any(|membership| {
        membership.organisation == organisation || membership.organisation.is_national()
    });
    if !member {
        return Err(ApiError::forbidden(format!(
            "you hold no role in {organisation}, so you cannot report its environments; use a token of that organisation"
        )));
    }
    let document: serde_json::Value = serde_json::from_slice(&body).map_err(|error| {
        ApiError::bad_request(format!(
            "the body is not JSON ({error}); send a CycloneDX or SPDX JSON SBOM, or {{\"components\": [purls]}}. For lockfiles, use `formulary report`, which reads them"
        ))
    })?;
    let reported = read_report(&document).map_err(ApiError::bad_request)?;
    let kind = query.kind.unwrap_or_else(|| "project".to_owned());
    let outcome = state
        .database
        .record_report(
            &NewReport {
                organisation: organisation.clone(),
                environment: environment.clone(),
                kind,
                reported_by: caller.actor.clone(),
                reported_by_name: caller.name.clone(),
                format: reported.format.to_owned(),
                components: reported.components,
            },
            &caller.actor,
        )
        .await?;
    Ok(Json(ReportAnswer {
        environment_id: outcome.environment_id,
        organisation: organisation.to_string(),
        environment,
        new_environment: outcome.new_environment,
        format: reported.format,
        components: outcome.components,
        skipped: reported.skipped.into_iter().take(100).collect(),
    }))
}

/// Query of `who-has`.
#[derive(Debug, Deserialize)]
pub(crate) struct WhoHasQuery {
    purl: String,
}

/// The answer to "who has …?".
#[derive(Debug, Serialize)]
pub(crate) struct WhoHasAnswer {
    /// The component asked about.
    pub(crate) component: String,
    /// The version asked about, if one was.
    pub(crate) version: Option<String>,
    /// Distinct people (and anonymous clients) among the holders.
    pub(crate) people: usize,
    /// Distinct organisations among the holders.
    pub(crate) organisations: usize,
    /// Every holder, most recent first.
    pub(crate) holders: Vec<Holder>,
    /// Set when the answer is limited to some organisations.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) limited_to: Option<Vec<String>>,
}

/// Splits `pkg:TYPE/NAME[@VERSION]`.
pub(crate) fn component_and_version(purl: &str) -> Result<(Component, Option<String>), ApiError> {
    let purl = purl.trim();
    if let Ok(component) = purl.parse::<Component>() {
        return Ok((component, None));
    }
    let versioned: formulary_core::ComponentVersion = parse_field("purl", purl)?;
    Ok((versioned.component, Some(versioned.version.to_string())))
}

/// The organisations a caller may see the holders of: `None` for everyone.
pub(crate) fn visible_organisations(caller: &Principal) -> Result<Option<Vec<OrgCode>>, ApiError> {
    if caller.has_role(Role::Auditor) || caller.holds(Role::NationalCurator, &OrgCode::national()) {
        return Ok(None);
    }
    let administered: Vec<OrgCode> = caller
        .memberships
        .iter()
        .filter(|membership| membership.role == Role::OrganisationAdmin)
        .map(|membership| membership.organisation.clone())
        .collect();
    if administered.is_empty() {
        return Err(ApiError::forbidden(
            "who has a version is shown to auditors, national curators and organisation admins (for their organisation); ask one of them",
        ));
    }
    Ok(Some(administered))
}

/// Answers "who has …?" within what `visible` allows.
pub(crate) async fn answer(
    state: &AppState,
    purl: &str,
    visible: Option<Vec<OrgCode>>,
) -> Result<WhoHasAnswer, ApiError> {
    let (component, version) = component_and_version(purl)?;
    let mut holders = state
        .database
        .who_has(&component, version.as_deref())
        .await?;
    if let Some(visible) = &visible {
        holders.retain(|holder| {
            visible
                .iter()
                .any(|code| code.as_str() == holder.organisation)
        });
    }
    let mut people: Vec<(&str, &str)> = holders
        .iter()
        .map(|holder| (holder.person.as_str(), holder.person_name.as_str()))
        .collect();
    people.sort_unstable();
    people.dedup();
    let mut organisations: Vec<&str> = holders
        .iter()
        .map(|holder| holder.organisation.as_str())
        .collect();
    organisations.sort_unstable();
    organisations.dedup();
    Ok(WhoHasAnswer {
        component: component.purl(),
        version,
        people: people.len(),
        organisations: organisations.len(),
        limited_to: visible.map(|codes| codes.iter().map(ToString::to_string).collect()),
        holders,
    })
}

/// `GET /api/v1/who-has?purl=…`.
pub(crate) async fn who_has(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Query(query): Query<WhoHasQuery>,
) -> Result<Json<WhoHasAnswer>, ApiError> {
    let visible = visible_organisations(&caller)?;
    Ok(Json(answer(&state, &query.purl, visible).await?))
}
