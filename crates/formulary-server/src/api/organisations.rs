use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use formulary_core::ecosystems::Ecosystem;
use formulary_core::{EcosystemSettings, OrgCode, Organisation};
use serde::Deserialize;

use super::parse_field;
use crate::auth::Authenticated;
use crate::error::ApiError;
use crate::state::AppState;

/// `GET /api/v1/organisations`.
pub(crate) async fn list(
    State(state): State<AppState>,
) -> Result<Json<Vec<Organisation>>, ApiError> {
    Ok(Json(state.database.organisations().await?))
}

/// The body of `POST /api/v1/organisations`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewOrganisation {
    code: String,
    name: String,
}

/// `POST /api/v1/organisations`: national curators only.
pub(crate) async fn create(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Json(body): Json<NewOrganisation>,
) -> Result<(StatusCode, Json<Organisation>), ApiError> {
    if !caller.may_manage_organisations() {
        return Err(ApiError::forbidden(format!(
            "only a national curator may add organisations; {} is {}",
            caller.name,
            caller.describe_roles()
        )));
    }
    let organisation = Organisation {
        code: parse_field("code", &body.code)?,
        name: body.name,
    };
    state
        .database
        .add_organisation(&organisation, &caller.actor)
        .await?;
    state.snapshot.refresh(&state.database).await?;
    Ok((StatusCode::CREATED, Json(organisation)))
}

/// `GET /api/v1/organisations/{code}/settings`: the settings in force for every ecosystem.
pub(crate) async fn settings(
    State(state): State<AppState>,
    Path(code): Path<String>,
) -> Result<Json<BTreeMap<Ecosystem, EcosystemSettings>>, ApiError> {
    let code: OrgCode = parse_field("organisation", &code)?;
    let snapshot = state.snapshot.current();
    if snapshot.organisation(&code).is_none() {
        return Err(ApiError::not_found(format!("organisation {code}")));
    }
    Ok(Json(
        Ecosystem::ALL
            .into_iter()
            .map(|ecosystem| (ecosystem, snapshot.settings_for(&code, ecosystem)))
            .collect(),
    ))
}

/// `PUT /api/v1/organisations/{code}/settings/{ecosystem}`.
pub(crate) async fn set_settings(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path((code, ecosystem)): Path<(String, String)>,
    Json(settings): Json<EcosystemSettings>,
) -> Result<Json<EcosystemSettings>, ApiError> {
    let code: OrgCode = parse_field("organisation", &code)?;
    let ecosystem: Ecosystem =
        ecosystem
            .parse()
            .map_err(|error: formulary_core::ecosystems::EcosystemError| {
                ApiError::bad_request(error.to_string())
            })?;
    if !caller.may_change_formulary(&code) {
        return Err(ApiError::forbidden(format!(
            "{} ({}) may not change {code}'s settings",
            caller.name,
            caller.describe_roles()
        )));
    }
    state
        .database
        .set_ecosystem_settings(&code, ecosystem, &settings, &caller.actor)
        .await?;
    state.snapshot.refresh(&state.database).await?;
    Ok(Json(settings))
}

fn administered_code(caller: &crate::identity::Principal, code: &str) -> Result<OrgCode, ApiError> {
    let code: OrgCode = parse_field("organisation", code)?;
    if !caller.may_change_formulary(&code) {
        return Err(ApiError::forbidden(format!(
            "{} ({}) does not administer {code}",
            caller.name,
            caller.describe_roles()
        )));
    }
    Ok(code)
}

/// `GET /api/v1/organisations/{code}/review-policy`: its administrators, national curators,
/// and anyone who reviews or decides there.
pub(crate) async fn review_policy(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(code): Path<String>,
) -> Result<Json<formulary_core::request::ReviewPolicy>, ApiError> {
    let code: OrgCode = parse_field("organisation", &code)?;
    let involved = caller.may_change_formulary(&code)
        || caller.memberships.iter().any(|membership| {
            membership.organisation == code || membership.organisation.is_national()
        });
    if !involved {
        return Err(ApiError::forbidden(format!(
            "{} ({}) has no role in {code}",
            caller.name,
            caller.describe_roles()
        )));
    }
    Ok(Json(state.database.review_policy(&code).await?))
}

/// `PUT /api/v1/organisations/{code}/review-policy`: its administrators and national curators.
pub(crate) async fn set_review_policy(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(code): Path<String>,
    Json(policy): Json<formulary_core::request::ReviewPolicy>,
) -> Result<Json<formulary_core::request::ReviewPolicy>, ApiError> {
    let code = administered_code(&caller, &code)?;
    state
        .database
        .set_review_policy(&code, &policy, &caller.actor)
        .await?;
    Ok(Json(policy))
}
