//! The request workflow as the server runs it: check the input, check who may act
//! ([`formulary_core::request::workflow`]), write the step (with its audit row), and refresh the
//! policy snapshot when a decision changed the formulary. The web pages and the JSON API both
//! call these functions, so the rules are enforced in one place.

use crate::notices::{self, RequestNotice};
use axum::http::StatusCode;
use chrono::{Days, NaiveDate, Utc};
use formulary_core::request::workflow::{
    may_comment, may_decide, may_sign_off, may_submit, may_withdraw, DecisionScope, Refusal,
    RequestFacts, SignedStage,
};
use formulary_core::request::{
    FieldError, Outcome, RequestDraft, RequestForm, RequestState, ReviewStage, SignOffVerdict,
    MAX_FIELD_CHARS,
};
use formulary_core::{EntryDraft, Role, Status};
use formulary_store::{DecisionRecord, EventKind, Grant, RequestEvent, StoredRequest};
use serde::Deserialize;

use crate::error::ApiError;
use crate::identity::Principal;
use crate::state::AppState;

/// How long a pilot runs when the approver gives no end date.
const DEFAULT_PILOT_DAYS: u64 = 90;
/// When an approval is looked at again when the approver gives no review date.
const DEFAULT_REVIEW_DAYS: u64 = 365;

/// Why a workflow step did not happen.
#[derive(Debug)]
pub enum WorkflowError {
    /// The input has problems, each against its field (shown in an error summary).
    Invalid(Vec<FieldError>),
    /// The step is not allowed for this person or in this state.
    Refused(Refusal),
    /// Anything else (not found, storage).
    Failed(ApiError),
}

impl From<ApiError> for WorkflowError {
    fn from(error: ApiError) -> WorkflowError {
        WorkflowError::Failed(error)
    }
}

impl From<formulary_store::StoreError> for WorkflowError {
    fn from(error: formulary_store::StoreError) -> WorkflowError {
        WorkflowError::Failed(error.into())
    }
}

impl From<WorkflowError> for ApiError {
    fn from(error: WorkflowError) -> ApiError {
        match error {
            WorkflowError::Invalid(errors) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "The input is not valid",
                errors
                    .iter()
                    .map(|error| format!("{}: {}", error.field, error.message))
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
            WorkflowError::Refused(Refusal::NotPermitted(why)) => ApiError::forbidden(why),
            WorkflowError::Refused(Refusal::WrongState(why)) => {
                ApiError::new(StatusCode::CONFLICT, "Not possible now", why)
            }
            WorkflowError::Failed(error) => error,
        }
    }
}

fn single(field: &'static str, message: impl Into<String>) -> WorkflowError {
    WorkflowError::Invalid(vec![FieldError::new(field, message)])
}

/// A request with its timeline, and the facts the rules need.
#[derive(Debug, Clone)]
pub struct RequestRecord {
    /// The request.
    pub request: StoredRequest,
    /// Its timeline, oldest first.
    pub events: Vec<RequestEvent>,
    /// Its organisation's review policy.
    pub policy: formulary_core::request::ReviewPolicy,
    /// Stages claimed by or assigned to someone.
    pub assignments: Vec<formulary_core::request::Assignment>,
}

impl RequestRecord {
    /// What the workflow rules need to know.
    pub fn facts(&self) -> RequestFacts {
        RequestFacts {
            organisation: self.request.draft.organisation.clone(),
            requester: self.request.requester.id.clone(),
            state: self.request.state,
            data_class: self.request.draft.data_class,
            signed: self
                .events
                .iter()
                .filter(|event| event.kind == EventKind::SignOff)
                .filter_map(|event| {
                    Some(SignedStage {
                        stage: event.stage?,
                        by: event.actor.id.clone(),
                    })
                })
                .collect(),
            policy: self.policy,
            assignments: self.assignments.clone(),
        }
    }
}

/// The answer for a request that does not exist or that the caller may not see: the same 404
/// either way, so that numbers cannot be probed.
fn no_such_request(id: i64) -> ApiError {
    ApiError::not_found(format!(
        "there is no request {id} that you can see; check the number, or ask the requester to share it"
    ))
}

/// True when `principal` may read `request`: its requester; the reviewers, approvers,
/// organisation admins and auditors of its organisation (a national membership counts for
/// every organisation); and national curators. Everyone else is told it does not exist.
pub fn may_view(principal: &Principal, request: &StoredRequest) -> bool {
    let organisation = &request.draft.organisation;
    principal.id == request.requester.id
        || [
            Role::Reviewer,
            Role::Approver,
            Role::OrganisationAdmin,
            Role::Auditor,
            Role::InformationGovernance,
            Role::ClinicalSafetyOfficer,
        ]
        .into_iter()
        .any(|role| principal.holds(role, organisation))
        || principal.holds(Role::NationalCurator, &formulary_core::OrgCode::national())
}

/// Keeps the requests `viewer` may read (none for someone not signed in).
pub fn visible_to(viewer: Option<&Principal>, requests: &mut Vec<StoredRequest>) {
    requests.retain(|request| viewer.is_some_and(|principal| may_view(principal, request)));
}

/// Loads a request and its timeline for `principal`: 404 when there is none, and the same
/// 404 when they may not see it ([`may_view`]).
pub async fn load(
    state: &AppState,
    principal: &Principal,
    id: i64,
) -> Result<RequestRecord, ApiError> {
    let request = state
        .database
        .request(id)
        .await?
        .filter(|request| may_view(principal, request))
        .ok_or_else(|| no_such_request(id))?;
    let events = state.database.request_events(id).await?;
    let policy = state
        .database
        .review_policy(&request.draft.organisation)
        .await?;
    let assignments = state.database.review_assignments(id).await?;
    Ok(RequestRecord {
        request,
        events,
        policy,
        assignments,
    })
}

/// The entry in force that already answers a request in the requester's organisation: an
/// approving national or organisation entry covering the requested versions, with no
/// prohibition beside it.
pub fn covering_entry(state: &AppState, draft: &RequestDraft) -> Option<Grant> {
    let snapshot = state.snapshot.current();
    let today = Utc::now().date_naive();
    let applicable: Vec<_> = snapshot
        .entries_for(&draft.component)
        .iter()
        .filter(|entry| {
            (entry.draft.organisation.is_national()
                || entry.draft.organisation == draft.organisation)
                && entry.is_in_force_on(today)
        })
        .collect();
    if applicable
        .iter()
        .any(|entry| entry.draft.status == Status::Prohibited)
    {
        return None;
    }
    applicable
        .iter()
        .filter(|entry| {
            matches!(
                entry.draft.status,
                Status::Approved | Status::ApprovedWithConstraints | Status::Pilot
            )
        })
        .find(|entry| entry.draft.range.is_every() || entry.draft.range == draft.range)
        .map(|entry| {
            let state = match entry.draft.status {
                Status::ApprovedWithConstraints => RequestState::ApprovedWithConstraints,
                Status::Pilot => RequestState::Pilot,
                _ => RequestState::Approved,
            };
            let whose = if entry.draft.organisation.is_national() {
                "the national formulary".to_owned()
            } else {
                format!("{}'s formulary", entry.draft.organisation)
            };
            Grant {
                entry_id: entry.id.clone(),
                state,
                reason: format!(
                    "Already {} in {whose} ({} {}): {}",
                    entry.draft.status.as_str().replace('-', " "),
                    entry.draft.component,
                    entry.draft.range.as_str(),
                    entry.draft.reason
                ),
            }
        })
}

/// The open requests `principal` may review or decide (reviewers, approvers and national
/// curators of the request's organisation), newest first.
pub async fn review_queue(
    state: &AppState,
    principal: &Principal,
) -> Result<Vec<StoredRequest>, ApiError> {
    let open = state
        .database
        .requests(&formulary_store::RequestFilter {
            open_only: true,
            ..formulary_store::RequestFilter::default()
        })
        .await?;
    Ok(open
        .into_iter()
        .filter(|request| {
            [
                Role::Reviewer,
                Role::Approver,
                Role::NationalCurator,
                Role::InformationGovernance,
                Role::ClinicalSafetyOfficer,
            ]
            .into_iter()
            .any(|role| principal.holds(role, &request.draft.organisation))
        })
        .collect())
}

/// Submits a request. When an entry in force already covers it, it is granted at once.
///
/// Only people file requests: reviewers put their questions to the requester, and a service
/// account's token has nobody behind it to answer them, so it is refused (403) rather than
/// recorded under a made-up requester.
pub async fn submit(
    state: &AppState,
    principal: &Principal,
    form: &RequestForm,
) -> Result<StoredRequest, WorkflowError> {
    if principal.user.is_none() {
        return Err(WorkflowError::Refused(Refusal::NotPermitted(format!(
            "{} is a service account's token, and requests are filed by people: reviewers ask the requester questions, and a token cannot answer them. Sign in with `formulary login` and submit the request with your personal token, or use the web form",
            principal.name
        ))));
    }
    let draft = form
        .check(principal.home_organisation().as_ref())
        .map_err(WorkflowError::Invalid)?;
    may_submit(&principal.as_actor(), &draft.organisation).map_err(WorkflowError::Refused)?;
    let grant = covering_entry(state, &draft);
    let stored = state
        .database
        .submit_request(&draft, &principal.user_ref(), &principal.actor, grant)
        .await?;
    notices::request_changed(state, &stored, principal, RequestNotice::Submitted).await;
    Ok(stored)
}

fn checked_text(
    field: &'static str,
    text: &str,
    required: Option<&str>,
) -> Result<String, WorkflowError> {
    let text = text.trim();
    if let Some(message) = required {
        if text.is_empty() {
            return Err(single(field, message));
        }
    }
    if text.chars().count() > MAX_FIELD_CHARS {
        return Err(single(
            field,
            format!(
                "This must be {MAX_FIELD_CHARS} characters or fewer; link to a document for more"
            ),
        ));
    }
    Ok(text.to_owned())
}

/// Like [`checked_text`], adding any problem to `errors` (so every field is reported at once).
fn collect_text(
    errors: &mut Vec<FieldError>,
    field: &'static str,
    text: &str,
    required: Option<&str>,
) -> String {
    match checked_text(field, text, required) {
        Ok(text) => text,
        Err(WorkflowError::Invalid(found)) => {
            errors.extend(found);
            String::new()
        }
        Err(_) => String::new(),
    }
}

/// Adds a comment to a request's thread.
pub async fn comment(
    state: &AppState,
    principal: &Principal,
    id: i64,
    body: &str,
) -> Result<(), WorkflowError> {
    let record = load(state, principal, id).await?;
    may_comment(&principal.as_actor(), &record.facts()).map_err(WorkflowError::Refused)?;
    let body = checked_text("body", body, Some("Enter a comment"))?;
    state
        .database
        .comment_on_request(id, &principal.user_ref(), &principal.actor, &body)
        .await?;
    notices::request_changed(
        state,
        &record.request,
        principal,
        RequestNotice::Commented { body },
    )
    .await;
    Ok(())
}

/// A reviewer's sign-off, as submitted.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct SignOffForm {
    /// The stage (`basic`, `technical`, `security`, `information-governance`, `clinical-safety`).
    pub stage: String,
    /// `passed` or `concerns`.
    pub verdict: String,
    /// What the reviewer checked and found.
    pub note: String,
}

/// Signs off a review stage.
pub async fn sign_off(
    state: &AppState,
    principal: &Principal,
    id: i64,
    form: &SignOffForm,
) -> Result<(), WorkflowError> {
    let mut errors = Vec::new();
    let stage = form.stage.parse::<ReviewStage>().ok();
    if stage.is_none() {
        errors.push(FieldError::new(
            "stage",
            "Select the review stage you are signing off",
        ));
    }
    let verdict = form.verdict.parse::<SignOffVerdict>().ok();
    if verdict.is_none() {
        errors.push(FieldError::new(
            "verdict",
            "Select whether the stage passed or raised concerns",
        ));
    }
    let note = collect_text(
        &mut errors,
        "note",
        &form.note,
        Some("Say what you checked and what you found"),
    );
    let (Some(stage), Some(verdict), true) = (stage, verdict, errors.is_empty()) else {
        return Err(WorkflowError::Invalid(errors));
    };
    let record = load(state, principal, id).await?;
    may_sign_off(&principal.as_actor(), &record.facts(), stage).map_err(WorkflowError::Refused)?;
    state
        .database
        .sign_off_request(
            id,
            &principal.user_ref(),
            &principal.actor,
            stage,
            verdict,
            &note,
        )
        .await?;
    notices::request_changed(
        state,
        &record.request,
        principal,
        RequestNotice::SignedOff {
            stage: stage.as_str().to_owned(),
            verdict: verdict.as_str().to_owned(),
        },
    )
    .await;
    Ok(())
}

/// An approver's decision, as submitted.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct DecisionForm {
    /// `approved`, `approved-with-constraints`, `pilot` or `rejected`.
    pub outcome: String,
    /// Why (published in the decision log).
    pub reason: String,
    /// `organisation` (default) or `national`.
    pub scope: String,
    /// Conditions of use, for approvals with constraints.
    pub constraints: String,
    /// The pilot's last day (`YYYY-MM-DD`); 90 days from today when empty.
    pub expires: String,
    /// The named person who answers questions about the tool.
    pub mentor: String,
    /// What earlier decision this reuses (an entry id or `request:N`), if any.
    pub reused_from: String,
}

fn optional_day(text: &str) -> Result<Option<NaiveDate>, &'static str> {
    match text.trim() {
        "" => Ok(None),
        day => day
            .parse::<NaiveDate>()
            .map(Some)
            .map_err(|_| "Enter a date as YYYY-MM-DD, for example 2027-03-31"),
    }
}

/// Decides a request; approvals write an entry at the chosen scope.
pub async fn decide(
    state: &AppState,
    principal: &Principal,
    id: i64,
    form: &DecisionForm,
) -> Result<StoredRequest, WorkflowError> {
    let mut errors = Vec::new();
    let outcome = form.outcome.parse::<Outcome>().ok();
    if outcome.is_none() {
        errors.push(FieldError::new(
            "outcome",
            "Select a decision: approved, approved with constraints, pilot or rejected",
        ));
    }
    let scope = match form.scope.trim() {
        "" | "organisation" => Some(DecisionScope::Organisation),
        "national" => Some(DecisionScope::National),
        _ => {
            errors.push(FieldError::new(
                "scope",
                "Select national or organisation scope",
            ));
            None
        }
    };
    let reason = collect_text(
        &mut errors,
        "reason",
        &form.reason,
        Some("Give the reason for the decision; it is published in the decision log"),
    );
    let constraints = collect_text(&mut errors, "constraints", &form.constraints, None);
    if outcome == Some(Outcome::ApprovedWithConstraints) && constraints.is_empty() {
        errors.push(FieldError::new(
            "constraints",
            "Write down the constraints of use",
        ));
    }
    let mentor = collect_text(&mut errors, "mentor", &form.mentor, None);
    let today = Utc::now().date_naive();
    let expires = match optional_day(&form.expires) {
        Ok(Some(day)) if day <= today => {
            errors.push(FieldError::new(
                "expires",
                "The pilot's end date must be in the future",
            ));
            None
        }
        Ok(day) => day,
        Err(message) => {
            errors.push(FieldError::new("expires", message));
            None
        }
    };
    let reused_from = collect_text(&mut errors, "reused_from", &form.reused_from, None);
    let (Some(outcome), Some(scope), true) = (outcome, scope, errors.is_empty()) else {
        return Err(WorkflowError::Invalid(errors));
    };
    let record = load(state, principal, id).await?;
    may_decide(&principal.as_actor(), &record.facts(), outcome, scope)
        .map_err(WorkflowError::Refused)?;
    let request = &record.request;
    let entry = outcome.entry_status().map(|status| EntryDraft {
        organisation: match scope {
            DecisionScope::National => formulary_core::OrgCode::national(),
            DecisionScope::Organisation => request.draft.organisation.clone(),
        },
        component: request.draft.component.clone(),
        range: request.draft.range.clone(),
        status,
        constraints: (!constraints.is_empty()).then(|| constraints.clone()),
        review_date: today.checked_add_days(Days::new(DEFAULT_REVIEW_DAYS)),
        expires: match status {
            Status::Pilot => {
                expires.or_else(|| today.checked_add_days(Days::new(DEFAULT_PILOT_DAYS)))
            }
            _ => None,
        },
        waives: Vec::new(),
        decided_by: principal.name.clone(),
        reason: reason.clone(),
        mentor: (!mentor.is_empty()).then(|| mentor.clone()),
    });
    let decision = DecisionRecord {
        state: outcome.state(),
        reason,
        scope: entry.as_ref().map(|_| {
            match scope {
                DecisionScope::National => "national",
                DecisionScope::Organisation => "organisation",
            }
            .to_owned()
        }),
        entry,
        reused_from: (!reused_from.is_empty()).then_some(reused_from),
    };
    let written = state
        .database
        .decide_request(id, &principal.user_ref(), &principal.actor, &decision)
        .await?;
    if written.is_some() {
        state.snapshot.refresh(&state.database).await?;
    }
    let decided = load(state, principal, id).await?.request;
    notices::request_changed(state, &decided, principal, RequestNotice::Decided).await;
    Ok(decided)
}

/// Withdraws a request.
pub async fn withdraw(
    state: &AppState,
    principal: &Principal,
    id: i64,
    note: &str,
) -> Result<(), WorkflowError> {
    let record = load(state, principal, id).await?;
    may_withdraw(&principal.as_actor(), &record.facts()).map_err(WorkflowError::Refused)?;
    let note = checked_text("note", note, None)?;
    Ok(state
        .database
        .withdraw_request(id, &principal.user_ref(), &principal.actor, &note)
        .await?)
}
