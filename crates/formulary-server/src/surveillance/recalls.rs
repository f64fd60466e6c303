//! Recalls over the API and on a page:
//!
//! - `GET /api/v1/recalls` and `GET /api/v1/recalls/{id}` (progress: told, resolved, still
//!   exposed; `?format=csv` exports the people) for those who may see who has what;
//! - `GET /api/v1/me/recalls`: the caller's own open recalls (the in-app notice);
//! - `POST /api/v1/me/recalls/{id}/explain` `{"explanation": "…", "until": "YYYY-MM-DD"}`: the
//!   caller says why they stay, and optionally until when;
//! - `/recalls/{id}`: the recall page ([`super::recall_page`]).

use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use formulary_store::{RecallPerson, RecallSummary};
use serde::{Deserialize, Serialize};

use super::inventory::visible_organisations;
use super::recall_page::check_explanation;
use crate::auth::Authenticated;
use crate::error::ApiError;
use crate::state::AppState;

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
    /// The day the caller stays until (`YYYY-MM-DD`), if they know it.
    #[serde(default)]
    until: Option<String>,
}

/// `POST /api/v1/me/recalls/{id}/explain`.
pub(crate) async fn explain(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
    Json(body): Json<Explanation>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let today = chrono::Utc::now().date_naive();
    let (explanation, until) = check_explanation(&body.explanation, body.until.as_deref(), today)
        .map_err(|errors| {
        ApiError::bad_request(
            errors
                .iter()
                .map(|error| format!("{}: {}", error.field, error.message))
                .collect::<Vec<_>>()
                .join("; "),
        )
    })?;
    let changed = state
        .database
        .explain_recall(&id, &caller.actor, &explanation, until)
        .await?;
    if changed == 0 {
        return Err(ApiError::not_found(
            "you have no open part in this recall; see yours with GET /api/v1/me/recalls",
        ));
    }
    Ok(Json(
        serde_json::json!({ "recall": id, "resolved": changed, "until": until }),
    ))
}
