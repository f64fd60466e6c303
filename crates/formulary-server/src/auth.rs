use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use formulary_store::ApiToken;

use crate::error::ApiError;
use crate::state::AppState;

/// A request authenticated by an API token (`Authorization: Bearer frm_…`).
#[derive(Debug, Clone)]
pub struct Authenticated(pub ApiToken);

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .ok_or_else(ApiError::unauthenticated)?;
        let secret = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .ok_or_else(ApiError::unauthenticated)?;
        match state.database.authenticate_token(secret).await? {
            Some(token) => Ok(Authenticated(token)),
            None => Err(ApiError::new(
                axum::http::StatusCode::UNAUTHORIZED,
                "Invalid token",
                "The API token is unknown, revoked or expired. Ask an administrator for a new one (`formulary token create`).",
            )),
        }
    }
}
