//! API authentication: `Authorization: Bearer frm_…` tokens. A personal token (from
//! `formulary login`) acts as its person with the roles they hold now; a service account's token
//! carries the one role it was issued with.

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use crate::error::ApiError;
use crate::identity::Principal;
use crate::state::AppState;

/// A request authenticated by an API token.
#[derive(Debug, Clone)]
pub struct Authenticated(pub Principal);

fn bearer(parts: &Parts) -> Option<&str> {
    let header = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .map(str::trim)
}

async fn principal_for(state: &AppState, secret: &str) -> Result<Principal, ApiError> {
    let invalid = || {
        ApiError::new(
            axum::http::StatusCode::UNAUTHORIZED,
            "Invalid token",
            "The API token is unknown, revoked or expired. Sign in again with `formulary login`, or ask an administrator for a new service token (`formulary token create`).",
        )
    };
    let token = state
        .database
        .authenticate_token(secret)
        .await?
        .ok_or_else(invalid)?;
    match &token.user_id {
        None => Ok(Principal::from_service_token(&token)),
        Some(user_id) => match state.database.user(user_id).await? {
            Some(user) if user.disabled_at.is_some() => Err(ApiError::new(
                axum::http::StatusCode::UNAUTHORIZED,
                "Account disabled",
                "The account this token belongs to is disabled, so none of its tokens work. Ask your organisation's administrator.",
            )),
            Some(user) if user.memberships.is_empty() => Err(ApiError::new(
                axum::http::StatusCode::UNAUTHORIZED,
                "Account has no roles",
                "The account this token belongs to holds no role in any organisation, so its tokens do not work. Ask your organisation's administrator for a role.",
            )),
            Some(user) => Ok(Principal::from_user(user)),
            None => Err(invalid()),
        },
    }
}

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let secret = bearer(parts).ok_or_else(ApiError::unauthenticated)?;
        Ok(Authenticated(principal_for(state, secret).await?))
    }
}

impl OptionalFromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Option<Self>, Self::Rejection> {
        match bearer(parts) {
            None => Ok(None),
            Some(secret) => Ok(Some(Authenticated(principal_for(state, secret).await?))),
        }
    }
}
