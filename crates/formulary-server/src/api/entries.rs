use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, NaiveDate, Utc};
use formulary_core::ecosystems::VersionRange;
use formulary_core::{Component, EntryDraft, OrgCode, Status, Waiver};
use formulary_store::{AuditRecord, EntryFilter, StoredEntry};
use serde::{Deserialize, Serialize};

use super::parse_field;
use crate::auth::Authenticated;
use crate::error::ApiError;
use crate::state::AppState;

/// An entry as the API and the CLI show it.
#[derive(Debug, Clone, Serialize)]
pub struct EntryView {
    /// Identifier.
    pub id: String,
    /// Whose formulary.
    pub organisation: OrgCode,
    /// The component's purl.
    pub component: String,
    /// The versions covered, in the ecosystem's syntax.
    pub range: String,
    /// The decision.
    pub status: Status,
    /// Conditions of use.
    pub constraints: Option<String>,
    /// When to look at it again.
    pub review_date: Option<NaiveDate>,
    /// When a pilot or exception ends.
    pub expires: Option<NaiveDate>,
    /// What it sets aside as an exception.
    pub waives: Vec<Waiver>,
    /// Who decided.
    pub decided_by: String,
    /// Why.
    pub reason: String,
    /// Who answers questions about the component.
    pub mentor: Option<String>,
    /// When it was recorded.
    pub created_at: DateTime<Utc>,
    /// Who recorded it.
    pub created_by: String,
    /// When it was removed, if it was.
    pub removed_at: Option<DateTime<Utc>>,
    /// Why it was removed.
    pub removal_reason: Option<String>,
}

impl From<&StoredEntry> for EntryView {
    fn from(stored: &StoredEntry) -> EntryView {
        let draft = &stored.entry.draft;
        EntryView {
            id: stored.entry.id.clone(),
            organisation: draft.organisation.clone(),
            component: draft.component.purl(),
            range: draft.range.as_str().to_owned(),
            status: draft.status,
            constraints: draft.constraints.clone(),
            review_date: draft.review_date,
            expires: draft.expires,
            waives: draft.waives.clone(),
            decided_by: draft.decided_by.clone(),
            reason: draft.reason.clone(),
            mentor: draft.mentor.clone(),
            created_at: stored.entry.created_at,
            created_by: stored.created_by.clone(),
            removed_at: stored.removal.as_ref().map(|removal| removal.at),
            removal_reason: stored
                .removal
                .as_ref()
                .map(|removal| removal.reason.clone()),
        }
    }
}

/// Filters of `GET /api/v1/entries`.
#[derive(Debug, Deserialize)]
pub(crate) struct ListQuery {
    organisation: Option<String>,
    component: Option<String>,
    #[serde(default)]
    include_removed: bool,
}

/// `GET /api/v1/entries`.
pub(crate) async fn list(
    State(state): State<AppState>,
    Query(query): Query<ListQuery>,
) -> Result<Json<Vec<EntryView>>, ApiError> {
    let filter = EntryFilter {
        organisation: query
            .organisation
            .as_deref()
            .map(|code| parse_field("organisation", code))
            .transpose()?,
        component: query
            .component
            .as_deref()
            .map(|purl| parse_field::<Component>("component", purl))
            .transpose()?,
        include_removed: query.include_removed,
    };
    let entries = state.database.list_entries(&filter).await?;
    Ok(Json(entries.iter().map(EntryView::from).collect()))
}

/// An entry with its history.
#[derive(Debug, Serialize)]
pub(crate) struct EntryWithHistory {
    #[serde(flatten)]
    entry: EntryView,
    history: Vec<AuditRecord>,
}

/// `GET /api/v1/entries/{id}`.
pub(crate) async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<EntryWithHistory>, ApiError> {
    let stored = state.database.entry(&id).await?;
    let history = state.database.audit_for_subject(&id).await?;
    Ok(Json(EntryWithHistory {
        entry: EntryView::from(&stored),
        history,
    }))
}

/// The body of `POST /api/v1/entries`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewEntry {
    organisation: Option<String>,
    component: String,
    #[serde(default)]
    range: Option<String>,
    status: String,
    constraints: Option<String>,
    review_date: Option<NaiveDate>,
    expires: Option<NaiveDate>,
    #[serde(default)]
    waives: Vec<String>,
    /// Refused when present: who decided is the authenticated caller (S10).
    decided_by: Option<String>,
    reason: String,
    mentor: Option<String>,
}

/// `POST /api/v1/entries`: national curators for the national formulary, organisation admins
/// for their own overlay.
pub(crate) async fn create(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Json(body): Json<NewEntry>,
) -> Result<(StatusCode, Json<EntryView>), ApiError> {
    let organisation: OrgCode = match &body.organisation {
        Some(code) => parse_field("organisation", code)?,
        None => OrgCode::national(),
    };
    if !caller.may_change_formulary(&organisation) {
        return Err(ApiError::forbidden(format!(
            "{} ({}) may not change {organisation}'s formulary",
            caller.name,
            caller.describe_roles()
        )));
    }
    if body.decided_by.is_some() {
        return Err(ApiError::bad_request(format!(
            "decided_by cannot be set through the API: the decision log names whoever the token belongs to ({}), so that it cannot name anyone else. Remove the field and send the entry again",
            caller.name
        )));
    }
    let component: Component = parse_field("component", &body.component)?;
    let range = VersionRange::parse(component.ecosystem(), body.range.as_deref().unwrap_or("*"))
        .map_err(|error| ApiError::bad_request(format!("range: {error}")))?;
    let waives = body
        .waives
        .iter()
        .map(|text| parse_field::<Waiver>("waives", text))
        .collect::<Result<Vec<_>, _>>()?;
    let draft = EntryDraft {
        organisation,
        component,
        range,
        status: parse_field("status", &body.status)?,
        constraints: body.constraints,
        review_date: body.review_date,
        expires: body.expires,
        waives,
        decided_by: caller.name.clone(),
        reason: body.reason,
        mentor: body.mentor,
    };
    let entry = state.database.add_entry(&draft, &caller.actor).await?;
    state.snapshot.refresh(&state.database).await?;
    let stored = state.database.entry(&entry.id).await?;
    Ok((StatusCode::CREATED, Json(EntryView::from(&stored))))
}

/// The body of `DELETE /api/v1/entries/{id}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Removal {
    reason: String,
}

/// `DELETE /api/v1/entries/{id}`: the entry stays in history, marked removed.
pub(crate) async fn remove(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
    Json(body): Json<Removal>,
) -> Result<Json<EntryView>, ApiError> {
    let stored = state.database.entry(&id).await?;
    let organisation = &stored.entry.draft.organisation;
    if !caller.may_change_formulary(organisation) {
        return Err(ApiError::forbidden(format!(
            "{} ({}) may not change {organisation}'s formulary",
            caller.name,
            caller.describe_roles()
        )));
    }
    let removed = state
        .database
        .remove_entry(&id, &caller.actor, &body.reason)
        .await?;
    state.snapshot.refresh(&state.database).await?;
    Ok(Json(EntryView::from(&removed)))
}
