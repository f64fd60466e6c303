//! `/device`: where a signed-in person approves the code `formulary setup` printed (device
//! sign-in, `api::device`). The page names the client asking; approving gives that client one
//! token for package clients in the person's name. CSRF-protected; audited as `device.approve`.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use formulary_core::request::FieldError;
use maud::html;
use serde::Deserialize;

use super::page::{self, Field, Section};
use super::session::{PostedForm, SignedIn};
use super::WebError;
use crate::api::device::typed_code;
use crate::state::AppState;

/// The code, from the address setup printed or as typed.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct CodeForm {
    code: String,
}

fn render(
    signed_in: &SignedIn,
    code: &str,
    client: Option<&str>,
    errors: &[FieldError],
    status: StatusCode,
) -> Response {
    let csrf = signed_in.viewer.csrf_token.as_deref().unwrap_or("");
    let content = html! {
        div.nhsuk-grid-row { div.nhsuk-grid-column-two-thirds {
            (page::error_summary(errors))
            h1 { "Sign in a device" }
            p { "Approve only a code you have just seen in your own terminal, from " code { "formulary setup" } ". Approving gives that program a token for package clients in your name (" (signed_in.principal.name) "), valid for 90 days; you can revoke it on " a href="/account" { "your account page" } "." }
            @if let Some(client) = client {
                p #device-client { "The code " strong { (code) } " was asked for by: " strong { (client) } }
            }
            form method="post" action="/device" novalidate {
                (page::csrf_field(csrf))
                (page::input(Field { name: "code", label: "Code shown by formulary setup", hint: Some("Eight letters, for example BCDF-GHJK"), value: code }, "text", Some("off"), errors))
                button.nhsuk-button type="submit" { "Approve this device" }
            }
        } }
    };
    page::render_with_status(
        status,
        &signed_in.viewer,
        Section::Account,
        "Sign in a device",
        !errors.is_empty(),
        content,
    )
    .into_response()
}

/// `GET /device?code=…`.
pub(crate) async fn show(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Query(form): Query<CodeForm>,
) -> Result<Response, WebError> {
    let code = typed_code(&form.code);
    let client = if code.is_empty() {
        None
    } else {
        state.database.pending_device_code(&code).await?
    };
    Ok(render(
        &signed_in,
        &code,
        client.as_deref(),
        &[],
        StatusCode::OK,
    ))
}

/// `POST /device`: approves the code for the signed-in person.
pub(crate) async fn approve(
    State(state): State<AppState>,
    posted: PostedForm<CodeForm>,
) -> Result<Response, WebError> {
    let PostedForm { signed_in, form } = posted;
    let code = typed_code(&form.code);
    let Some(user) = signed_in.principal.user.as_ref() else {
        return Ok(render(
            &signed_in,
            &code,
            None,
            &[FieldError::new(
                "code",
                "Only a person can approve a device",
            )],
            StatusCode::FORBIDDEN,
        ));
    };
    let approved = state
        .database
        .approve_device_code(&code, &user.username, &signed_in.principal.actor)
        .await?;
    let Some(client) = approved else {
        return Ok(render(
            &signed_in,
            &code,
            None,
            &[FieldError::new("code", "That code is not waiting for approval: it may be mistyped, older than ten minutes, or already approved. Check the code in your terminal, or run formulary setup again for a new one")],
            StatusCode::UNPROCESSABLE_ENTITY,
        ));
    };
    let content = html! {
        h1 { "Device approved" }
        p #device-approved { strong { (client) } " is signed in as " (signed_in.principal.name) ". Go back to your terminal: " code { "formulary setup" } " carries on by itself." }
    };
    Ok(page::render(
        &signed_in.viewer,
        Section::Account,
        "Device approved",
        false,
        content,
    )
    .into_response())
}
