use axum::extract::{Query, State};
use axum::Json;
use formulary_core::Component;
use formulary_store::AdvisorySummary;
use serde::Deserialize;

use super::parse_field;
use crate::error::ApiError;
use crate::state::AppState;

/// Query of `GET /api/v1/advisories`.
#[derive(Debug, Deserialize)]
pub(crate) struct AdvisoryQuery {
    component: String,
}

/// `GET /api/v1/advisories?component=pkg:pypi/requests`: every advisory about a component.
pub(crate) async fn list(
    State(state): State<AppState>,
    Query(query): Query<AdvisoryQuery>,
) -> Result<Json<Vec<AdvisorySummary>>, ApiError> {
    let component: Component = parse_field("component", &query.component)?;
    Ok(Json(state.database.advisories_for(&component).await?))
}
