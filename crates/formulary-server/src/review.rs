//! Review work as the server runs it: claiming or assigning a stage of a request (checked by
//! [`formulary_core::request::review`], audited, the assignee told), and the review queue with
//! each request's outstanding stages and whether it is ready to decide.

use formulary_core::request::review::{may_assign, may_claim};
use formulary_core::request::workflow::Refusal;
use formulary_core::request::{FieldError, ReviewStage};
use formulary_store::{NewNotification, StoredRequest};
use serde::Deserialize;

use crate::error::ApiError;
use crate::identity::Principal;
use crate::state::AppState;
use crate::workflow::{self, RequestRecord, WorkflowError};

/// An open request in someone's queue, with what it still needs.
#[derive(Debug, Clone)]
pub struct QueueItem {
    /// The request.
    pub request: StoredRequest,
    /// The stages an approval still needs, each with whoever it is assigned to.
    pub outstanding: Vec<(ReviewStage, Option<String>)>,
    /// True when every needed stage is signed off: an approver can decide it now.
    pub ready_to_decide: bool,
}

/// The review queue of `principal` (see [`workflow::review_queue`]), with each request's
/// outstanding stages and readiness.
pub async fn queue(state: &AppState, principal: &Principal) -> Result<Vec<QueueItem>, ApiError> {
    let requests = workflow::review_queue(state, principal).await?;
    let mut items = Vec::with_capacity(requests.len());
    for request in requests {
        let record = workflow::load(state, principal, request.id).await?;
        let facts = record.facts();
        let outstanding = facts
            .stages_missing_for_approval()
            .into_iter()
            .map(|stage| {
                let who = facts
                    .assignments
                    .iter()
                    .find(|assignment| assignment.stage == stage)
                    .map(|assignment| assignment.user_name.clone());
                (stage, who)
            })
            .collect();
        items.push(QueueItem {
            ready_to_decide: facts.ready_to_decide(),
            outstanding,
            request: record.request,
        });
    }
    Ok(items)
}

/// A claim or an assignment, as posted: the stage, and the assignee's username (empty, or the
/// poster's own, for a claim).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct AssignForm {
    /// The stage.
    pub stage: String,
    /// Who takes it; empty for the poster.
    pub assignee: String,
}

/// Claims a stage for `principal`, or assigns it to the named person; tells the assignee.
pub async fn assign(
    state: &AppState,
    principal: &Principal,
    id: i64,
    form: &AssignForm,
) -> Result<(), WorkflowError> {
    let Ok(stage) = form.stage.parse::<ReviewStage>() else {
        return Err(WorkflowError::Invalid(vec![FieldError::new(
            "stage",
            "Select the review stage to claim or assign",
        )]));
    };
    let record: RequestRecord = workflow::load(state, principal, id).await?;
    let facts = record.facts();
    let assignee_name = form.assignee.trim();
    let own = assignee_name.is_empty()
        || principal
            .user
            .as_ref()
            .is_some_and(|user| user.username.eq_ignore_ascii_case(assignee_name));
    let assignee = if own {
        let Some(user) = principal.user.clone() else {
            return Err(WorkflowError::Refused(Refusal::NotPermitted(
                "only people claim review stages".to_owned(),
            )));
        };
        may_claim(&principal.as_actor(), &facts, stage).map_err(WorkflowError::Refused)?;
        user
    } else {
        let Some((user, _)) = state.database.user_by_username(assignee_name).await? else {
            return Err(WorkflowError::Invalid(vec![FieldError::new(
                "assignee",
                format!("There is no account named '{assignee_name}'; enter a username from your organisation's people"),
            )]));
        };
        if user.disabled_at.is_some() {
            return Err(WorkflowError::Invalid(vec![FieldError::new(
                "assignee",
                format!(
                    "{}'s account is disabled; choose someone else",
                    user.username
                ),
            )]));
        }
        may_assign(
            &principal.as_actor(),
            &facts,
            stage,
            &user.id,
            &user.memberships,
        )
        .map_err(WorkflowError::Refused)?;
        user
    };
    state
        .database
        .assign_review_stage(id, stage, &assignee.id, &principal.actor)
        .await?;
    if assignee.id != principal.id {
        let link = state
            .public_url
            .join(&format!("requests/{id}"))
            .map_or_else(|_| format!("/requests/{id}"), String::from);
        let note = NewNotification {
            user_id: assignee.id.clone(),
            kind: "review.assigned".to_owned(),
            subject: format!(
                "{} assigned you the {} of request #{id}",
                principal.name,
                stage.label().to_lowercase()
            ),
            body: format!(
                "{} asked you to sign off the {} of request #{id} ({} for {}). Review it at the link.",
                principal.name,
                stage.label().to_lowercase(),
                record.request.draft.component.purl(),
                record.request.draft.organisation
            ),
            link,
        };
        if let Err(error) = state.database.notify(&[note]).await {
            tracing::warn!(%error, request = id, "could not record the assignment notice");
        }
    }
    Ok(())
}
