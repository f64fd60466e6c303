//! `/reset-password/{secret}`: where a person opens the link an administrator gave them (for a
//! new account or a reset) and chooses a password. The secret in the link is the credential:
//! it works once and before it expires, only its digest is stored, and the page is never
//! cached. The post is also checked for its Origin. Using the link ends every session of the
//! account; it is audited as the person's own password change.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use formulary_core::request::FieldError;
use formulary_store::User;
use maud::html;

use super::page::{self, Field, Section};
use super::session::{csrf_refusal, field, read_form_body, same_origin, Viewer};
use super::WebError;
use crate::identity;
use crate::state::AppState;

fn no_store(mut response: Response) -> Response {
    response.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store, private"),
    );
    response
}

fn expired() -> Response {
    let content = html! {
        h1 { "This link no longer works" }
        p { "A password link works once, for a limited time, and a newer link replaces an older one. Ask your organisation's administrator for a new link." }
        p { a href="/" { "Go to the home page" } }
    };
    no_store(
        page::render_with_status(
            StatusCode::NOT_FOUND,
            &Viewer::default(),
            Section::Account,
            "This link no longer works",
            false,
            content,
        )
        .into_response(),
    )
}

fn form_page(secret: &str, user: &User, errors: &[FieldError], status: StatusCode) -> Response {
    let content = html! {
        div.nhsuk-grid-row { div.nhsuk-grid-column-two-thirds {
            (page::error_summary(errors))
            h1 { "Choose your password" }
            p { "For the account " strong { (user.username) } " (" (user.display_name) "). Every session of the account ends when you save it." }
            form method="post" action={ "/reset-password/" (secret) } novalidate {
                (page::input(Field { name: "new_password", label: "New password", hint: Some("At least 12 characters, and not easy to guess: a phrase of four or more unrelated words works well"), value: "" }, "password", Some("new-password"), errors))
                (page::input(Field { name: "confirm_password", label: "New password again", hint: None, value: "" }, "password", Some("new-password"), errors))
                button.nhsuk-button type="submit" { "Save password" }
            }
        } }
    };
    no_store(
        page::render_with_status(
            status,
            &Viewer::default(),
            Section::Account,
            "Choose your password",
            !errors.is_empty(),
            content,
        )
        .into_response(),
    )
}

/// `GET /reset-password/{secret}`.
pub(crate) async fn show(
    State(state): State<AppState>,
    Path(secret): Path<String>,
) -> Result<Response, WebError> {
    match state.database.password_reset_user(&secret).await? {
        Some(user) => Ok(form_page(&secret, &user, &[], StatusCode::OK)),
        None => Ok(expired()),
    }
}

/// `POST /reset-password/{secret}`.
pub(crate) async fn submit(
    State(state): State<AppState>,
    Path(secret): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, WebError> {
    if !same_origin(&headers, &state.public_origin()) {
        return Ok(csrf_refusal());
    }
    let pairs = match read_form_body(body).await {
        Ok(pairs) => pairs,
        Err(refused) => return Ok(refused.into_response()),
    };
    let Some(user) = state.database.password_reset_user(&secret).await? else {
        return Ok(expired());
    };
    let new = field(&pairs, "new_password").unwrap_or("");
    let confirm = field(&pairs, "confirm_password").unwrap_or("");
    let mut errors = Vec::new();
    if new.is_empty() {
        errors.push(FieldError::new("new_password", "Enter a new password"));
    } else if new != confirm {
        errors.push(FieldError::new(
            "confirm_password",
            "The two passwords differ; type the same password twice",
        ));
    } else if let Err(why) =
        identity::check_new_password(new, &[&user.username, &user.display_name])
    {
        errors.push(FieldError::new(
            "new_password",
            super::admin::sentence(&why),
        ));
    }
    if !errors.is_empty() {
        return Ok(form_page(
            &secret,
            &user,
            &errors,
            StatusCode::UNPROCESSABLE_ENTITY,
        ));
    }
    let password = new.to_owned();
    let hash = tokio::task::spawn_blocking(move || identity::hash_password(&password))
        .await
        .map_err(|error| {
            crate::error::ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Could not save the password",
                error.to_string(),
            )
        })?
        .map_err(|why| {
            crate::error::ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Could not save the password",
                why,
            )
        })?;
    if state
        .database
        .complete_password_reset(&secret, &hash)
        .await?
        .is_none()
    {
        return Ok(expired());
    }
    let content = html! {
        h1 { "Your password has been saved" }
        p { "Every earlier session of the account has ended. " a href="/sign-in" { "Sign in with your new password" } "." }
    };
    Ok(no_store(
        page::render(
            &Viewer::default(),
            Section::Account,
            "Your password has been saved",
            false,
            content,
        )
        .into_response(),
    ))
}
