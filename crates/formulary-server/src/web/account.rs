//! The signed-in person's own account: change the password (the current one is checked like a
//! sign-in, and every other session ends), and create, list and revoke personal tokens — for
//! package clients, or for the API with the person's roles (the way people who sign in only
//! through an identity provider get an API token, for scripts and `formulary login
//! --token-stdin`). Every change is audited.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use formulary_core::request::FieldError;
use formulary_store::ApiToken;
use maud::{html, Markup};
use serde::Deserialize;

use super::page::{self, Field, Section};
use super::session::{cookie, PostedForm, SignedIn, SESSION_COOKIE};
use super::WebError;
use crate::identity::{self, PasswordChangeError, SignInError};
use crate::state::{AppState, ClientAddress};

/// What the account page confirms after a change.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Done {
    #[serde(default)]
    done: String,
}

impl Done {
    /// What was done, in one word.
    pub(crate) fn done(&self) -> &str {
        &self.done
    }
}

/// A token's state in words.
pub(crate) fn token_state(token: &ApiToken) -> String {
    match (token.revoked_at, token.expires_at) {
        (Some(at), _) => format!("Revoked {}", page::when(at)),
        (None, Some(at)) if at <= Utc::now() => format!("Expired {}", page::when(at)),
        (None, Some(at)) => format!("Valid until {}", page::when(at)),
        (None, None) => "Valid".to_owned(),
    }
}

/// A token just issued: its secret, shown once, and how to use it.
pub(crate) struct Fresh<'a> {
    secret: &'a str,
    server: &'a str,
    scope: formulary_store::TokenScope,
}

/// How long a new token may last, in days, as offered on the form.
const EXPIRY_CHOICES: [(&str, &str); 4] = [
    ("7", "7 days"),
    ("30", "30 days"),
    ("90", "90 days"),
    ("365", "A year"),
];

fn account_markup(
    signed_in: &SignedIn,
    tokens: &[ApiToken],
    errors: &[FieldError],
    done: &str,
    fresh: Option<&Fresh<'_>>,
) -> Markup {
    let csrf = signed_in.viewer.csrf_token.as_deref().unwrap_or("");
    let local = signed_in
        .principal
        .user
        .as_ref()
        .is_some_and(|user| user.identity_provider == formulary_store::LOCAL_PROVIDER);
    html! {
        div.nhsuk-grid-row { div.nhsuk-grid-column-two-thirds {
            (page::error_summary(errors))
            @match done {
                "password" => div.nhsuk-inset-text { span.nhsuk-u-visually-hidden { "Information: " } p { "Your password has been changed. Every other session of your account has been signed out." } },
                "revoked" => div.nhsuk-inset-text { span.nhsuk-u-visually-hidden { "Information: " } p { "The token has been revoked; it stopped working at once." } },
                _ => {}
            }
            h1 { "Your account" }
            p { "Signed in as " strong { (signed_in.principal.name) } " (" (signed_in.principal.describe_roles()) ")." }
            @if local {
                h2.nhsuk-heading-m { "Change your password" }
                form method="post" action="/account/password" novalidate {
                    (page::csrf_field(csrf))
                    (page::input(Field { name: "current_password", label: "Current password", hint: None, value: "" }, "password", Some("current-password"), errors))
                    (page::input(Field { name: "new_password", label: "New password", hint: Some("At least 12 characters, and not easy to guess: a phrase of four or more unrelated words works well"), value: "" }, "password", Some("new-password"), errors))
                    (page::input(Field { name: "confirm_password", label: "New password again", hint: None, value: "" }, "password", Some("new-password"), errors))
                    button.nhsuk-button type="submit" { "Change password" }
                }
            } @else {
                p { "Your account signs in through your organisation's identity provider; change your password there." }
            }
            h2.nhsuk-heading-m #gateway-tokens { "Create a token" }
            @if let Some(fresh) = fresh {
                div.nhsuk-inset-text #new-gateway-token {
                    span.nhsuk-u-visually-hidden { "Information: " }
                    p { "Your new token is below. It is shown only this once: copy it now." }
                    p { code { (fresh.secret) } }
                    @if fresh.scope == formulary_store::TokenScope::Gateway {
                        p { "To set up pip, uv and R (and npm and conda where this server offers them) with it, run this and paste the token when asked (on Windows, in PowerShell: " code { "irm " (fresh.server) "setup.ps1 | iex" } "):" }
                        pre { code { "curl -fsSL " (fresh.server) "setup.sh | sh" } }
                        p { "With the " code { "formulary" } " client already installed: " code { "formulary setup --server " (fresh.server) } "." }
                    } @else {
                        p { "Send it to the API as " code { "Authorization: Bearer …" } "; it acts with the roles you hold each time it is used (never more), so keep it out of files others can read. It stops working if your account is disabled or holds no role." }
                        p { "To use it with the " code { "formulary" } " command, run this and paste the token when asked:" }
                        pre { code { "formulary login --server " (fresh.server) " --token-stdin" } }
                    }
                }
            }
            p { "Package clients (pip, uv, R, npm, conda) send a token to the package gateway, so that downloads are recorded against you (and, where the gateway asks for one, so that they work at all). Such a token only reads the gateway: it cannot act on requests or the formulary. An API token acts with your roles, for scripts that use the JSON API." }
            form method="post" action="/account/gateway-tokens" novalidate {
                (page::csrf_field(csrf))
                (page::input(Field { name: "name", label: "What it is for", hint: Some("For example: my laptop, or the analysis server"), value: "" }, "text", None, errors))
                (page::radios("scope", "What it may do", None, &[("gateway", "Read the package gateway only (package clients)"), ("api", "Use the API with my roles")], "gateway", errors))
                (super::admin::select("expires_days", "Expires after", Some("Every token expires; revoke it sooner when you no longer need it"), &EXPIRY_CHOICES, "90", errors))
                button.nhsuk-button type="submit" { "Create token" }
            }
            h2.nhsuk-heading-m { "Your API tokens" }
            p { "The tokens you created here and those " code { "formulary login" } " issued to you. API tokens act with your roles; revoke one you no longer use, or that may have been seen by someone else." }
        } }
        @if tokens.is_empty() {
            p { "You have no tokens." }
        } @else {
            table.nhsuk-table #tokens {
                caption.nhsuk-table__caption.nhsuk-u-visually-hidden { "Your API tokens" }
                thead.nhsuk-table__head { tr { th scope="col" { "Token" } th scope="col" { "Name" } th scope="col" { "Use" } th scope="col" { "Issued" } th scope="col" { "State" } th scope="col" { "Action" } } }
                tbody.nhsuk-table__body {
                    @for token in tokens {
                        tr.nhsuk-table__row {
                            td.nhsuk-table__cell { code { (token.id) } }
                            td.nhsuk-table__cell { (token.name) }
                            td.nhsuk-table__cell { @if token.scope == formulary_store::TokenScope::Gateway { "Package clients" } @else { "API" } }
                            td.nhsuk-table__cell { (page::when(token.created_at)) }
                            td.nhsuk-table__cell { (token_state(token)) }
                            td.nhsuk-table__cell {
                                @if token.revoked_at.is_none() {
                                    form.formulary-inline-form method="post" action={ "/account/tokens/" (token.id) "/revoke" } {
                                        (page::csrf_field(csrf))
                                        button.nhsuk-button.nhsuk-button--secondary.nhsuk-u-margin-bottom-0 type="submit" { "Revoke" span.nhsuk-u-visually-hidden { " token " (token.id) } }
                                    }
                                }
                            }
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
    errors: &[FieldError],
    done: &str,
    status: StatusCode,
) -> Result<Response, WebError> {
    render_with(state, signed_in, errors, done, status, None).await
}

async fn render_with(
    state: &AppState,
    signed_in: &SignedIn,
    errors: &[FieldError],
    done: &str,
    status: StatusCode,
    fresh: Option<&Fresh<'_>>,
) -> Result<Response, WebError> {
    let tokens = state.database.user_tokens(&signed_in.principal.id).await?;
    let content = account_markup(signed_in, &tokens, errors, done, fresh);
    Ok(page::render_with_status(
        status,
        &signed_in.viewer,
        Section::Account,
        "Your account",
        !errors.is_empty(),
        content,
    )
    .into_response())
}

/// `GET /account`.
pub(crate) async fn show(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Query(done): Query<Done>,
) -> Result<Response, WebError> {
    render(&state, &signed_in, &[], &done.done, StatusCode::OK).await
}

/// The password form, as posted.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct PasswordForm {
    #[serde(default)]
    current_password: String,
    #[serde(default)]
    new_password: String,
    #[serde(default)]
    confirm_password: String,
}

/// `POST /account/password`.
pub(crate) async fn change_password(
    State(state): State<AppState>,
    headers: HeaderMap,
    ClientAddress(client): ClientAddress,
    posted: PostedForm<PasswordForm>,
) -> Result<Response, WebError> {
    let PostedForm { signed_in, form } = posted;
    let mut errors = Vec::new();
    if form.current_password.is_empty() {
        errors.push(FieldError::new(
            "current_password",
            "Enter your current password",
        ));
    }
    if form.new_password.is_empty() {
        errors.push(FieldError::new("new_password", "Enter a new password"));
    } else if form.new_password != form.confirm_password {
        errors.push(FieldError::new(
            "confirm_password",
            "The two new passwords differ; type the same password twice",
        ));
    }
    let Some(user) = signed_in.principal.user.clone() else {
        return Err(crate::error::ApiError::forbidden("only people have passwords").into());
    };
    if errors.is_empty() {
        let keep = cookie(&headers, SESSION_COOKIE);
        match identity::change_own_password(
            &state.database,
            &user,
            &form.current_password,
            &form.new_password,
            &client,
            keep,
        )
        .await
        {
            Ok(()) => return Ok(Redirect::to("/account?done=password").into_response()),
            Err(PasswordChangeError::Store(error)) => return Err(error.into()),
            Err(PasswordChangeError::CurrentPassword(SignInError::TooManyAttempts {
                wait_seconds,
            })) => errors.push(FieldError::new(
                "current_password",
                format!(
                    "Too many wrong passwords lately. Wait {wait_seconds} seconds and try again"
                ),
            )),
            Err(PasswordChangeError::CurrentPassword(_)) => errors.push(FieldError::new(
                "current_password",
                "Your current password is not correct",
            )),
            Err(PasswordChangeError::Policy(why)) => {
                let mut letters = why.chars();
                let message: String = letters
                    .next()
                    .map(|first| first.to_uppercase().chain(letters).collect())
                    .unwrap_or_default();
                errors.push(FieldError::new("new_password", message));
            }
            Err(error @ PasswordChangeError::NotLocal) => {
                errors.push(FieldError::new("current_password", error.to_string()));
            }
        }
    }
    render(
        &state,
        &signed_in,
        &errors,
        "",
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await
}

/// Nothing but the CSRF token.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Empty {}

/// `POST /account/tokens/{id}/revoke`: only the person's own tokens; any other id is "not found".
pub(crate) async fn revoke_token(
    State(state): State<AppState>,
    Path(id): Path<String>,
    posted: PostedForm<Empty>,
) -> Result<Response, WebError> {
    let principal = &posted.signed_in.principal;
    state
        .database
        .revoke_user_token(&principal.id, &id, &principal.actor)
        .await?;
    Ok(Redirect::to("/account?done=revoked").into_response())
}

/// The form that names a new token, its scope (`gateway`, the default, or `api`) and its
/// lifetime in days (90 unless chosen).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct GatewayTokenForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    scope: String,
    #[serde(default)]
    expires_days: String,
}

/// `POST /account/gateway-tokens`: issues the person a token (reading the package gateway
/// only, or the API with their roles) that expires after the chosen days, and shows it once
/// (with the `formulary setup` command for a gateway token).
pub(crate) async fn issue_gateway_token(
    State(state): State<AppState>,
    posted: PostedForm<GatewayTokenForm>,
) -> Result<Response, WebError> {
    let PostedForm { signed_in, form } = posted;
    let Some(user) = signed_in.principal.user.clone() else {
        return Err(crate::error::ApiError::forbidden("only people have personal tokens").into());
    };
    let name = form.name.trim();
    let mut errors = Vec::new();
    if name.is_empty() || name.chars().count() > 100 {
        errors.push(FieldError::new(
            "name",
            "Say what the token is for in 1 to 100 characters, for example: my laptop",
        ));
    }
    let scope = match form.scope.as_str() {
        "" | "gateway" => Some(formulary_store::TokenScope::Gateway),
        "api" => Some(formulary_store::TokenScope::Api),
        _ => {
            errors.push(FieldError::new("scope", "Select what the token may do"));
            None
        }
    };
    let days = match form.expires_days.trim() {
        "" => Some(crate::api::session::GATEWAY_TOKEN_DAYS),
        text => text
            .parse::<i64>()
            .ok()
            .filter(|days| (1..=365).contains(days)),
    };
    if days.is_none() {
        errors.push(FieldError::new(
            "expires_days",
            "Choose when the token expires, within a year",
        ));
    }
    let (Some(scope), Some(days), true) = (scope, days, errors.is_empty()) else {
        return render(
            &state,
            &signed_in,
            &errors,
            "",
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    };
    let issued = state
        .database
        .issue_user_token_with_scope(
            name,
            &user,
            scope,
            Some(Utc::now() + chrono::Duration::days(days)),
        )
        .await?;
    let server = state.public_url.to_string();
    let fresh = Fresh {
        secret: &issued.secret,
        server: &server,
        scope,
    };
    let mut response =
        render_with(&state, &signed_in, &[], "", StatusCode::OK, Some(&fresh)).await?;
    response.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store, private"),
    );
    Ok(response)
}
