//! Requests, sign-offs, decisions and comments over JSON, for `formulary request` and
//! `formulary status`, scripts and service accounts. The same rules as the web pages apply
//! ([`crate::workflow`]).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use formulary_core::request::{DataClass, RequestForm, RequestState};
use formulary_store::{RecordedDecision, RequestEvent, RequestFilter, StoredRequest, UserRef};
use serde::{Deserialize, Serialize};

use crate::auth::Authenticated;
use crate::error::ApiError;
use crate::state::AppState;
use crate::workflow::{self, DecisionForm, SignOffForm};

/// A request as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct RequestView {
    /// Its number.
    pub id: i64,
    /// `pkg:…` purl of the tool.
    pub component: String,
    /// Versions asked for.
    pub range: String,
    /// For which organisation.
    pub organisation: String,
    /// Problem and scope.
    pub problem: String,
    /// Data involved.
    pub data_class: DataClass,
    /// Where it will run.
    pub environment: String,
    /// Alternatives considered.
    pub alternatives: String,
    /// Number of users.
    pub users: u32,
    /// Credentials or APIs needed.
    pub credentials: String,
    /// Where it stands.
    pub state: RequestState,
    /// Who asked.
    pub requester: UserRef,
    /// When.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// When decided or withdrawn.
    pub decided_at: Option<DateTime<Utc>>,
    /// The decision.
    pub decision: Option<RecordedDecision>,
    /// Where to see it in a browser.
    pub url: String,
    /// The timeline, when a single request is shown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<RequestEvent>>,
    /// Review progress, in the review queue and when a single request is shown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub review: Option<ReviewProgress>,
}

/// Where a request's review stands: the stages an approval still needs, who has each, and
/// whether an approver can decide it now.
#[derive(Debug, Clone, Serialize)]
pub struct ReviewProgress {
    /// Stages still needed, each with its assignee's name when it is claimed or assigned.
    pub outstanding: Vec<OutstandingStage>,
    /// Every needed stage is signed off.
    pub ready_to_decide: bool,
}

/// A stage an approval still needs.
#[derive(Debug, Clone, Serialize)]
pub struct OutstandingStage {
    /// The stage.
    pub stage: formulary_core::request::ReviewStage,
    /// Who it is assigned to, if anyone.
    pub assigned_to: Option<String>,
}

impl From<&crate::review::QueueItem> for ReviewProgress {
    fn from(item: &crate::review::QueueItem) -> ReviewProgress {
        ReviewProgress {
            outstanding: item
                .outstanding
                .iter()
                .map(|(stage, who)| OutstandingStage {
                    stage: *stage,
                    assigned_to: who.clone(),
                })
                .collect(),
            ready_to_decide: item.ready_to_decide,
        }
    }
}

impl RequestView {
    /// The view of a stored request.
    pub fn of(request: &StoredRequest, events: Option<Vec<RequestEvent>>) -> RequestView {
        RequestView {
            id: request.id,
            component: request.draft.component.purl(),
            range: request.draft.range.as_str().to_owned(),
            organisation: request.draft.organisation.to_string(),
            problem: request.draft.problem.clone(),
            data_class: request.draft.data_class,
            environment: request.draft.environment.clone(),
            alternatives: request.draft.alternatives.clone(),
            users: request.draft.users,
            credentials: request.draft.credentials.clone(),
            state: request.state,
            requester: request.requester.clone(),
            created_at: request.created_at,
            updated_at: request.updated_at,
            decided_at: request.decided_at,
            decision: request.decision.clone(),
            url: format!("/requests/{}", request.id),
            events,
            review: None,
        }
    }
}

/// Query of `GET /api/v1/requests`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ListQuery {
    /// `mine` (default) or `queue` (open requests the caller may review or decide).
    scope: Option<String>,
}

/// `GET /api/v1/requests`.
pub(crate) async fn list(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Query(query): Query<ListQuery>,
) -> Result<Json<Vec<RequestView>>, ApiError> {
    let requests = match query.scope.as_deref().unwrap_or("mine") {
        "mine" => {
            state
                .database
                .requests(&RequestFilter {
                    requester: Some(caller.id.clone()),
                    ..RequestFilter::default()
                })
                .await?
        }
        "queue" => {
            let queue = crate::review::queue(&state, &caller).await?;
            return Ok(Json(
                queue
                    .iter()
                    .map(|item| {
                        let mut view = RequestView::of(&item.request, None);
                        view.review = Some(ReviewProgress::from(item));
                        view
                    })
                    .collect(),
            ));
        }
        other => {
            return Err(ApiError::bad_request(format!(
                "scope '{}' is unknown; use mine or queue",
                other.escape_debug()
            )))
        }
    };
    Ok(Json(
        requests
            .iter()
            .map(|request| RequestView::of(request, None))
            .collect(),
    ))
}

/// `POST /api/v1/requests`.
pub(crate) async fn create(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Json(form): Json<RequestForm>,
) -> Result<(StatusCode, Json<RequestView>), ApiError> {
    let request = workflow::submit(&state, &caller, &form).await?;
    Ok((StatusCode::CREATED, Json(RequestView::of(&request, None))))
}

/// `GET /api/v1/requests/{id}`.
pub(crate) async fn show(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<i64>,
) -> Result<Json<RequestView>, ApiError> {
    let record = workflow::load(&state, &caller, id).await?;
    let facts = record.facts();
    let progress = ReviewProgress {
        outstanding: facts
            .stages_missing_for_approval()
            .into_iter()
            .map(|stage| OutstandingStage {
                stage,
                assigned_to: facts
                    .assignments
                    .iter()
                    .find(|assignment| assignment.stage == stage)
                    .map(|assignment| assignment.user_name.clone()),
            })
            .collect(),
        ready_to_decide: facts.ready_to_decide(),
    };
    let mut view = RequestView::of(&record.request, Some(record.events));
    view.review = Some(progress);
    Ok(Json(view))
}

/// Body of `POST /api/v1/requests/{id}/comments`.
#[derive(Debug, Deserialize)]
pub(crate) struct CommentBody {
    body: String,
}

/// `POST /api/v1/requests/{id}/comments`.
pub(crate) async fn comment(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<i64>,
    Json(body): Json<CommentBody>,
) -> Result<Json<RequestView>, ApiError> {
    workflow::comment(&state, &caller, id, &body.body).await?;
    show(State(state), Authenticated(caller), Path(id)).await
}

/// `POST /api/v1/requests/{id}/sign-offs`.
pub(crate) async fn sign_off(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<i64>,
    Json(form): Json<SignOffForm>,
) -> Result<Json<RequestView>, ApiError> {
    workflow::sign_off(&state, &caller, id, &form).await?;
    show(State(state), Authenticated(caller), Path(id)).await
}

/// `POST /api/v1/requests/{id}/decision`.
pub(crate) async fn decide(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<i64>,
    Json(form): Json<DecisionForm>,
) -> Result<Json<RequestView>, ApiError> {
    workflow::decide(&state, &caller, id, &form).await?;
    show(State(state), Authenticated(caller), Path(id)).await
}

/// Body of `POST /api/v1/requests/{id}/withdraw`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct WithdrawBody {
    #[serde(default)]
    note: String,
}

/// `POST /api/v1/requests/{id}/withdraw`.
pub(crate) async fn withdraw(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<i64>,
    Json(body): Json<WithdrawBody>,
) -> Result<Json<RequestView>, ApiError> {
    workflow::withdraw(&state, &caller, id, &body.note).await?;
    show(State(state), Authenticated(caller), Path(id)).await
}

/// `POST /api/v1/requests/{id}/assignments`: claim a review stage (`{"stage": "security"}`)
/// or assign it (`{"stage": "security", "assignee": "username"}`; approvers and admins).
pub(crate) async fn assign(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<i64>,
    Json(form): Json<crate::review::AssignForm>,
) -> Result<Json<RequestView>, ApiError> {
    crate::review::assign(&state, &caller, id, &form).await?;
    show(State(state), Authenticated(caller), Path(id)).await
}
