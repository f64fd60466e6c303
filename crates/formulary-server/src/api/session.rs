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
                format!("{refusal}; check them and try again"),
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

/// `GET /api/v1/me`.
pub(crate) async fn me(Authenticated(caller): Authenticated) -> Json<Whoami> {
    Json(Whoami {
        id: caller.id.clone(),
        name: caller.name.clone(),
        username: caller.user.as_ref().map(|user| user.username.clone()),
        memberships: caller.memberships.clone(),
    })
}
