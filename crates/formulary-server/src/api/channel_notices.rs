//! `/api/v1/organisations/{code}/channel-notices`: the notices an organisation's conda users
//! read in `notices.json` (CEP-6), for scripts: list them, write one, withdraw one. The same
//! rules as the administration page ([`crate::channel_notices`]): national curators for every
//! organisation (`NATIONAL` for every view), organisation admins for their own; audited.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::NaiveDate;
use serde::Deserialize;

use crate::auth::Authenticated;
use crate::channel_notices::{check, own_notice, NoticeView};
use crate::error::ApiError;
use crate::people::administered_organisation;
use crate::state::AppState;

/// `GET /api/v1/organisations/{code}/channel-notices`: every notice of the organisation,
/// withdrawn and expired ones too, newest first.
pub(crate) async fn list(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(code): Path<String>,
) -> Result<Json<Vec<NoticeView>>, ApiError> {
    let organisation = administered_organisation(&state, &caller, &code).await?;
    let mut notices = state
        .database
        .channel_notices_of(std::slice::from_ref(&organisation.code))
        .await?;
    notices.reverse();
    Ok(Json(notices.into_iter().map(NoticeView::from).collect()))
}

/// The body of `POST /api/v1/organisations/{code}/channel-notices`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewNotice {
    message: String,
    level: String,
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    expires: Option<NaiveDate>,
}

/// `POST /api/v1/organisations/{code}/channel-notices`: 201 with the notice; 400 naming every
/// field that is wrong.
pub(crate) async fn create(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(code): Path<String>,
    Json(body): Json<NewNotice>,
) -> Result<(StatusCode, Json<NoticeView>), ApiError> {
    let organisation = administered_organisation(&state, &caller, &code).await?;
    let draft = check(
        &state,
        &organisation,
        body.channel.as_deref().unwrap_or(""),
        &body.level,
        &body.message,
        body.expires,
    )
    .map_err(|errors| {
        ApiError::bad_request(
            errors
                .iter()
                .map(|error| format!("{}: {}", error.field, error.message))
                .collect::<Vec<_>>()
                .join("; "),
        )
    })?;
    let notice = state
        .database
        .add_channel_notice(&draft, &caller.actor)
        .await?;
    // The audit row moved the change counter: rebuild now, so the local copy (kept with the
    // snapshot) is current at once rather than at the next poll.
    state.snapshot.refresh(&state.database).await?;
    Ok((StatusCode::CREATED, Json(NoticeView::from(notice))))
}

/// `DELETE /api/v1/organisations/{code}/channel-notices/{id}`: withdraws it at once (it stays
/// listed, withdrawn); 409 when it already was.
pub(crate) async fn withdraw(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path((code, id)): Path<(String, String)>,
) -> Result<Json<NoticeView>, ApiError> {
    let organisation = administered_organisation(&state, &caller, &code).await?;
    let notice = own_notice(&state, &organisation, &id).await?;
    let withdrawn = state
        .database
        .withdraw_channel_notice(&notice.id, &caller.actor)
        .await?;
    // The audit row moved the change counter: rebuild now, so the local copy (kept with the
    // snapshot) is current at once rather than at the next poll.
    state.snapshot.refresh(&state.database).await?;
    Ok(Json(NoticeView::from(withdrawn)))
}
