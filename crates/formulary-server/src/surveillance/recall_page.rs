//! `/recalls/{id}`: the recall page. Those who may see who has what see everyone (in their
//! organisations); a person on the recall (the link in their notice leads here) sees their own
//! part, and — while they are still exposed — a form to say why they stay on the recalled
//! version and until when (`POST /recalls/{id}/explain`, CSRF-checked, audited). Their reason
//! and day are then shown to everyone who follows the recall.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::NaiveDate;
use formulary_core::request::FieldError;
use maud::html;
use serde::Deserialize;

use super::inventory::visible_organisations;
use crate::error::ApiError;
use crate::state::AppState;
use crate::web::page::{self, Field};
use crate::web::session::{PostedForm, Viewer};
use crate::web::WebError;

/// The longest explanation kept.
pub(crate) const MAX_EXPLANATION_CHARS: usize = 2000;

/// Checks a person's reason for staying on a recalled version and the day they stay until
/// (`YYYY-MM-DD`, optional, after `today` and within a year of it); returns them, or the
/// problems with each field.
pub(crate) fn check_explanation(
    explanation: &str,
    until: Option<&str>,
    today: NaiveDate,
) -> Result<(String, Option<NaiveDate>), Vec<FieldError>> {
    let mut errors = Vec::new();
    let explanation = explanation.trim();
    let length = explanation.chars().count();
    if length < 10 {
        errors.push(FieldError::new(
            "explanation",
            "Say why you stay on the recalled version, in at least 10 characters (for example, the exception the risk owner signed)",
        ));
    } else if length > MAX_EXPLANATION_CHARS {
        errors.push(FieldError::new(
            "explanation",
            "Shorten your reason to 2,000 characters or fewer; link to a longer document if there is one",
        ));
    }
    let until = match until.map(str::trim).filter(|text| !text.is_empty()) {
        None => None,
        Some(text) => match text.parse::<NaiveDate>() {
            Err(_) => {
                errors.push(FieldError::new(
                    "until",
                    "Enter the day you stay until as a date, for example 2027-03-31, or leave it empty",
                ));
                None
            }
            Ok(day) if day <= today => {
                errors.push(FieldError::new(
                    "until",
                    "The day you stay until must be after today; leave it empty if you do not know it",
                ));
                None
            }
            Ok(day) if day > today + chrono::Duration::days(366) => {
                errors.push(FieldError::new(
                    "until",
                    "Choose a day within a year from today; when it comes, record your reason again if you still stay",
                ));
                None
            }
            Ok(day) => Some(day),
        },
    };
    if errors.is_empty() {
        Ok((explanation.to_owned(), until))
    } else {
        Err(errors)
    }
}

/// What the page says after a change.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct PageQuery {
    #[serde(default)]
    done: String,
}

/// `GET /recalls/{id}`.
pub(crate) async fn page(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    Query(query): Query<PageQuery>,
) -> Result<Response, WebError> {
    render(
        &state,
        &viewer,
        &id,
        &Posted::default(),
        query.done == "explained",
    )
    .await
}

/// The explanation form, as posted.
#[derive(Debug, Default, Clone, Deserialize)]
pub(crate) struct ExplainForm {
    #[serde(default)]
    explanation: String,
    #[serde(default)]
    until: String,
}

/// What was posted and what was wrong with it, to show again.
#[derive(Debug, Default)]
struct Posted {
    form: ExplainForm,
    errors: Vec<FieldError>,
}

/// `POST /recalls/{id}/explain`: the signed-in person says why they stay and until when.
pub(crate) async fn explain(
    State(state): State<AppState>,
    Path(id): Path<String>,
    posted: PostedForm<ExplainForm>,
) -> Result<Response, WebError> {
    let viewer = &posted.signed_in.viewer;
    let today = chrono::Utc::now().date_naive();
    let until = Some(posted.form.until.as_str());
    match check_explanation(&posted.form.explanation, until, today) {
        Err(errors) => {
            let again = Posted {
                form: posted.form.clone(),
                errors,
            };
            render(&state, viewer, &id, &again, false).await
        }
        Ok((explanation, until)) => {
            let changed = state
                .database
                .explain_recall(&id, &posted.signed_in.principal.actor, &explanation, until)
                .await
                .map_err(ApiError::from)?;
            if changed == 0 {
                return Err(WebError::from(ApiError::not_found(
                    "you have no open part in this recall (you may have moved, or explained already); your open recalls are listed at /api/v1/me/recalls",
                ))
                .seen_by(viewer));
            }
            Ok(Redirect::to(&format!("/recalls/{id}?done=explained")).into_response())
        }
    }
}

/// The page, with the form's values and problems when it was posted with some.
async fn render(
    state: &AppState,
    viewer: &Viewer,
    id: &str,
    posted: &Posted,
    explained: bool,
) -> Result<Response, WebError> {
    let Some(principal) = viewer.principal.clone() else {
        return Err(ApiError::unauthenticated().into());
    };
    // Those who may see who has what see everyone (in their organisations); a person on the
    // recall (the link in their notice leads here) sees their own part only.
    let visible = visible_organisations(&principal);
    state.database.resolve_recalls().await?;
    let (recall, mut people) = state
        .database
        .recall(id)
        .await?
        .ok_or_else(|| ApiError::not_found("no recall has this id"))?;
    match visible {
        Ok(None) => {}
        Ok(Some(visible)) => people.retain(|person| {
            visible
                .iter()
                .any(|code| code.as_str() == person.organisation)
                || person.person == principal.actor
        }),
        Err(refusal) => {
            people.retain(|person| person.person == principal.actor);
            if people.is_empty() {
                return Err(refusal.into());
            }
        }
    }
    let exposed_mine: Vec<&formulary_store::RecallPerson> = people
        .iter()
        .filter(|person| person.person == principal.actor && person.resolved_at.is_none())
        .collect();
    let csrf = viewer.csrf_token.as_deref().unwrap_or("");
    let errors = &posted.errors;
    let title = format!("Recall of {}", recall.component);
    let content = html! {
        (page::error_summary(errors))
        @if explained {
            div.nhsuk-inset-text #explained {
                span.nhsuk-u-visually-hidden { "Information: " }
                p { "Your reason is recorded. You no longer count as exposed on this recall; the people who follow it see your reason" @if people.iter().any(|person| person.person == principal.actor && person.explained_until.is_some()) { " and the day you stay until (after it, you count as exposed again)" } "." }
            }
        }
        h1 { (title) }
        p class="nhsuk-body-l" { (recall.reason) }
        dl class="nhsuk-summary-list" {
            div class="nhsuk-summary-list__row" { dt class="nhsuk-summary-list__key" { "Versions recalled" } dd class="nhsuk-summary-list__value" { @if recall.versions.is_empty() { "none any more" } @else { (recall.versions.join(", ")) } } }
            div class="nhsuk-summary-list__row" { dt class="nhsuk-summary-list__key" { "Move to" } dd class="nhsuk-summary-list__value" { (recall.move_to.clone().unwrap_or_else(|| "no allowed version is known yet: ask for an alternative".to_owned())) } }
            div class="nhsuk-summary-list__row" { dt class="nhsuk-summary-list__key" { "Opened" } dd class="nhsuk-summary-list__value" { (page::when(recall.opened_at)) " by " (recall.opened_by) } }
            div class="nhsuk-summary-list__row" { dt class="nhsuk-summary-list__key" { "Progress" } dd class="nhsuk-summary-list__value" { (recall.told) " told, " (recall.resolved) " moved, explained or lifted, " strong { (recall.exposed) " still exposed" } @if let Some(closed) = recall.closed_at { " (closed " (page::when(closed)) ")" } } }
            @if let (Some(at), Some(reason)) = (recall.lifted_at, &recall.lift_reason) {
                div class="nhsuk-summary-list__row" { dt class="nhsuk-summary-list__key" { "Lifted" } dd class="nhsuk-summary-list__value" { (page::when(at)) ": " (reason) } }
            }
        }
        @if !exposed_mine.is_empty() {
            h2.nhsuk-heading-m #stay { "If you must stay on this version" }
            p { "You have " (exposed_mine.iter().map(|person| person.version.as_str()).collect::<Vec<_>>().join(", ")) ". Moving to the version above is the way off this recall: a download of it through the gateway, or a new report of your environment, takes you off. If you cannot move yet, say why and until when; you then no longer count as exposed, and the people who follow this recall see your reason." }
            form method="post" action={ "/recalls/" (recall.id) "/explain" } novalidate {
                (page::csrf_field(csrf))
                (page::textarea(Field { name: "explanation", label: "Why you stay on this version", hint: Some("For example, the exception your risk owner signed, or what must change before you can move. At least 10 characters."), value: &posted.form.explanation }, 4, errors))
                (page::input(Field { name: "until", label: "The day you stay until (optional)", hint: Some("As a date, for example 2027-03-31, within a year. After it you count as exposed again."), value: &posted.form.until }, "date", None, errors))
                button.nhsuk-button type="submit" { "Record why I stay" }
            }
        }
        p { a href={ "/api/v1/recalls/" (recall.id) "?format=csv" } { "Export the people as CSV" } }
        table class="nhsuk-table" {
            caption class="nhsuk-table__caption" { "People and environments" }
            thead class="nhsuk-table__head" { tr {
                th scope="col" { "Who" } th scope="col" { "Organisation" } th scope="col" { "Where" }
                th scope="col" { "Version" } th scope="col" { "Status" }
            } }
            tbody class="nhsuk-table__body" {
                @for person in &people {
                    tr class="nhsuk-table__row" {
                        td class="nhsuk-table__cell" { (person.person_name) }
                        td class="nhsuk-table__cell" { (person.organisation) }
                        td class="nhsuk-table__cell" { @if person.environment.is_empty() { "downloaded through the gateway" } @else { "reported: " (person.environment) } }
                        td class="nhsuk-table__cell" { (person.version) }
                        td class="nhsuk-table__cell" {
                            @match &person.resolution {
                                Some(resolution) => {
                                    (resolution)
                                    @if let Some(explanation) = &person.explanation { ": " (explanation) }
                                    @if let Some(until) = person.explained_until { " (until " (until) ")" }
                                }
                                None => { strong { "exposed" } }
                            }
                        }
                    }
                }
            }
        }
    };
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    Ok(page::render_with_status(
        status,
        viewer,
        page::Section::Metrics,
        &title,
        !errors.is_empty(),
        content,
    )
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TODAY: NaiveDate = match NaiveDate::from_ymd_opt(2026, 12, 5) {
        Some(day) => day,
        None => panic!("a real day"),
    };

    #[test]
    fn a_reason_and_a_day_in_the_coming_year_are_taken() {
        let (text, until) =
            check_explanation("  risk owner signed RA-12  ", Some("2027-01-31"), TODAY).unwrap();
        assert_eq!(text, "risk owner signed RA-12");
        assert_eq!(until, NaiveDate::from_ymd_opt(2027, 1, 31));
        assert_eq!(
            check_explanation("risk owner signed RA-12", Some(""), TODAY)
                .unwrap()
                .1,
            None
        );
    }

    #[test]
    fn short_reasons_and_bad_days_are_refused_field_by_field() {
        let fields = |explanation: &str, until: &str| -> Vec<&'static str> {
            check_explanation(explanation, Some(until), TODAY)
                .unwrap_err()
                .into_iter()
                .map(|error| error.field)
                .collect()
        };
        assert_eq!(fields("too short", ""), ["explanation"]);
        assert_eq!(fields(&"x".repeat(2001), ""), ["explanation"]);
        assert_eq!(fields("a good reason", "31/01/2027"), ["until"]);
        assert_eq!(fields("a good reason", "2026-12-05"), ["until"]);
        assert_eq!(fields("a good reason", "2028-01-01"), ["until"]);
        assert_eq!(fields("", "yesterday"), ["explanation", "until"]);
    }
}
