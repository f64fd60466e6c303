//! Request pages: the list (mine, and the review queue), the form that starts from the problem
//! and shows earlier decisions and requests before submitting, and the request page with its
//! evidence, stages, timeline, clock, comment thread and the actions the viewer may take.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use formulary_core::request::workflow::{
    may_comment, may_decide, may_sign_off, may_withdraw, DecisionScope,
};
use formulary_core::request::{DataClass, FieldError, Outcome, RequestForm, ReviewStage};
use formulary_core::{Component, OrgCode, Role};
use formulary_store::{EventKind, RequestFilter, StoredRequest};
use maud::{html, Markup};
use serde::Deserialize;

use super::catalogue::component_href;
use super::page::{self, Field, Section};
use super::session::{PostedForm, SignedIn, Viewer};
use super::WebError;
use crate::catalogue::{component_report, ComponentReport};
use crate::identity::Principal;
use crate::state::AppState;
use crate::workflow::{self, DecisionForm, RequestRecord, SignOffForm, WorkflowError};

fn request_rows(requests: &[StoredRequest], caption: &str) -> Markup {
    let now = Utc::now();
    html! {
        table.nhsuk-table {
            caption.nhsuk-table__caption { (caption) }
            thead.nhsuk-table__head { tr { th scope="col" { "Request" } th scope="col" { "Component" } th scope="col" { "Organisation" } th scope="col" { "State" } th scope="col" { "Time since submission" } } }
            tbody.nhsuk-table__body {
                @for request in requests {
                    tr.nhsuk-table__row {
                        td.nhsuk-table__cell { a href={ "/requests/" (request.id) } { "Request " (request.id) } }
                        td.nhsuk-table__cell { (request.draft.component.name.as_str()) " (" (request.draft.component.ecosystem().display_name()) ") " code { (request.draft.range.as_str()) } }
                        td.nhsuk-table__cell { (request.draft.organisation) }
                        td.nhsuk-table__cell { (page::state_tag(request.state)) }
                        td.nhsuk-table__cell { (page::elapsed(request.created_at, request.decided_at.unwrap_or(now))) }
                    }
                }
            }
        }
    }
}

/// `GET /requests`: my requests, and the requests I can review or decide.
pub(crate) async fn list(
    State(state): State<AppState>,
    signed_in: SignedIn,
) -> Result<Response, WebError> {
    let principal = &signed_in.principal;
    let mine = state
        .database
        .requests(&RequestFilter {
            requester: Some(principal.id.clone()),
            ..RequestFilter::default()
        })
        .await?;
    let staff = [
        Role::Reviewer,
        Role::Approver,
        Role::NationalCurator,
        Role::InformationGovernance,
        Role::ClinicalSafetyOfficer,
    ]
    .into_iter()
    .any(|role| principal.has_role(role));
    let queue = if staff {
        crate::review::queue(&state, principal).await?
    } else {
        Vec::new()
    };
    let content = html! {
        h1 { "Requests" }
        a.nhsuk-button href="/requests/new" role="button" draggable="false" { "Request a tool" }
        @if staff {
            h2.nhsuk-heading-m { "To review or decide" }
            @if queue.is_empty() { p { "No open requests need you." } } @else { (super::review::queue_rows(&queue, "Open requests for your organisations, newest first, with the stages they still need")) }
        }
        h2.nhsuk-heading-m { "Your requests" }
        @if mine.is_empty() { p { "You have not requested anything yet." } } @else { (request_rows(&mine, "Your requests, newest first")) }
    };
    Ok(page::render(
        &signed_in.viewer,
        Section::Requests,
        "Requests",
        false,
        content,
    )
    .into_response())
}

/// Query of the new-request form (from a component page's "Request this").
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Prefill {
    #[serde(default)]
    ecosystem: String,
    #[serde(default)]
    name: String,
}

fn existing_work(report: &ComponentReport) -> Markup {
    html! {
        @if !report.precedents.is_empty() || !report.requests.is_empty() {
            div.nhsuk-inset-text {
                span.nhsuk-u-visually-hidden { "Information: " }
                h2.nhsuk-heading-s { "Earlier work on " (report.component.name.as_str()) }
                @if !report.precedents.is_empty() {
                    p { "Decisions already made (an approval in the national formulary or your organisation's is granted at once):" }
                    ul {
                        @for precedent in &report.precedents {
                            li { (precedent.organisation) ": " (page::status_tag(precedent.status)) " " code { (precedent.range) } " – " (precedent.reason) }
                        }
                    }
                }
                @if !report.requests.is_empty() {
                    p { "Requests for it (follow or comment on an open one instead of starting again):" }
                    ul {
                        @for request in &report.requests {
                            li { a href={ "/requests/" (request.id) } { "Request " (request.id) } " for " (request.draft.organisation) " " (page::state_tag(request.state)) }
                        }
                    }
                }
                p { a href=(component_href(&report.component)) { "See everything known about " (report.component.name.as_str()) } }
            }
        }
    }
}

fn request_form(
    principal: &Principal,
    csrf: &str,
    form: &RequestForm,
    errors: &[FieldError],
    existing: Option<&ComponentReport>,
    needs_confirmation: bool,
) -> Markup {
    let organisations = principal.organisations();
    let ecosystems: Vec<(&str, &str)> = formulary_core::ecosystems::Ecosystem::ALL
        .iter()
        .map(|ecosystem| (ecosystem.as_str(), ecosystem.display_name()))
        .collect();
    let data_classes: Vec<(&str, &str)> = DataClass::ALL
        .iter()
        .map(|class| (class.as_str(), class.label()))
        .collect();
    let chosen_organisation = if form.organisation.is_empty() {
        principal
            .home_organisation()
            .map(|code| code.to_string())
            .unwrap_or_default()
    } else {
        form.organisation.clone()
    };
    html! {
        div.nhsuk-grid-row { div.nhsuk-grid-column-two-thirds {
            (page::error_summary(errors))
            h1 { "Request a tool" }
            p { "Start from the problem you need to solve. Reviewers see your answers; the evidence (licence, advisories, release history) is gathered automatically." }
            @if let Some(report) = existing { (existing_work(report)) }
            form method="post" action="/requests" novalidate {
                (page::csrf_field(csrf))
                @if needs_confirmation { input type="hidden" name="confirmed" value="yes"; }
                (page::textarea(Field { name: "problem", label: "What problem do you need to solve, and for whom?", hint: Some("Describe the task and its scope, for example: read monthly Excel returns from 40 GP practices into R"), value: &form.problem }, 5, errors))
                (page::radios("data_class", "What data will it touch?", Some("Choose the most sensitive"), &data_classes, &form.data_class, errors))
                (page::radios("ecosystem", "Where does the tool come from?", None, &ecosystems, &form.ecosystem, errors))
                (page::input(Field { name: "name", label: "Name of the tool or package", hint: Some("As it is published, for example readxl or requests"), value: &form.name }, "text", Some("off"), errors))
                (page::input(Field { name: "version_range", label: "Versions (optional)", hint: Some("For example >=1.4.2 or >=4.3,<5; leave empty for any version"), value: &form.version_range }, "text", Some("off"), errors))
                (page::textarea(Field { name: "environment", label: "Where will it run?", hint: Some("Machine, operating system and software around it, for example a Windows laptop with RStudio"), value: &form.environment }, 3, errors))
                (page::textarea(Field { name: "alternatives", label: "What else did you consider? (optional)", hint: Some("Tools already approved that you tried, and why they do not do the job"), value: &form.alternatives }, 3, errors))
                (page::input(Field { name: "users", label: "How many people will use it?", hint: None, value: &form.users }, "text", Some("off"), errors))
                (page::textarea(Field { name: "credentials", label: "Credentials or APIs it needs (optional)", hint: Some("For example a database account or an API key; do not paste secrets"), value: &form.credentials }, 2, errors))
                @if organisations.len() > 1 {
                    @let choices: Vec<(&str, &str)> = organisations.iter().map(|code| (code.as_str(), code.as_str())).collect();
                    (page::radios("organisation", "Which organisation is it for?", None, &choices, &chosen_organisation, errors))
                } @else {
                    input type="hidden" name="organisation" value=(chosen_organisation);
                }
                button.nhsuk-button type="submit" { @if needs_confirmation { "Submit a new request anyway" } @else { "Submit request" } }
            }
        } }
    }
}

/// `GET /requests/new`.
pub(crate) async fn new(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Query(prefill): Query<Prefill>,
) -> Result<Response, WebError> {
    let form = RequestForm {
        ecosystem: prefill.ecosystem.clone(),
        name: prefill.name.clone(),
        ..RequestForm::default()
    };
    let existing = match prefill.ecosystem.parse() {
        Ok(ecosystem) => match Component::new(ecosystem, &prefill.name) {
            Ok(component) => {
                let mut report = component_report(
                    &state,
                    &component,
                    &signed_in
                        .principal
                        .home_organisation()
                        .unwrap_or_else(OrgCode::national),
                )
                .await?;
                workflow::visible_to(Some(&signed_in.principal), &mut report.requests);
                Some(report)
            }
            Err(_) => None,
        },
        Err(_) => None,
    };
    let csrf = signed_in.viewer.csrf_token.clone().unwrap_or_default();
    let content = request_form(
        &signed_in.principal,
        &csrf,
        &form,
        &[],
        existing.as_ref(),
        false,
    );
    Ok(page::render(
        &signed_in.viewer,
        Section::Requests,
        "Request a tool",
        false,
        content,
    )
    .into_response())
}

/// The posted request form, with the confirmation flag of the "earlier work" step.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct PostedRequest {
    #[serde(flatten)]
    form: RequestForm,
    #[serde(default)]
    confirmed: String,
}

/// `POST /requests`.
pub(crate) async fn create(
    State(state): State<AppState>,
    posted: PostedForm<PostedRequest>,
) -> Result<Response, WebError> {
    let PostedForm { signed_in, form } = posted;
    let principal = &signed_in.principal;
    let csrf = signed_in.viewer.csrf_token.clone().unwrap_or_default();
    let render_again = |errors: Vec<FieldError>,
                        existing: Option<ComponentReport>,
                        confirm: bool,
                        status: StatusCode| {
        let content = request_form(
            principal,
            &csrf,
            &form.form,
            &errors,
            existing.as_ref(),
            confirm,
        );
        page::render_with_status(
            status,
            &signed_in.viewer,
            Section::Requests,
            "Request a tool",
            !errors.is_empty(),
            content,
        )
        .into_response()
    };
    let draft = match form.form.check(principal.home_organisation().as_ref()) {
        Ok(draft) => draft,
        Err(errors) => {
            return Ok(render_again(
                errors,
                None,
                false,
                StatusCode::UNPROCESSABLE_ENTITY,
            ))
        }
    };
    // Show earlier work on the same component once before a new review starts.
    if form.confirmed != "yes" && workflow::covering_entry(&state, &draft).is_none() {
        let mut report = component_report(&state, &draft.component, &draft.organisation).await?;
        workflow::visible_to(Some(principal), &mut report.requests);
        if !report.requests.is_empty() || !report.precedents.is_empty() {
            return Ok(render_again(Vec::new(), Some(report), true, StatusCode::OK));
        }
    }
    match workflow::submit(&state, principal, &form.form).await {
        Ok(request) => Ok(Redirect::to(&format!("/requests/{}", request.id)).into_response()),
        Err(WorkflowError::Invalid(errors)) => Ok(render_again(
            errors,
            None,
            false,
            StatusCode::UNPROCESSABLE_ENTITY,
        )),
        Err(error) => Err(WebError::from(crate::error::ApiError::from(error))),
    }
}

/// Errors of a posted action, shown on the request page.
#[derive(Debug, Default)]
struct ActionErrors {
    errors: Vec<FieldError>,
    /// Which form they belong to: `comment`, `sign-off`, `decision`, `withdraw`.
    form: &'static str,
}

/// `GET /requests/{id}`.
pub(crate) async fn show(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Path(id): Path<i64>,
) -> Result<Response, WebError> {
    render_request(
        &state,
        &signed_in,
        id,
        ActionErrors::default(),
        StatusCode::OK,
    )
    .await
}

async fn render_request(
    state: &AppState,
    signed_in: &SignedIn,
    id: i64,
    errors: ActionErrors,
    status: StatusCode,
) -> Result<Response, WebError> {
    let viewer = &signed_in.viewer;
    let record = workflow::load(state, &signed_in.principal, id).await?;
    let request = &record.request;
    // First, so that versions the gateway records while gathering it are decided below too.
    let upstream = crate::evidence::gather(
        state,
        &request.draft.component,
        &request.draft.organisation,
        true,
    )
    .await;
    let mut report =
        component_report(state, &request.draft.component, &request.draft.organisation).await?;
    workflow::visible_to(Some(&signed_in.principal), &mut report.requests);
    let title = format!("Request {id}: {}", request.draft.component.name.as_str());
    let content = request_markup(&record, &report, &upstream, viewer, &errors);
    Ok(page::render_with_status(
        status,
        viewer,
        Section::Requests,
        &title,
        !errors.errors.is_empty(),
        content,
    )
    .into_response())
}

fn request_markup(
    record: &RequestRecord,
    report: &ComponentReport,
    upstream: &crate::evidence::EvidenceAnswer,
    viewer: &Viewer,
    errors: &ActionErrors,
) -> Markup {
    let request = &record.request;
    let facts = record.facts();
    let now = Utc::now();
    let principal = viewer.principal.as_ref();
    let actor = principal.map(Principal::as_actor);
    let csrf = viewer.csrf_token.as_deref().unwrap_or("");
    let errors_for = |form: &str| {
        if errors.form == form {
            errors.errors.as_slice()
        } else {
            &[]
        }
    };
    let can_comment = actor.is_some_and(|actor| may_comment(&actor, &facts).is_ok());
    let open_stages: Vec<ReviewStage> = ReviewStage::ALL
        .iter()
        .copied()
        .filter(|stage| actor.is_some_and(|actor| may_sign_off(&actor, &facts, *stage).is_ok()))
        .collect();
    let can_decide = actor.is_some_and(|actor| {
        may_decide(
            &actor,
            &facts,
            Outcome::Rejected,
            DecisionScope::Organisation,
        )
        .is_ok()
    });
    let national_approver = principal.is_some_and(|principal| {
        principal.holds(Role::Approver, &OrgCode::national())
            || principal.holds(Role::NationalCurator, &OrgCode::national())
    });
    let can_withdraw = actor.is_some_and(|actor| may_withdraw(&actor, &facts).is_ok());
    let missing = facts.stages_missing_for_approval();
    let signed = |stage: ReviewStage| {
        record
            .events
            .iter()
            .find(|event| event.kind == EventKind::SignOff && event.stage == Some(stage))
    };
    let latest_licence = report
        .versions
        .first()
        .and_then(|row| row.licence.clone())
        .or_else(|| {
            let evidence = upstream.evidence.as_ref()?;
            Some(format!(
                "{} (declared upstream for {})",
                evidence.licence.as_deref()?,
                evidence.newest.as_deref().unwrap_or("the newest version")
            ))
        });
    let outcomes: Vec<(&str, &str)> = Outcome::ALL
        .iter()
        .map(|outcome| (outcome.as_str(), outcome.state().label()))
        .collect();
    let stages: Vec<(&str, &str)> = open_stages
        .iter()
        .map(|stage| (stage.as_str(), stage.label()))
        .collect();
    let summary_row = |key: &str, value: Markup| {
        html! {
            div.nhsuk-summary-list__row { dt.nhsuk-summary-list__key { (key) } dd.nhsuk-summary-list__value { (value) } }
        }
    };
    let all_errors: Vec<FieldError> = errors.errors.clone();
    html! {
        (page::error_summary(&all_errors))
        span.nhsuk-caption-l { "Request " (request.id) }
        h1 { (request.draft.component.name.as_str()) " for " (request.draft.organisation) }
        p { (page::state_tag(request.state)) }
        p #clock {
            @if let Some(decided) = request.decided_at {
                "Submitted " (page::when(request.created_at)) "; " (request.state.label().to_lowercase()) " after " (page::elapsed(request.created_at, decided)) "."
            } @else {
                "Submitted " (page::when(request.created_at)) ": " strong { (page::elapsed(request.created_at, now)) } " ago and still open."
            }
        }
        @if let Some(decision) = &request.decision {
            div.nhsuk-inset-text #decision {
                span.nhsuk-u-visually-hidden { "Information: " }
                h2.nhsuk-heading-s { "Decision: " (request.state.label()) }
                p { (decision.reason) }
                p.nhsuk-body-s {
                    "Decided by " (decision.by)
                    @if decision.reused { " (reusing " (decision.reused_from.as_deref().unwrap_or("an earlier decision")) ")" }
                    @if let Some(scope) = &decision.scope { ", " (scope) " scope" }
                    @if let Some(entry) = &decision.entry_id { ", entry " code { (entry) } }
                    "."
                }
                @if request.state.is_decision() && request.state != formulary_core::request::RequestState::Rejected {
                    p { "The gateway now serves it to " (request.draft.organisation) ": " a href=(component_href(&request.draft.component)) { "see the versions" } "." }
                }
            }
        }
        h2.nhsuk-heading-m { "What was asked" }
        dl.nhsuk-summary-list {
            (summary_row("Requested by", html! { (request.requester.name) }))
            (summary_row("Tool", html! { a href=(component_href(&request.draft.component)) { (request.draft.component.purl()) } " " code { (request.draft.range.as_str()) } }))
            (summary_row("Problem and scope", page::prose(&request.draft.problem)))
            (summary_row("Data involved", html! { (request.draft.data_class.label()) }))
            (summary_row("Where it will run", page::prose(&request.draft.environment)))
            (summary_row("Alternatives considered", if request.draft.alternatives.is_empty() { page::none() } else { page::prose(&request.draft.alternatives) }))
            (summary_row("Number of users", html! { (request.draft.users) }))
            (summary_row("Credentials or APIs", if request.draft.credentials.is_empty() { page::none() } else { page::prose(&request.draft.credentials) }))
        }
        h2.nhsuk-heading-m { "Evidence gathered" }
        dl.nhsuk-summary-list #evidence {
            (summary_row("Licence (newest version)", html! { @if let Some(licence) = &latest_licence { (licence) } @else { "Not known yet" } }))
            (summary_row("Advisories", html! {
                @if report.advisories.is_empty() { "None known" }
                @else { ul { @for advisory in &report.advisories { li { (advisory.id) " (" (advisory.severity.as_deref().unwrap_or("unrated")) "): " (advisory.summary) } } } }
            }))
            (summary_row("Release history", html! {
                @if report.versions.is_empty() { "No versions seen through the gateway yet" }
                @else {
                    (report.versions.len()) " versions seen; newest " (report.versions[0].decision.version)
                    @if let Some(published) = report.versions[0].published { ", published " (published.format("%-d %b %Y")) }
                    "; allowed now for " (request.draft.organisation) ": " (report.versions.iter().filter(|row| row.decision.allowed).count())
                }
            }))
            (summary_row("Decisions elsewhere", html! {
                @if report.precedents.is_empty() { "None" }
                @else { ul { @for precedent in &report.precedents { li { (precedent.organisation) ": " (page::status_tag(precedent.status)) " " code { (precedent.range) } " – " (precedent.reason) } } } }
            }))
        }
        (super::evidence::section(upstream))
        h2.nhsuk-heading-m { "Review stages" }
        table.nhsuk-table #stages {
            caption.nhsuk-table__caption.nhsuk-u-visually-hidden { "Review stages" }
            thead.nhsuk-table__head { tr { th scope="col" { "Stage" } th scope="col" { "Assigned to" } th scope="col" { "Signed off" } th scope="col" { "Note" } } }
            tbody.nhsuk-table__body {
                @for stage in ReviewStage::ALL {
                    tr.nhsuk-table__row {
                        td.nhsuk-table__cell { (stage.label()) @if facts.stages_needed_for_approval().contains(stage) { " (required)" } @else { " (if needed)" } }
                        td.nhsuk-table__cell { @if let Some(assignment) = facts.assignments.iter().find(|assignment| assignment.stage == *stage) { (assignment.user_name) } @else { "–" } }
                        @if let Some(event) = signed(*stage) {
                            td.nhsuk-table__cell { (event.verdict.map_or("", |verdict| verdict.as_str())) " by " (event.actor.name) ", " (page::when(event.at)) }
                            td.nhsuk-table__cell { (page::prose(&event.body)) }
                        } @else {
                            td.nhsuk-table__cell { "Not yet" }
                            td.nhsuk-table__cell { }
                        }
                    }
                }
            }
        }
        h2.nhsuk-heading-m { "Timeline" }
        ol.formulary-timeline #timeline {
            @for event in &record.events {
                li {
                    span.formulary-when { (page::when(event.at)) }
                    strong { (event.actor.name) }
                    @match event.kind {
                        EventKind::Submitted => { " submitted the request." }
                        EventKind::Comment => { " commented:" }
                        EventKind::SignOff => { " signed off the " (event.stage.map_or("", |stage| stage.label()).to_lowercase()) " (" (event.verdict.map_or("", |verdict| verdict.as_str())) "):" }
                        EventKind::Decision => { " decided: " (request.state.label().to_lowercase()) "." }
                        EventKind::Granted => { " granted it at once from an existing entry." }
                        EventKind::Withdrawal => { " withdrew the request." }
                    }
                    @if event.kind != EventKind::Submitted && !event.body.is_empty() { (page::prose(&event.body)) }
                }
            }
        }
        @if can_comment {
            form method="post" action={ "/requests/" (request.id) "/comments" } novalidate {
                (page::csrf_field(csrf))
                (page::textarea(Field { name: "body", label: "Add a comment", hint: Some("Questions and answers between the requester and the reviewers; everyone on the request sees them"), value: "" }, 3, errors_for("comment")))
                button.nhsuk-button.nhsuk-button--secondary type="submit" { "Add comment" }
            }
        }
        @if facts.ready_to_decide() {
            p #ready { strong.nhsuk-tag.nhsuk-tag--green { "Ready to decide" } " Every stage an approval needs is signed off." }
        }
        (super::review::assignment_forms(&facts, request.id, viewer, errors_for("assign")))
        @if !stages.is_empty() {
            h2.nhsuk-heading-m { "Sign off a review stage" }
            form method="post" action={ "/requests/" (request.id) "/sign-offs" } novalidate {
                (page::csrf_field(csrf))
                (page::radios("stage", "Stage", None, &stages, "", errors_for("sign-off")))
                (page::radios("verdict", "Verdict", None, &[("passed", "Passed"), ("concerns", "Concerns for the approver")], "", errors_for("sign-off")))
                (page::textarea(Field { name: "note", label: "What you checked and found", hint: None, value: "" }, 3, errors_for("sign-off")))
                button.nhsuk-button type="submit" { "Sign off stage" }
            }
        }
        @if can_decide {
            h2.nhsuk-heading-m { "Decide" }
            @if !missing.is_empty() {
                p { "Approval needs these stages signed off first: " (missing.iter().map(|stage| stage.label()).collect::<Vec<_>>().join(", ")) ". You can reject at any time, with a reason." }
            }
            form method="post" action={ "/requests/" (request.id) "/decision" } novalidate {
                (page::csrf_field(csrf))
                (page::radios("outcome", "Decision", None, &outcomes, "", errors_for("decision")))
                @if national_approver {
                    (page::radios("scope", "Scope", Some("A national decision applies to every organisation"), &[("organisation", "This organisation only"), ("national", "National formulary")], "organisation", errors_for("decision")))
                }
                (page::textarea(Field { name: "reason", label: "Reason", hint: Some("Published in the decision log"), value: "" }, 3, errors_for("decision")))
                (page::textarea(Field { name: "constraints", label: "Constraints of use (for approval with constraints)", hint: None, value: "" }, 2, errors_for("decision")))
                (page::input(Field { name: "expires", label: "Pilot end date (optional)", hint: Some("YYYY-MM-DD; pilots run 90 days when empty"), value: "" }, "text", Some("off"), errors_for("decision")))
                (page::input(Field { name: "mentor", label: "Mentor (optional)", hint: Some("The named person who answers questions about the tool"), value: "" }, "text", Some("off"), errors_for("decision")))
                (page::input(Field { name: "reused_from", label: "Reuses an earlier review (optional)", hint: Some("An entry id or request number whose review you relied on"), value: "" }, "text", Some("off"), errors_for("decision")))
                button.nhsuk-button type="submit" { "Record decision" }
            }
        }
        @if can_withdraw {
            form method="post" action={ "/requests/" (request.id) "/withdraw" } {
                (page::csrf_field(csrf))
                input type="hidden" name="note" value="Withdrawn by the requester";
                button.nhsuk-button.nhsuk-button--secondary type="submit" { "Withdraw this request" }
            }
        }
    }
}

pub(crate) async fn after_action(
    state: &AppState,
    signed_in: &SignedIn,
    id: i64,
    form: &'static str,
    outcome: Result<(), WorkflowError>,
) -> Result<Response, WebError> {
    match outcome {
        Ok(()) => Ok(Redirect::to(&format!("/requests/{id}")).into_response()),
        Err(WorkflowError::Invalid(errors)) => {
            render_request(
                state,
                signed_in,
                id,
                ActionErrors { errors, form },
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
        Err(error) => Err(WebError::from(crate::error::ApiError::from(error))),
    }
}

/// A comment, as posted.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct CommentForm {
    #[serde(default)]
    body: String,
}

/// `POST /requests/{id}/comments`.
pub(crate) async fn comment(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    posted: PostedForm<CommentForm>,
) -> Result<Response, WebError> {
    let outcome =
        workflow::comment(&state, &posted.signed_in.principal, id, &posted.form.body).await;
    after_action(&state, &posted.signed_in, id, "comment", outcome).await
}

/// `POST /requests/{id}/sign-offs`.
pub(crate) async fn sign_off(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    posted: PostedForm<SignOffForm>,
) -> Result<Response, WebError> {
    let outcome = workflow::sign_off(&state, &posted.signed_in.principal, id, &posted.form).await;
    after_action(&state, &posted.signed_in, id, "sign-off", outcome).await
}

/// `POST /requests/{id}/decision`.
pub(crate) async fn decide(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    posted: PostedForm<DecisionForm>,
) -> Result<Response, WebError> {
    let outcome = workflow::decide(&state, &posted.signed_in.principal, id, &posted.form)
        .await
        .map(|_| ());
    after_action(&state, &posted.signed_in, id, "decision", outcome).await
}

/// A withdrawal, as posted.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct WithdrawForm {
    #[serde(default)]
    note: String,
}

/// `POST /requests/{id}/withdraw`.
pub(crate) async fn withdraw(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    posted: PostedForm<WithdrawForm>,
) -> Result<Response, WebError> {
    let outcome =
        workflow::withdraw(&state, &posted.signed_in.principal, id, &posted.form.note).await;
    after_action(&state, &posted.signed_in, id, "withdraw", outcome).await
}
