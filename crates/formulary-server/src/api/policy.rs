use axum::extract::{Query, State};
use axum::Json;
use chrono::Utc;
use formulary_core::policy::{evaluate_version, Decision, View};
use formulary_core::{ComponentVersion, OrgCode};
use serde::Deserialize;

use super::parse_field;
use crate::error::ApiError;
use crate::state::AppState;

/// Query of `GET /api/v1/policy/check`.
#[derive(Debug, Deserialize)]
pub(crate) struct CheckQuery {
    purl: String,
    organisation: Option<String>,
}

/// `GET /api/v1/policy/check?purl=pkg:pypi/requests@2.19.1&organisation=RJ1`: the decision
/// with every reason, the same as `formulary policy check` gives (CRAN dependencies included).
pub(crate) async fn check(
    State(state): State<AppState>,
    Query(query): Query<CheckQuery>,
) -> Result<Json<Decision>, ApiError> {
    let wanted: ComponentVersion = parse_field("purl", &query.purl)?;
    let organisation: OrgCode = match &query.organisation {
        Some(code) => parse_field("organisation", code)?,
        None => OrgCode::national(),
    };
    let snapshot = state.snapshot.current();
    if snapshot.organisation(&organisation).is_none() {
        return Err(ApiError::not_found(format!("organisation {organisation}")));
    }
    let releases = state.database.releases_of(&wanted.component).await?;
    let view = View {
        organisation,
        at: Utc::now(),
    };
    let mut decisions = [evaluate_version(
        &snapshot,
        &view,
        &wanted.component,
        &wanted.version,
        &releases,
    )];
    // CRAN versions are decided as the gateway and `formulary policy check` decide them: with
    // the source tree's evidence and the packages they need at install time.
    formulary_gateway::explain_cran_dependencies(&state.database, &snapshot, &view, &mut decisions)
        .await
        .map_err(|error| {
            tracing::warn!(%error, "could not check CRAN dependencies");
            ApiError::new(
                axum::http::StatusCode::BAD_GATEWAY,
                "Dependencies could not be checked",
                error.to_string(),
            )
        })?;
    let [decision] = decisions;
    Ok(Json(decision))
}
