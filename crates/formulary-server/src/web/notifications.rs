//! `/notifications`: what the signed-in person has been told, marking it read, and whether they
//! are also emailed. Both changes are CSRF-protected forms; the email choice is audited.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use formulary_store::Notification;
use maud::{html, Markup};
use serde::Deserialize;

use super::account::{Done, Empty};
use super::page::{self, Section};
use super::session::{PostedForm, SignedIn, Viewer};
use super::WebError;
use crate::state::AppState;

/// A list of notifications, newest first, unread ones marked.
pub(crate) fn list(notifications: &[Notification]) -> Markup {
    html! {
        ul.nhsuk-list.formulary-notifications {
            @for note in notifications {
                li.nhsuk-u-margin-bottom-3 {
                    @if note.read_at.is_none() { strong.nhsuk-tag.nhsuk-tag--blue { "New" } " " }
                    a href=(note.link) { (note.subject) }
                    br;
                    span.nhsuk-body-s { (note.body) " — " (page::when(note.created_at)) }
                }
            }
        }
    }
}

/// The newest unread notifications for the home page, if someone is signed in.
pub(crate) async fn unread_for_home(state: &AppState, viewer: &Viewer) -> Option<Markup> {
    let person = viewer.principal.as_ref()?.user.as_ref()?;
    let notes = state.database.notifications_for(&person.id, 5).await.ok()?;
    let unread: Vec<Notification> = notes
        .into_iter()
        .filter(|note| note.read_at.is_none())
        .collect();
    if unread.is_empty() {
        return None;
    }
    Some(html! {
        div.nhsuk-inset-text {
            h2.nhsuk-heading-s { "For you" }
            (list(&unread))
            p { a href="/notifications" { "All your notifications" } }
        }
    })
}

/// `GET /notifications`.
pub(crate) async fn show(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Query(done): Query<Done>,
) -> Result<Response, WebError> {
    let Some(person) = signed_in.principal.user.clone() else {
        return Err(
            crate::error::ApiError::forbidden("notifications are for people's accounts").into(),
        );
    };
    let notes = state.database.notifications_for(&person.id, 100).await?;
    let emailed = state.database.email_notifications(&person.id).await?;
    let csrf = signed_in.viewer.csrf_token.as_deref().unwrap_or("");
    let unread = notes.iter().filter(|note| note.read_at.is_none()).count();
    let content = html! {
        div.nhsuk-grid-row { div.nhsuk-grid-column-two-thirds {
            @match done.done() {
                "read" => div.nhsuk-inset-text { p { "Every notification is marked read." } },
                "email" => div.nhsuk-inset-text { p { "Your email choice is saved." } },
                _ => {}
            }
            h1 { "Your notifications" }
            p { "Questions about your requests, sign-offs and decisions, and work waiting for you. " (unread) " unread." }
            @if notes.is_empty() {
                p { "Nothing yet." }
            } @else {
                (list(&notes))
                form method="post" action="/notifications/read" {
                    (page::csrf_field(csrf))
                    button.nhsuk-button.nhsuk-button--secondary type="submit" { "Mark all as read" }
                }
            }
            h2.nhsuk-heading-m { "Email" }
            @match person.email.as_deref() {
                Some(address) if !address.trim().is_empty() => {
                    p { "Notifications are " (if emailed { "also emailed" } else { "not emailed" }) " to " strong { (address) } "." }
                    form method="post" action="/notifications/email" {
                        (page::csrf_field(csrf))
                        input type="hidden" name="email" value=(if emailed { "off" } else { "on" });
                        button.nhsuk-button.nhsuk-button--secondary type="submit" { (if emailed { "Stop emailing me" } else { "Email me too" }) }
                    }
                }
                _ => p { "Your account has no email address, so notifications are shown here only. Ask your organisation's admin to add one." },
            }
        } }
    };
    Ok(page::render_with_status(
        StatusCode::OK,
        &signed_in.viewer,
        Section::Account,
        "Your notifications",
        false,
        content,
    )
    .into_response())
}

/// `POST /notifications/read`.
pub(crate) async fn mark_read(
    State(state): State<AppState>,
    posted: PostedForm<Empty>,
) -> Result<Response, WebError> {
    state
        .database
        .mark_notifications_read(&posted.signed_in.principal.id)
        .await?;
    Ok(Redirect::to("/notifications?done=read").into_response())
}

/// The email choice, as posted.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct EmailForm {
    #[serde(default)]
    email: String,
}

/// `POST /notifications/email`.
pub(crate) async fn set_email(
    State(state): State<AppState>,
    posted: PostedForm<EmailForm>,
) -> Result<Response, WebError> {
    let principal = &posted.signed_in.principal;
    state
        .database
        .set_email_notifications(&principal.id, posted.form.email == "on", &principal.actor)
        .await?;
    Ok(Redirect::to("/notifications?done=email").into_response())
}
