//! Review work on the request pages: the queue with each request's outstanding stages and
//! whether it is ready to decide, and the forms to claim a stage or assign it to someone
//! (`POST /requests/{id}/assignments`).

use axum::extract::{Path, State};
use axum::response::Response;
use chrono::Utc;
use formulary_core::request::review::may_claim;
use formulary_core::request::workflow::RequestFacts;
use formulary_core::request::{FieldError, ReviewStage};
use formulary_core::Role;
use maud::{html, Markup};

use super::page::{self, Field};
use super::session::{PostedForm, Viewer};
use super::WebError;
use crate::review::{self, AssignForm, QueueItem};
use crate::state::AppState;

/// The review queue: each open request with its outstanding stages (and who has them), or
/// "Ready to decide".
pub(crate) fn queue_rows(items: &[QueueItem], caption: &str) -> Markup {
    let now = Utc::now();
    html! {
        table.nhsuk-table #queue {
            caption.nhsuk-table__caption { (caption) }
            thead.nhsuk-table__head { tr { th scope="col" { "Request" } th scope="col" { "Component" } th scope="col" { "Organisation" } th scope="col" { "Outstanding" } th scope="col" { "Waiting" } } }
            tbody.nhsuk-table__body {
                @for item in items {
                    @let request = &item.request;
                    tr.nhsuk-table__row {
                        td.nhsuk-table__cell { a href={ "/requests/" (request.id) } { "Request " (request.id) } }
                        td.nhsuk-table__cell { (request.draft.component.name.as_str()) " (" (request.draft.component.ecosystem().display_name()) ")" }
                        td.nhsuk-table__cell { (request.draft.organisation) }
                        td.nhsuk-table__cell {
                            @if item.ready_to_decide {
                                strong.nhsuk-tag.nhsuk-tag--green { "Ready to decide" }
                            } @else {
                                ul.nhsuk-list.nhsuk-u-margin-bottom-0 {
                                    @for (stage, who) in &item.outstanding {
                                        li { (stage.label()) @if let Some(who) = who { " (" (who) ")" } @else { " (unassigned)" } }
                                    }
                                }
                            }
                        }
                        td.nhsuk-table__cell { (page::elapsed(request.created_at, now)) }
                    }
                }
            }
        }
    }
}

/// The claim and assign forms of a request, for whoever may use them.
pub(crate) fn assignment_forms(
    facts: &RequestFacts,
    id: i64,
    viewer: &Viewer,
    errors: &[FieldError],
) -> Markup {
    let Some(principal) = viewer.principal.as_ref() else {
        return html! {};
    };
    let csrf = viewer.csrf_token.as_deref().unwrap_or("");
    let actor = principal.as_actor();
    let claimable: Vec<(&str, &str)> = ReviewStage::ALL
        .iter()
        .filter(|stage| may_claim(&actor, facts, **stage).is_ok())
        .map(|stage| (stage.as_str(), stage.label()))
        .collect();
    let manager = facts.state.is_open()
        && [
            Role::Approver,
            Role::OrganisationAdmin,
            Role::NationalCurator,
        ]
        .into_iter()
        .any(|role| principal.holds(role, &facts.organisation));
    let signed: Vec<ReviewStage> = facts.signed.iter().map(|signed| signed.stage).collect();
    let assignable: Vec<(&str, &str)> = ReviewStage::ALL
        .iter()
        .filter(|stage| !signed.contains(stage))
        .map(|stage| (stage.as_str(), stage.label()))
        .collect();
    html! {
        @if !claimable.is_empty() {
            h2.nhsuk-heading-m #claim { "Claim a review stage" }
            p { "Claim a stage you will review, so that others see it is taken; only you can then sign it off until an approver or administrator reassigns it." }
            form method="post" action={ "/requests/" (id) "/assignments" } novalidate {
                (page::csrf_field(csrf))
                (page::radios("claim_stage", "Stage to claim", None, &claimable, "", errors))
                button.nhsuk-button.nhsuk-button--secondary type="submit" { "Claim stage" }
            }
        }
        @if manager && !assignable.is_empty() {
            h2.nhsuk-heading-m #assign { "Assign a review stage" }
            form method="post" action={ "/requests/" (id) "/assignments" } novalidate {
                (page::csrf_field(csrf))
                (super::admin::select("assign_stage", "Stage", None, &assignable, "", errors))
                (page::input(Field { name: "assignee", label: "Assign to (username)", hint: Some("Someone with the role the stage needs, who did not make the request"), value: "" }, "text", Some("off"), errors))
                button.nhsuk-button.nhsuk-button--secondary type="submit" { "Assign stage" }
            }
        }
    }
}

/// The assignment form as posted: either `claim_stage` (a claim) or `assign_stage` with
/// `assignee`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub(crate) struct PostedAssignment {
    claim_stage: String,
    assign_stage: String,
    assignee: String,
}

/// `POST /requests/{id}/assignments`.
pub(crate) async fn assign(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    posted: PostedForm<PostedAssignment>,
) -> Result<Response, WebError> {
    let PostedForm { signed_in, form } = posted;
    let assigning = !form.assign_stage.is_empty() || !form.assignee.trim().is_empty();
    let request = AssignForm {
        stage: if assigning {
            form.assign_stage.clone()
        } else {
            form.claim_stage.clone()
        },
        assignee: form.assignee.clone(),
    };
    if assigning && form.assignee.trim().is_empty() {
        let outcome = Err(crate::workflow::WorkflowError::Invalid(vec![
            FieldError::new(
                "assignee",
                "Enter the username of the person to assign the stage to",
            ),
        ]));
        return super::requests::after_action(&state, &signed_in, id, "assign", outcome).await;
    }
    let outcome = review::assign(&state, &signed_in.principal, id, &request)
        .await
        .map_err(|error| match error {
            crate::workflow::WorkflowError::Invalid(errors) => {
                crate::workflow::WorkflowError::Invalid(
                    errors
                        .into_iter()
                        .map(|error| match error.field {
                            "stage" if assigning => FieldError::new("assign_stage", error.message),
                            "stage" => FieldError::new("claim_stage", error.message),
                            _ => error,
                        })
                        .collect(),
                )
            }
            other => other,
        });
    super::requests::after_action(&state, &signed_in, id, "assign", outcome).await
}
