//! `formulary login`: trade a username and password for a personal API token, and see who a
//! token belongs to.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Duration, Utc};
use formulary_core::Membership;
use serde::{Deserialize, Serialize};

use crate::auth::Authenticated;
use crate::error::ApiError;
use crate::identity::{self, Credentials, LocalAccounts, SignInError};
use crate::state::{AppState, ClientAddress};

/// How long a personal token from `formulary login` lasts.
const PERSONAL_TOKEN_DAYS: i64 = 30;

/// Body of `POST /api/v1/session/token`.
#[derive(Debug, Deserialize)]
pub(crate) struct TokenRequest {
    username: String,
    password: String,
    /// What the token is for, e.g. `formulary login on LAPTOP-42`.
    name: Option<String>,
}

/// Who a token acts as.
#[derive(Debug, Serialize)]
pub(crate) struct Whoami {
    id: String,
    name: String,
    username: Option<String>,
    memberships: Vec<Membership>,
}

/// The answer to a successful login.
#[derive(Debug, Serialize)]
pub(crate) struct IssuedPersonalToken {
    token: String,
    expires_at: Option<DateTime<Utc>>,
    user: Whoami,
}

/// `POST /api/v1/session/token`.
pub(crate) async fn issue(
    State(state): State<AppState>,
    ClientAddress(client): ClientAddress,
    Json(body): Json<TokenRequest>,
) -> Result<(StatusCode, Json<IssuedPersonalToken>), Response> {
    let credentials = Credentials {
        username: body.username,
        password: body.password,
    };
    let user = match identity::sign_in(&state.database, &LocalAccounts, &credentials, &client).await
    {
        Ok(user) => user,
        Err(SignInError::Store(error)) => return Err(ApiError::from(error).into_response()),
        Err(refusal @ SignInError::TooManyAttempts { wait_seconds }) => {
            let response = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "Too many failed sign-ins",
                refusal.to_string(),
            )
            .into_response();
            return Err(crate::web::with_retry_after(response, wait_seconds));
        }
        Err(refusal) => {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "Sign-in failed",
                format!(
                    "{refusal}; check them and try again. If you sign in to Formulary through your organisation's identity provider (NHS Care Identity, Microsoft Entra ID), you have no Formulary password: create an API token on {}account and run `formulary login --token-stdin`",
                    state.public_url
                ),
            )
            .into_response())
        }
    };
    let name = body
        .name
        .filter(|name| !name.trim().is_empty())
        .unwrap_or_else(|| "formulary login".to_owned());
    let issued = state
        .database
        .issue_user_token(
            &name,
            &user,
            Some(Utc::now() + Duration::days(PERSONAL_TOKEN_DAYS)),
        )
        .await
        .map_err(|error| ApiError::from(error).into_response())?;
    Ok((
        StatusCode::CREATED,
        Json(IssuedPersonalToken {
            token: issued.secret,
            expires_at: issued.token.expires_at,
            user: Whoami {
                id: user.id.clone(),
                name: user.display_name.clone(),
                username: Some(user.username.clone()),
                memberships: user.memberships.clone(),
            },
        }),
    ))
}

/// `GET /api/v1/me` (any token, including one that only reads the gateway).
pub(crate) async fn me(crate::auth::AnyScope(caller): crate::auth::AnyScope) -> Json<Whoami> {
    Json(Whoami {
        id: caller.id.clone(),
        name: caller.name.clone(),
        username: caller.user.as_ref().map(|user| user.username.clone()),
        memberships: caller.memberships.clone(),
    })
}

/// How long a token for package clients lasts unless asked otherwise.
pub(crate) const GATEWAY_TOKEN_DAYS: i64 = 90;

/// Body of `POST /api/v1/me/tokens`.
#[derive(Debug, Deserialize)]
pub(crate) struct NewToken {
    /// What it is for, e.g. `pip and uv on LAPTOP-42`.
    name: String,
    /// Only `gateway`: a token that reads the package gateway and nothing else.
    scope: formulary_store::TokenScope,
    /// Days until it stops working (1 to 365) [default: 90].
    expires_days: Option<i64>,
}

/// The answer to `POST /api/v1/me/tokens`: the secret, shown once.
#[derive(Debug, Serialize)]
pub(crate) struct IssuedScopedToken {
    id: String,
    token: String,
    scope: formulary_store::TokenScope,
    expires_at: Option<DateTime<Utc>>,
}

/// `POST /api/v1/me/tokens`: the caller issues themselves a token for package clients
/// (`scope: gateway`), which `formulary setup` writes into their clients' settings.
pub(crate) async fn issue_my_token(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Json(body): Json<NewToken>,
) -> Result<(StatusCode, Json<IssuedScopedToken>), ApiError> {
    let user = person(&caller)?;
    if body.scope != formulary_store::TokenScope::Gateway {
        return Err(ApiError::bad_request(
            "scope: only \"gateway\" tokens are issued here, so that a token cannot make itself a longer-lived twin; create an API token on your account page (/account) when signed in, or with `formulary login` (POST /api/v1/session/token)",
        ));
    }
    let days = body.expires_days.unwrap_or(GATEWAY_TOKEN_DAYS);
    if !(1..=365).contains(&days) {
        return Err(ApiError::bad_request(format!(
            "expires_days: {days} is not between 1 and 365; a token kept in configuration files must expire"
        )));
    }
    let issued = state
        .database
        .issue_user_token_with_scope(
            &body.name,
            user,
            body.scope,
            Some(Utc::now() + Duration::days(days)),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(IssuedScopedToken {
            id: issued.token.id,
            token: issued.secret,
            scope: issued.token.scope,
            expires_at: issued.token.expires_at,
        }),
    ))
}

/// A personal token as its owner sees it (never the secret).
#[derive(Debug, Serialize)]
pub(crate) struct TokenView {
    id: String,
    name: String,
    scope: formulary_store::TokenScope,
    created_at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
}

fn person(caller: &crate::identity::Principal) -> Result<&formulary_store::User, ApiError> {
    caller.user.as_ref().ok_or_else(|| {
        ApiError::forbidden(format!(
            "{} is a service account's token; only people have passwords and personal tokens. An administrator lists and revokes service tokens with `formulary token list|revoke`",
            caller.name
        ))
    })
}

/// `GET /api/v1/me/tokens`: the caller's personal tokens, newest first.
pub(crate) async fn my_tokens(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
) -> Result<Json<Vec<TokenView>>, ApiError> {
    let user = person(&caller)?;
    let tokens = state.database.user_tokens(&user.id).await?;
    Ok(Json(
        tokens
            .into_iter()
            .map(|token| TokenView {
                id: token.id,
                name: token.name,
                scope: token.scope,
                created_at: token.created_at,
                expires_at: token.expires_at,
                revoked_at: token.revoked_at,
            })
            .collect(),
    ))
}

/// `DELETE /api/v1/me/tokens/{id}`: revokes one of the caller's own tokens (404 for any other).
pub(crate) async fn revoke_my_token(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<StatusCode, ApiError> {
    let user = person(&caller)?;
    state
        .database
        .revoke_user_token(&user.id, &id, &caller.actor)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Body of `POST /api/v1/me/password`.
#[derive(Debug, Deserialize)]
pub(crate) struct PasswordChange {
    current_password: String,
    new_password: String,
}

/// `POST /api/v1/me/password`: the caller changes their own password. Every session of the
/// account ends (tokens keep working; revoke them separately if they may be known).
pub(crate) async fn change_password(
    State(state): State<AppState>,
    ClientAddress(client): ClientAddress,
    Authenticated(caller): Authenticated,
    Json(body): Json<PasswordChange>,
) -> Result<StatusCode, Response> {
    let user = person(&caller).map_err(IntoResponse::into_response)?;
    match identity::change_own_password(
        &state.database,
        user,
        &body.current_password,
        &body.new_password,
        &client,
        None,
    )
    .await
    {
        Ok(()) => Ok(StatusCode::NO_CONTENT),
        Err(identity::PasswordChangeError::Store(error)) => {
            Err(ApiError::from(error).into_response())
        }
        Err(identity::PasswordChangeError::CurrentPassword(
            refusal @ SignInError::TooManyAttempts { wait_seconds },
        )) => Err(crate::web::with_retry_after(
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "Too many failed sign-ins",
                refusal.to_string(),
            )
            .into_response(),
            wait_seconds,
        )),
        Err(identity::PasswordChangeError::CurrentPassword(_)) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "Current password not correct",
            "current_password is not your current password, so nothing was changed; check it and try again",
        )
        .into_response()),
        Err(error) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "The new password is not accepted",
            format!("new_password: {error}"),
        )
        .into_response()),
    }
}

/// `GET /api/v1/me/notifications`: the caller's newest notifications (100), newest first.
pub(crate) async fn my_notifications(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
) -> Result<Json<Vec<formulary_store::Notification>>, ApiError> {
    let user = person(&caller)?;
    Ok(Json(state.database.notifications_for(&user.id, 100).await?))
}

/// `POST /api/v1/me/notifications/read`: marks every notification of the caller read.
pub(crate) async fn mark_my_notifications_read(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
) -> Result<StatusCode, ApiError> {
    let user = person(&caller)?;
    state.database.mark_notifications_read(&user.id).await?;
    Ok(StatusCode::NO_CONTENT)
}
