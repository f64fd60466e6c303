//! Recalls over the API and on a page:
//!
//! - `GET /api/v1/recalls` and `GET /api/v1/recalls/{id}` (progress: told, resolved, still
//!   exposed; `?format=csv` exports the people) for those who may see who has what;
//! - `GET /api/v1/me/recalls`: the caller's own open recalls (the in-app notice);
//! - `POST /api/v1/me/recalls/{id}/explain` `{"explanation": "…"}`: the caller says why they stay;
//! - `/recalls/{id}`: the recall page (a person on the recall sees their own part).

use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use formulary_store::{RecallPerson, RecallSummary};
use maud::html;
use serde::{Deserialize, Serialize};

use super::inventory::visible_organisations;
use crate::auth::Authenticated;
use crate::error::ApiError;
use crate::state::AppState;
use crate::web::page;
use crate::web::session::Viewer;
use crate::web::WebError;

/// A recall and its people.
#[derive(Debug, Serialize)]
pub(crate) struct RecallAnswer {
    recall: RecallSummary,
    people: Vec<RecallPerson>,
}

/// `GET /api/v1/recalls`.
pub(crate) async fn list(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
) -> Result<Json<Vec<RecallSummary>>, ApiError> {
    visible_organisations(&caller)?;
    state.database.resolve_recalls().await?;
    Ok(Json(state.database.recalls().await?))
}

/// `GET /api/v1/metrics/surveillance`: patch latency per recall, the share of recalls closed
/// within 14 days, and open exposure by severity and age.
pub(crate) async fn metrics(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
) -> Result<Json<formulary_store::SurveillanceMetrics>, ApiError> {
    visible_organisations(&caller)?;
    state.database.resolve_recalls().await?;
    Ok(Json(
        state
            .database
            .surveillance_metrics(chrono::Utc::now())
            .await?,
    ))
}

/// Query of one recall.
#[derive(Debug, Deserialize)]
pub(crate) struct RecallQuery {
    format: Option<String>,
}

/// `GET /api/v1/recalls/{id}` (JSON, or CSV with `?format=csv`).
pub(crate) async fn show(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
    Query(query): Query<RecallQuery>,
) -> Result<Response, ApiError> {
    let visible = visible_organisations(&caller)?;
    state.database.resolve_recalls().await?;
    let (recall, mut people) = state.database.recall(&id).await?.ok_or_else(|| {
        ApiError::not_found("no recall has this id; list them with GET /api/v1/recalls")
    })?;
    if let Some(visible) = &visible {
        people.retain(|person| {
            visible
                .iter()
                .any(|code| code.as_str() == person.organisation)
        });
    }
    if query.format.as_deref() == Some("csv") {
        return Ok((
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            csv(&people),
        )
            .into_response());
    }
    Ok(Json(RecallAnswer { recall, people }).into_response())
}

/// The people of a recall as CSV; cells that a spreadsheet would run as formulas are prefixed.
fn csv(people: &[RecallPerson]) -> String {
    let cell = |text: &str| {
        let text = if text.starts_with(['=', '+', '-', '@']) {
            format!("'{text}")
        } else {
            text.to_owned()
        };
        format!("\"{}\"", text.replace('"', "\"\""))
    };
    let mut out = String::from(
        "person,name,organisation,environment,version,via,told,resolved,resolution,explanation\n",
    );
    for person in people {
        let fields = [
            cell(&person.person),
            cell(&person.person_name),
            cell(&person.organisation),
            cell(&person.environment),
            cell(&person.version),
            cell(&person.via),
            person.notified_at.to_rfc3339(),
            person
                .resolved_at
                .map(|at| at.to_rfc3339())
                .unwrap_or_default(),
            cell(person.resolution.as_deref().unwrap_or_default()),
            cell(person.explanation.as_deref().unwrap_or_default()),
        ];
        out.push_str(&fields.join(","));
        out.push('\n');
    }
    out
}

/// One of the caller's recalls.
#[derive(Debug, Serialize)]
pub(crate) struct MyRecall {
    recall: RecallSummary,
    /// What the caller has, where.
    mine: RecallPerson,
}

/// `GET /api/v1/me/recalls`: what the caller must move off.
pub(crate) async fn mine(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
) -> Result<Json<Vec<MyRecall>>, ApiError> {
    state.database.resolve_recalls().await?;
    let found = state.database.recalls_for(&caller.actor).await?;
    Ok(Json(
        found
            .into_iter()
            .map(|(recall, mine)| MyRecall { recall, mine })
            .collect(),
    ))
}

/// Body of an explanation.
#[derive(Debug, Deserialize)]
pub(crate) struct Explanation {
    explanation: String,
}

/// `POST /api/v1/me/recalls/{id}/explain`.
pub(crate) async fn explain(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
    Json(body): Json<Explanation>,
) -> Result<Json<serde_json::Value>, ApiError> {
    if body.explanation.trim().len() < 10 {
        return Err(ApiError::bad_request(
            "say why you stay on the recalled version, in at least 10 characters (for example, the exception the risk owner signed)",
        ));
    }
    let changed = state
        .database
        .explain_recall(&id, &caller.actor, &body.explanation)
        .await?;
    if changed == 0 {
        return Err(ApiError::not_found(
            "you have no open part in this recall; see yours with GET /api/v1/me/recalls",
        ));
    }
    Ok(Json(
        serde_json::json!({ "recall": id, "resolved": changed }),
    ))
}

/// `/recalls/{id}`: the recall page, for those who may see who has what.
pub(crate) async fn page(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    let Some(principal) = viewer.principal.clone() else {
        return Err(ApiError::unauthenticated().into());
    };
    // Those who may see who has what see everyone (in their organisations); a person on the
    // recall (the link in their notice leads here) sees their own part only.
    let visible = visible_organisations(&principal);
    state.database.resolve_recalls().await?;
    let (recall, mut people) = state
        .database
        .recall(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("no recall has this id"))?;
    match visible {
        Ok(None) => {}
        Ok(Some(visible)) => people.retain(|person| {
            visible
                .iter()
                .any(|code| code.as_str() == person.organisation)
                || person.person == principal.actor
        }),
        Err(refusal) => {
            people.retain(|person| person.person == principal.actor);
            if people.is_empty() {
                return Err(refusal.into());
            }
        }
    }
    let title = format!("Recall of {}", recall.component);
    let content = html! {
        h1 { (title) }
        p class="nhsuk-body-l" { (recall.reason) }
        dl class="nhsuk-summary-list" {
            div class="nhsuk-summary-list__row" { dt class="nhsuk-summary-list__key" { "Versions recalled" } dd class="nhsuk-summary-list__value" { (recall.versions.join(", ")) } }
            div class="nhsuk-summary-list__row" { dt class="nhsuk-summary-list__key" { "Move to" } dd class="nhsuk-summary-list__value" { (recall.move_to.clone().unwrap_or_else(|| "no allowed version is known yet: ask for an alternative".to_owned())) } }
            div class="nhsuk-summary-list__row" { dt class="nhsuk-summary-list__key" { "Opened" } dd class="nhsuk-summary-list__value" { (page::when(recall.opened_at)) " by " (recall.opened_by) } }
            div class="nhsuk-summary-list__row" { dt class="nhsuk-summary-list__key" { "Progress" } dd class="nhsuk-summary-list__value" { (recall.told) " told, " (recall.resolved) " moved or explained, " strong { (recall.exposed) " still exposed" } } }
        }
        p { a href={ "/api/v1/recalls/" (recall.id) "?format=csv" } { "Export the people as CSV" } }
        table class="nhsuk-table" {
            caption class="nhsuk-table__caption" { "People and environments" }
            thead class="nhsuk-table__head" { tr {
                th scope="col" { "Who" } th scope="col" { "Organisation" } th scope="col" { "Where" }
                th scope="col" { "Version" } th scope="col" { "Status" }
            } }
            tbody class="nhsuk-table__body" {
                @for person in &people {
                    tr class="nhsuk-table__row" {
                        td class="nhsuk-table__cell" { (person.person_name) }
                        td class="nhsuk-table__cell" { (person.organisation) }
                        td class="nhsuk-table__cell" { @if person.environment.is_empty() { "downloaded through the gateway" } @else { "reported: " (person.environment) } }
                        td class="nhsuk-table__cell" { (person.version) }
                        td class="nhsuk-table__cell" {
                            @match &person.resolution {
                                Some(resolution) => { (resolution) @if let Some(explanation) = &person.explanation { ": " (explanation) } }
                                None => { strong { "exposed" } }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(page::render(&viewer, page::Section::Metrics, &title, false, content).into_response())
}
