//! Signing in and out. The sign-in form is protected against cross-site posting by a
//! double-submit cookie (there is no session yet); repeated failures for one username or from
//! one address are refused for a while; every sign-in, failure and sign-out is audited.

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use formulary_core::request::FieldError;
use maud::html;
use serde::Deserialize;

use super::page::{self, Field, Section};
use super::session::{
    self, cookie, csrf_refusal, read_form_body, same_origin, same_secret, set_cookie, with_cookie,
    Viewer, SESSION_COOKIE, SIGN_IN_COOKIE,
};
use crate::identity::{self, Credentials, LocalAccounts, SignInError};
use crate::state::{AppState, ClientAddress};

/// Adds `Retry-After` (seconds) to a throttled answer.
pub(crate) fn with_retry_after(mut response: Response, seconds: i64) -> Response {
    if let Ok(value) = axum::http::HeaderValue::from_str(&seconds.to_string()) {
        response
            .headers_mut()
            .insert(axum::http::header::RETRY_AFTER, value);
    }
    response
}

/// Query of the sign-in page.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Next {
    #[serde(default)]
    pub(crate) next: String,
}

/// Only local paths are followed after sign-in (no open redirect).
pub(crate) fn safe_next(next: &str) -> &str {
    let local = next.starts_with('/')
        && !next.starts_with("//")
        && !next.starts_with("/\\")
        && !next.chars().any(char::is_control);
    if local {
        next
    } else {
        "/"
    }
}

fn form(
    state: &AppState,
    viewer: &Viewer,
    token: &str,
    username: &str,
    next: &str,
    errors: &[FieldError],
    status: StatusCode,
) -> Response {
    let content = html! {
        div.nhsuk-grid-row { div.nhsuk-grid-column-two-thirds {
            (page::error_summary(errors))
            h1 { "Sign in" }
            p { "Sign in to request tools, follow your requests, and review or decide them if that is your role. Searching the catalogue and the decision log needs no account." }
            @if !state.oidc.all().is_empty() {
                @for provider in state.oidc.all() {
                    form method="get" action={ "/sign-in/oidc/" (provider.settings.id) } {
                        input type="hidden" name="next" value=(next);
                        button.nhsuk-button type="submit" data-module="nhsuk-button" { "Sign in with " (provider.settings.display_name) }
                    }
                }
                h2.nhsuk-heading-m { "Or sign in with a Formulary username and password" }
                p { "For people given a Formulary account by its administrators." }
            }
            form method="post" action="/sign-in" novalidate {
                input type="hidden" name="csrf_token" value=(token);
                input type="hidden" name="next" value=(next);
                (page::input(Field { name: "username", label: "Username", hint: None, value: username }, "text", Some("username"), errors))
                (page::input(Field { name: "password", label: "Password", hint: None, value: "" }, "password", Some("current-password"), errors))
                button.nhsuk-button type="submit" data-module="nhsuk-button" { "Sign in" }
            }
        } }
    };
    page::render_with_status(
        status,
        viewer,
        Section::Account,
        "Sign in",
        !errors.is_empty(),
        content,
    )
    .into_response()
}

/// `GET /sign-in`.
pub(crate) async fn show(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(query): Query<Next>,
) -> Response {
    let next = safe_next(&query.next).to_owned();
    if viewer.principal.is_some() {
        return Redirect::to(&next).into_response();
    }
    let token = formulary_store::random_secret();
    let response = form(&state, &viewer, &token, "", &next, &[], StatusCode::OK);
    with_cookie(
        response,
        set_cookie(state.is_https(), SIGN_IN_COOKIE, &token, 3600),
    )
}

/// `POST /sign-in`.
pub(crate) async fn submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    ClientAddress(client): ClientAddress,
    body: Body,
) -> Response {
    let pairs = match read_form_body(body).await {
        Ok(pairs) => pairs,
        Err(refusal) => return refusal.into_response(),
    };
    let expected = cookie(&headers, SIGN_IN_COOKIE).unwrap_or("");
    let sent = session::field(&pairs, "csrf_token").unwrap_or("");
    if !same_origin(&headers, &state.public_origin())
        || expected.is_empty()
        || !same_secret(sent, expected)
    {
        return csrf_refusal();
    }
    let username = session::field(&pairs, "username")
        .unwrap_or("")
        .trim()
        .to_owned();
    let password = session::field(&pairs, "password").unwrap_or("").to_owned();
    let next = safe_next(session::field(&pairs, "next").unwrap_or("/")).to_owned();
    let viewer = Viewer::default();
    let again = |errors: Vec<FieldError>, status| {
        form(&state, &viewer, expected, &username, &next, &errors, status)
    };
    let mut errors = Vec::new();
    if username.is_empty() {
        errors.push(FieldError::new("username", "Enter your username"));
    }
    if password.is_empty() {
        errors.push(FieldError::new("password", "Enter your password"));
    }
    if !errors.is_empty() {
        return again(errors, StatusCode::UNPROCESSABLE_ENTITY);
    }
    let credentials = Credentials {
        username: username.clone(),
        password,
    };
    match identity::sign_in(&state.database, &LocalAccounts, &credentials, &client).await {
        Ok(user) => match state
            .database
            .start_session(&user, session::session_lifetime(), &client)
            .await
        {
            Ok(started) => {
                let response = Redirect::to(&next).into_response();
                let response = with_cookie(
                    response,
                    set_cookie(
                        state.is_https(),
                        SESSION_COOKIE,
                        &started.secret,
                        session::SESSION_HOURS * 3600,
                    ),
                );
                with_cookie(
                    response,
                    set_cookie(state.is_https(), SIGN_IN_COOKIE, "", 0),
                )
            }
            Err(error) => {
                tracing::error!(%error, "could not start a session");
                StatusCode::SERVICE_UNAVAILABLE.into_response()
            }
        },
        Err(SignInError::Store(error)) => {
            tracing::error!(%error, "sign-in failed on storage");
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
        Err(SignInError::TooManyAttempts { wait_seconds }) => {
            let response = again(
                vec![FieldError::new("username", format!("Too many failed sign-ins lately. Wait {wait_seconds} seconds and try again; if you have forgotten your password, ask your organisation's administrator to reset it"))],
                StatusCode::TOO_MANY_REQUESTS,
            );
            with_retry_after(response, wait_seconds)
        }
        Err(SignInError::Disabled) => again(
            vec![FieldError::new(
                "username",
                "This account is disabled. Ask your organisation's administrator",
            )],
            StatusCode::UNAUTHORIZED,
        ),
        Err(SignInError::Rejected) => again(
            vec![FieldError::new(
                "username",
                "Enter a correct username and password (passwords are case-sensitive)",
            )],
            StatusCode::UNAUTHORIZED,
        ),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_local_paths_are_followed() {
        assert_eq!(super::safe_next("/requests/4"), "/requests/4");
        assert_eq!(super::safe_next("//evil.example/x"), "/");
        assert_eq!(super::safe_next("https://evil.example"), "/");
        assert_eq!(super::safe_next("/\\evil.example"), "/");
    }
}
