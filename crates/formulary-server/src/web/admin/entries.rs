//! `/admin/{org}/entries`: an organisation's entries (approvals, pilots, prohibitions) and
//! exceptions (an allowing entry that waives an advisory or the national prohibition until it
//! expires): list, add with the evidence fields the API takes, and remove with a reason. Who
//! decided is always the signed-in person (S10); the entry's rules are checked by the core.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{NaiveDate, Utc};
use formulary_core::ecosystems::VersionRange;
use formulary_core::request::FieldError;
use formulary_core::{Component, EntryDraft, Organisation, Status, Waiver};
use formulary_store::{EntryFilter, StoreError, StoredEntry};
use maud::html;
use serde::Deserialize;

use super::{caption, done_banner, organisation_for, select, sentence, subnav};
use crate::error::ApiError;
use crate::state::AppState;
use crate::web::page::{self, Field, Section};
use crate::web::session::{PostedForm, SignedIn};
use crate::web::WebError;

/// What the page confirms after a change (`?done=`).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Done {
    #[serde(default)]
    done: String,
}

/// The new entry's form, as posted.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub(crate) struct EntryForm {
    component: String,
    range: String,
    status: String,
    reason: String,
    constraints: String,
    expires: String,
    review_date: String,
    waives: String,
    mentor: String,
}

fn optional_text(text: &str) -> Option<String> {
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

fn optional_day(
    errors: &mut Vec<FieldError>,
    field: &'static str,
    text: &str,
) -> Option<NaiveDate> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    match text.parse::<NaiveDate>() {
        Ok(day) if day > Utc::now().date_naive() => Some(day),
        Ok(_) => {
            errors.push(FieldError::new(field, "Enter a date in the future"));
            None
        }
        Err(_) => {
            errors.push(FieldError::new(
                field,
                "Enter a date as YYYY-MM-DD, for example 2027-03-31",
            ));
            None
        }
    }
}

impl EntryForm {
    /// The entry the form describes, decided by `decided_by` for `organisation`.
    fn check(
        &self,
        organisation: &Organisation,
        decided_by: &str,
    ) -> Result<EntryDraft, Vec<FieldError>> {
        let mut errors = Vec::new();
        let component = match self.component.trim().parse::<Component>() {
            Ok(component) => Some(component),
            Err(error) => {
                errors.push(FieldError::new(
                    "component",
                    format!(
                        "Enter the component as a package URL, for example pkg:pypi/requests or pkg:cran/readxl ({})",
                        error
                    ),
                ));
                None
            }
        };
        let range = component.as_ref().and_then(|component| {
            let text = self.range.trim();
            VersionRange::parse(
                component.ecosystem(),
                if text.is_empty() { "*" } else { text },
            )
            .map_err(|error| {
                errors.push(FieldError::new(
                    "range",
                    format!(
                        "Enter versions in the ecosystem's syntax, for example >=2.20,<3 ({error})"
                    ),
                ));
            })
            .ok()
        });
        let status = self.status.parse::<Status>().ok();
        if status.is_none() {
            errors.push(FieldError::new("status", "Select the decision"));
        }
        if self.reason.trim().is_empty() {
            errors.push(FieldError::new(
                "reason",
                "Give the reason for the decision; it is published in the decision log",
            ));
        }
        let expires = optional_day(&mut errors, "expires", &self.expires);
        let review_date = optional_day(&mut errors, "review_date", &self.review_date);
        let mut waives = Vec::new();
        for text in self
            .waives
            .split([',', ' ', '\n'])
            .map(str::trim)
            .filter(|text| !text.is_empty())
        {
            match text.parse::<Waiver>() {
                Ok(waiver) => waives.push(waiver),
                Err(error) => {
                    errors.push(FieldError::new("waives", sentence(&error.to_string())));
                    break;
                }
            }
        }
        if !waives.is_empty() && expires.is_none() && !errors.iter().any(|e| e.field == "expires") {
            errors.push(FieldError::new(
                "expires",
                "An exception needs an expiry date: enter the last day it applies",
            ));
        }
        let (Some(component), Some(range), Some(status), true) =
            (component, range, status, errors.is_empty())
        else {
            return Err(errors);
        };
        let draft = EntryDraft {
            organisation: organisation.code.clone(),
            component,
            range,
            status,
            constraints: optional_text(&self.constraints),
            review_date,
            expires,
            waives,
            decided_by: decided_by.to_owned(),
            reason: self.reason.trim().to_owned(),
            mentor: optional_text(&self.mentor),
        };
        draft.validate().map_err(|error| {
            let message = sentence(&error.to_string());
            let field = if message.contains("expiry") {
                "expires"
            } else if message.contains("constraints") {
                "constraints"
            } else if message.contains("exception") || message.contains("prohibition") {
                "waives"
            } else if message.contains("reason") {
                "reason"
            } else {
                "status"
            };
            vec![FieldError::new(field, message)]
        })?;
        Ok(draft)
    }
}

fn entry_rows(entries: &[StoredEntry], code: &str) -> maud::Markup {
    html! {
        table.nhsuk-table #entries {
            caption.nhsuk-table__caption.nhsuk-u-visually-hidden { "Entries of " (code) }
            thead.nhsuk-table__head { tr {
                th scope="col" { "Component" } th scope="col" { "Decision" } th scope="col" { "Reason" } th scope="col" { "Expires" } th scope="col" { "Remove" }
            } }
            tbody.nhsuk-table__body {
                @for stored in entries {
                    @let draft = &stored.entry.draft;
                    tr.nhsuk-table__row {
                        td.nhsuk-table__cell { code { (draft.component.purl()) } " " code { (draft.range.as_str()) } }
                        td.nhsuk-table__cell {
                            (page::status_tag(draft.status))
                            @if !draft.waives.is_empty() {
                                " " strong.nhsuk-tag.nhsuk-tag--orange { "Exception" }
                                br; "Waives " (draft.waives.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "))
                            }
                        }
                        td.nhsuk-table__cell { (draft.reason) br; span.nhsuk-body-s { "Decided by " (draft.decided_by) ", " (page::when(stored.entry.created_at)) } }
                        td.nhsuk-table__cell { @if let Some(day) = draft.expires { (day.format("%-d %B %Y")) } @else { "–" } }
                        td.nhsuk-table__cell {
                            a href={ "/admin/" (code) "/entries/" (stored.entry.id) "/remove" } { "Remove" span.nhsuk-u-visually-hidden { " the entry for " (draft.component.purl()) " " (draft.range.as_str()) } }
                        }
                    }
                }
            }
        }
    }
}

async fn render(
    state: &AppState,
    signed_in: &SignedIn,
    organisation: &Organisation,
    form: &EntryForm,
    errors: &[FieldError],
    done: Option<&str>,
    status: StatusCode,
) -> Result<Response, WebError> {
    let entries = state
        .database
        .list_entries(&EntryFilter {
            organisation: Some(organisation.code.clone()),
            component: None,
            include_removed: false,
        })
        .await?;
    let csrf = signed_in.viewer.csrf_token.as_deref().unwrap_or("");
    let code = organisation.code.as_str();
    let statuses: Vec<(&str, &str)> = Status::ALL
        .iter()
        .map(|status| (status.as_str(), status.as_str()))
        .collect();
    let content = html! {
        (subnav(organisation, "entries"))
        (page::error_summary(errors))
        (done_banner(done))
        (caption(organisation))
        h1 { "Entries and exceptions" }
        p { "Entries decide what " (code) " may use. An exception is an allowing entry that sets aside an advisory or the national prohibition until its expiry date. Removed entries stay in the history and the audit log." }
        @if entries.is_empty() { p { "No entries yet." } } @else { (entry_rows(&entries, code)) }
        div.nhsuk-grid-row { div.nhsuk-grid-column-two-thirds {
            h2.nhsuk-heading-m #add { "Add an entry or exception" }
            form method="post" action={ "/admin/" (code) "/entries" } novalidate {
                (page::csrf_field(csrf))
                (page::input(Field { name: "component", label: "Component", hint: Some("A package URL, for example pkg:pypi/requests or pkg:cran/readxl"), value: &form.component }, "text", Some("off"), errors))
                (page::input(Field { name: "range", label: "Versions (optional)", hint: Some("For example >=2.20,<3; empty covers every version"), value: &form.range }, "text", Some("off"), errors))
                (select("status", "Decision", None, &statuses, if form.status.is_empty() { "approved" } else { &form.status }, errors))
                (page::textarea(Field { name: "reason", label: "Reason", hint: Some("Published in the decision log"), value: &form.reason }, 3, errors))
                (page::textarea(Field { name: "constraints", label: "Constraints of use (for approved-with-constraints)", hint: None, value: &form.constraints }, 2, errors))
                (page::input(Field { name: "waives", label: "Waives (for an exception)", hint: Some("Advisory ids such as PYSEC-2018-28, or national-prohibition, separated by commas"), value: &form.waives }, "text", Some("off"), errors))
                (page::input(Field { name: "expires", label: "Expires (needed for pilots and exceptions)", hint: Some("The last day it applies, as YYYY-MM-DD"), value: &form.expires }, "text", Some("off"), errors))
                (page::input(Field { name: "review_date", label: "Review date (optional)", hint: Some("When to look at it again, as YYYY-MM-DD"), value: &form.review_date }, "text", Some("off"), errors))
                (page::input(Field { name: "mentor", label: "Mentor (optional)", hint: Some("The named person who answers questions about the component"), value: &form.mentor }, "text", Some("off"), errors))
                button.nhsuk-button type="submit" { "Add entry" }
            }
        } }
    };
    let title = format!("Entries of {code}");
    Ok(page::render_with_status(
        status,
        &signed_in.viewer,
        Section::Admin,
        &title,
        !errors.is_empty(),
        content,
    )
    .into_response())
}

fn done_message(done: &str) -> Option<&'static str> {
    match done {
        "added" => Some("The entry has been added and applies to the gateway now."),
        "removed" => Some("The entry has been removed; it stays in the history."),
        _ => None,
    }
}

/// `GET /admin/{org}/entries`.
pub(crate) async fn list(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Path(org): Path<String>,
    Query(done): Query<Done>,
) -> Result<Response, WebError> {
    let organisation = organisation_for(&state, &signed_in, &org).await?;
    render(
        &state,
        &signed_in,
        &organisation,
        &EntryForm::default(),
        &[],
        done_message(&done.done),
        StatusCode::OK,
    )
    .await
}

/// `POST /admin/{org}/entries`.
pub(crate) async fn add(
    State(state): State<AppState>,
    Path(org): Path<String>,
    posted: PostedForm<EntryForm>,
) -> Result<Response, WebError> {
    let PostedForm { signed_in, form } = posted;
    let organisation = organisation_for(&state, &signed_in, &org).await?;
    let draft = match form.check(&organisation, &signed_in.principal.name) {
        Ok(draft) => draft,
        Err(errors) => {
            return render(
                &state,
                &signed_in,
                &organisation,
                &form,
                &errors,
                None,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
    };
    match state
        .database
        .add_entry(&draft, &signed_in.principal.actor)
        .await
    {
        Ok(_) => {}
        Err(StoreError::Invalid(error)) => {
            let errors = [FieldError::new("status", sentence(&error.to_string()))];
            return render(
                &state,
                &signed_in,
                &organisation,
                &form,
                &errors,
                None,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
        }
        Err(error) => return Err(error.into()),
    }
    state.snapshot.refresh(&state.database).await?;
    Ok(Redirect::to(&format!("/admin/{}/entries?done=added", organisation.code)).into_response())
}

/// A removal, as posted.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RemovalForm {
    removal_reason: String,
}

/// The entry named in the path, when it is this organisation's and in force.
async fn own_entry(
    state: &AppState,
    organisation: &Organisation,
    id: &str,
) -> Result<StoredEntry, WebError> {
    let stored = state.database.entry(id).await?;
    if stored.entry.draft.organisation != organisation.code || stored.removal.is_some() {
        return Err(ApiError::not_found(format!(
            "{} has no entry '{}' in force",
            organisation.code,
            id.escape_debug()
        ))
        .into());
    }
    Ok(stored)
}

fn removal_page(
    signed_in: &SignedIn,
    organisation: &Organisation,
    stored: &StoredEntry,
    errors: &[FieldError],
    status: StatusCode,
) -> Response {
    let csrf = signed_in.viewer.csrf_token.as_deref().unwrap_or("");
    let draft = &stored.entry.draft;
    let content = html! {
        (subnav(organisation, "entries"))
        div.nhsuk-grid-row { div.nhsuk-grid-column-two-thirds {
            (page::error_summary(errors))
            (caption(organisation))
            h1 { "Remove the entry for " (draft.component.name.as_str()) }
            dl.nhsuk-summary-list #entry {
                div.nhsuk-summary-list__row { dt.nhsuk-summary-list__key { "Component" } dd.nhsuk-summary-list__value { code { (draft.component.purl()) } " " code { (draft.range.as_str()) } } }
                div.nhsuk-summary-list__row { dt.nhsuk-summary-list__key { "Decision" } dd.nhsuk-summary-list__value { (page::status_tag(draft.status)) } }
                div.nhsuk-summary-list__row { dt.nhsuk-summary-list__key { "Reason" } dd.nhsuk-summary-list__value { (draft.reason) } }
            }
            p { "The entry stops applying at once; it stays in the history and the audit log with your reason." }
            form method="post" action={ "/admin/" (organisation.code) "/entries/" (stored.entry.id) "/remove" } novalidate {
                (page::csrf_field(csrf))
                (page::textarea(Field { name: "removal_reason", label: "Why is it removed?", hint: Some("For example: the pipeline moved to version 2.32, so the exception is no longer needed"), value: "" }, 3, errors))
                button.nhsuk-button.nhsuk-button--warning type="submit" { "Remove entry" }
            }
            p { a href={ "/admin/" (organisation.code) "/entries" } { "Keep it and go back" } }
        } }
    };
    page::render_with_status(
        status,
        &signed_in.viewer,
        Section::Admin,
        "Remove an entry",
        !errors.is_empty(),
        content,
    )
    .into_response()
}

/// `GET /admin/{org}/entries/{id}/remove`: asks why.
pub(crate) async fn confirm_removal(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Path((org, id)): Path<(String, String)>,
) -> Result<Response, WebError> {
    let organisation = organisation_for(&state, &signed_in, &org).await?;
    let stored = own_entry(&state, &organisation, &id).await?;
    Ok(removal_page(
        &signed_in,
        &organisation,
        &stored,
        &[],
        StatusCode::OK,
    ))
}

/// `POST /admin/{org}/entries/{id}/remove`: only an entry of this organisation, with a reason.
pub(crate) async fn remove(
    State(state): State<AppState>,
    Path((org, id)): Path<(String, String)>,
    posted: PostedForm<RemovalForm>,
) -> Result<Response, WebError> {
    let PostedForm { signed_in, form } = posted;
    let organisation = organisation_for(&state, &signed_in, &org).await?;
    let stored = own_entry(&state, &organisation, &id).await?;
    let reason = form.removal_reason.trim();
    if reason.is_empty() {
        let errors = [FieldError::new(
            "removal_reason",
            "Say why the entry is removed; the reason is kept in its history",
        )];
        return Ok(removal_page(
            &signed_in,
            &organisation,
            &stored,
            &errors,
            StatusCode::UNPROCESSABLE_ENTITY,
        ));
    }
    state
        .database
        .remove_entry(&id, &signed_in.principal.actor, reason)
        .await?;
    state.snapshot.refresh(&state.database).await?;
    Ok(Redirect::to(&format!(
        "/admin/{}/entries?done=removed",
        organisation.code
    ))
    .into_response())
}
