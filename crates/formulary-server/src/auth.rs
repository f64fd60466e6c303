//! API authentication: `Authorization: Bearer frm_…` tokens. A personal token (from
//! `formulary login`) acts as its person with the roles they hold now; a service account's token
//! carries the one role it was issued with.

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use formulary_store::TokenScope;

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

/// Who a token acts as and what it may be used for: `None` when it is unknown, revoked or
/// expired; an error when its account is disabled or holds no role. Shared by the API and the
/// package gateway ([`crate::gateway_auth`]).
pub(crate) async fn token_principal(
    state: &AppState,
    secret: &str,
) -> Result<Option<(Principal, TokenScope)>, ApiError> {
    let Some(token) = state.database.authenticate_token(secret).await? else {
        return Ok(None);
    };
    let principal = match &token.user_id {
        None => Principal::from_service_token(&token),
        Some(user_id) => match state.database.user(user_id).await? {
            Some(user) if user.disabled_at.is_some() => return Err(ApiError::new(
                axum::http::StatusCode::UNAUTHORIZED,
                "Account disabled",
                "The account this token belongs to is disabled, so none of its tokens work. Ask your organisation's administrator.",
            )),
            Some(user) if user.memberships.is_empty() => return Err(ApiError::new(
                axum::http::StatusCode::UNAUTHORIZED,
                "Account has no roles",
                "The account this token belongs to holds no role in any organisation, so its tokens do not work. Ask your organisation's administrator for a role.",
            )),
            Some(user) => Principal::from_user(user),
            None => return Ok(None),
        },
    };
    Ok(Some((principal, token.scope)))
}

async fn principal_for(state: &AppState, secret: &str) -> Result<Principal, ApiError> {
    match token_principal(state, secret).await? {
        Some((principal, TokenScope::Api)) => Ok(principal),
        Some((_, TokenScope::Gateway)) => Err(ApiError::forbidden(
            "This token only reads the package gateway (it is the kind `formulary setup` writes into package clients' settings). For the API, create an API token on your account page (/account), or use `formulary login`.",
        )),
        None => Err(ApiError::new(
            axum::http::StatusCode::UNAUTHORIZED,
            "Invalid token",
            "The API token is unknown, revoked or expired. Create a new one on your account page (/account) and run `formulary login --token-stdin`, or sign in again with `formulary login --username …`; for a service, ask an administrator for a new service token (`formulary token create`).",
        )),
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

/// A request authenticated by a token of any scope, for the one thing a gateway-only token may
/// ask the API: who it belongs to (`GET /api/v1/me`, which `formulary setup` uses to find the
/// person's organisation).
#[derive(Debug, Clone)]
pub struct AnyScope(pub Principal);

impl FromRequestParts<AppState> for AnyScope {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let secret = bearer(parts).ok_or_else(ApiError::unauthenticated)?;
        match token_principal(state, secret).await? {
            Some((principal, _)) => Ok(AnyScope(principal)),
            None => Err(ApiError::new(
                axum::http::StatusCode::UNAUTHORIZED,
                "Invalid token",
                "The token is unknown, revoked or expired. Create a new one on your account page, or sign in again with `formulary login`.",
            )),
        }
    }
}
