//! `/admin/{org}/review`: the organisation's review policy (distinct reviewers per stage,
//! stages that need the information governance or clinical safety officer role, clinical
//! safety for clinical data), and who holds those roles.

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use formulary_core::request::ReviewPolicy;
use formulary_core::Role;
use maud::html;
use serde::Deserialize;

use super::{caption, done_banner, organisation_for, subnav};
use crate::state::AppState;
use crate::web::page::{self, Section};
use crate::web::session::{PostedForm, SignedIn};
use crate::web::WebError;

/// What the page confirms after a change (`?done=`).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Done {
    #[serde(default)]
    done: String,
}

/// The policy form, as posted: a ticked box sends `yes`, an unticked one nothing.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct PolicyForm {
    distinct_reviewers: String,
    information_governance_role: String,
    clinical_safety_role: String,
    clinical_safety_for_clinical_data: String,
}

impl PolicyForm {
    fn policy(&self) -> ReviewPolicy {
        ReviewPolicy {
            distinct_reviewers: self.distinct_reviewers == "yes",
            information_governance_role: self.information_governance_role == "yes",
            clinical_safety_role: self.clinical_safety_role == "yes",
            clinical_safety_for_clinical_data: self.clinical_safety_for_clinical_data == "yes",
        }
    }
}

/// `GET /admin/{org}/review`.
pub(crate) async fn show(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Path(org): Path<String>,
    Query(done): Query<Done>,
) -> Result<Response, WebError> {
    let organisation = organisation_for(&state, &signed_in, &org).await?;
    let policy = state.database.review_policy(&organisation.code).await?;
    let people = state
        .database
        .users_in_organisation(&organisation.code)
        .await?;
    let holders = |role: Role| -> Vec<String> {
        people
            .iter()
            .filter(|user| {
                user.disabled_at.is_none()
                    && user.memberships.iter().any(|membership| {
                        membership.role == role && membership.organisation == organisation.code
                    })
            })
            .map(|user| user.display_name.clone())
            .collect()
    };
    let csrf = signed_in.viewer.csrf_token.as_deref().unwrap_or("");
    let boxes = [
        ("distinct_reviewers", "Each stage needs a different reviewer", "No one person can sign off two stages of the same request", policy.distinct_reviewers),
        ("information_governance_role", "Information governance needs the information governance role", "A reviewer without that role cannot sign off the information governance stage", policy.information_governance_role),
        ("clinical_safety_role", "Clinical safety needs a clinical safety officer", "Only someone with the clinical safety officer role signs off the clinical safety stage", policy.clinical_safety_role),
        ("clinical_safety_for_clinical_data", "Requests touching clinical data need clinical safety", "Approval of such a request waits for the clinical safety stage", policy.clinical_safety_for_clinical_data),
    ];
    let governance = holders(Role::InformationGovernance);
    let safety = holders(Role::ClinicalSafetyOfficer);
    let content = html! {
        (subnav(&organisation, "review"))
        (done_banner((done.done == "saved").then_some("The review policy has been saved; it applies to open requests at once.")))
        (caption(&organisation))
        h1 { "Review policy" }
        p { "Now: " (policy.describe().join("; ")) "." }
        div.nhsuk-grid-row { div.nhsuk-grid-column-two-thirds {
            form method="post" action={ "/admin/" (organisation.code) "/review" } novalidate {
                (page::csrf_field(csrf))
                div.nhsuk-form-group {
                    fieldset.nhsuk-fieldset aria-describedby="policy-hint" {
                        legend.nhsuk-fieldset__legend.nhsuk-fieldset__legend--s { "Rules for reviews in " (organisation.code) }
                        div.nhsuk-hint #policy-hint { "Basic, technical and security review are always needed; information governance too when personal or clinical data is involved. The approver is never the requester nor the sole reviewer." }
                        div.nhsuk-checkboxes {
                            @for (name, label, hint, on) in boxes {
                                div.nhsuk-checkboxes__item {
                                    input.nhsuk-checkboxes__input id=(name) name=(name) type="checkbox" value="yes" checked[on] aria-describedby={ (name) "-hint" };
                                    label.nhsuk-label.nhsuk-checkboxes__label for=(name) { (label) }
                                    div.nhsuk-hint.nhsuk-checkboxes__hint id={ (name) "-hint" } { (hint) }
                                }
                            }
                        }
                    }
                }
                button.nhsuk-button type="submit" { "Save review policy" }
            }
        } }
        h2.nhsuk-heading-m { "Who holds the named roles" }
        dl.nhsuk-summary-list #named-roles {
            div.nhsuk-summary-list__row { dt.nhsuk-summary-list__key { "Information governance" } dd.nhsuk-summary-list__value { @if governance.is_empty() { "Nobody yet: grant the role on the People page" } @else { (governance.join(", ")) } } }
            div.nhsuk-summary-list__row { dt.nhsuk-summary-list__key { "Clinical safety officer" } dd.nhsuk-summary-list__value { @if safety.is_empty() { "Nobody yet: grant the role on the People page" } @else { (safety.join(", ")) } } }
        }
    };
    let title = format!("Review policy of {}", organisation.code);
    Ok(page::render(&signed_in.viewer, Section::Admin, &title, false, content).into_response())
}

/// `POST /admin/{org}/review`.
pub(crate) async fn save(
    State(state): State<AppState>,
    Path(org): Path<String>,
    posted: PostedForm<PolicyForm>,
) -> Result<Response, WebError> {
    let PostedForm { signed_in, form } = posted;
    let organisation = organisation_for(&state, &signed_in, &org).await?;
    state
        .database
        .set_review_policy(
            &organisation.code,
            &form.policy(),
            &signed_in.principal.actor,
        )
        .await?;
    Ok(Redirect::to(&format!("/admin/{}/review?done=saved", organisation.code)).into_response())
}
