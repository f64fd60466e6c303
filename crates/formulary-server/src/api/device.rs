//! Device sign-in for `formulary setup` (RFC 8628 style), so a person signs in with the browser
//! (OIDC or a local account) instead of pasting a token:
//! - `POST /api/v1/device/code` (no credentials): a device code (a secret setup keeps), a short
//!   user code and the page where the person approves it, `{public_url}device?code=…`. Codes
//!   expire after ten minutes; one client address may ask for ten per ten minutes (429 after).
//! - `POST /api/v1/device/token` with the device code: 400 `authorization_pending` until the
//!   person approves the user code on `/device` (signed in, CSRF-protected, audited as
//!   `device.approve`), `slow_down` when polled sooner than every five seconds, `expired_token`
//!   after expiry; then, once, 200 with a token for package clients (scope `gateway`, 90 days) in
//!   the approver's name. A second redemption is `invalid_grant`.

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{Duration, Utc};
use formulary_store::{DevicePoll, TokenScope};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::state::{AppState, ClientAddress};

/// Seconds a device code lives.
const LIFETIME_SECONDS: i64 = 600;
/// Least seconds between polls.
const INTERVAL_SECONDS: i64 = 5;
/// Codes one address may ask for per lifetime.
const CODES_PER_ADDRESS: i64 = 10;
/// The letters of user codes: no vowels (no words), nothing easily misread.
const LETTERS: &[u8; 20] = b"BCDFGHJKLMNPQRSTVWXZ";

/// Body of `POST /api/v1/device/code`.
#[derive(Debug, Deserialize)]
pub(crate) struct CodeRequest {
    /// What is signing in, e.g. `formulary setup on LAPTOP-42`; shown on the approval page.
    client_name: String,
}

/// Body of `POST /api/v1/device/token`.
#[derive(Debug, Deserialize)]
pub(crate) struct TokenRequest {
    /// The device code from `POST /api/v1/device/code`.
    device_code: String,
}

fn hash(device_code: &str) -> String {
    format!("{:x}", Sha256::digest(device_code.as_bytes()))
}

/// A user code such as `BCDF-GHJK`, from the random secret's bytes.
pub(crate) fn user_code(secret: &str) -> String {
    let letters: String = secret
        .as_bytes()
        .chunks(2)
        .filter_map(|pair| u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok())
        .take(8)
        .map(|byte| char::from(LETTERS[usize::from(byte) % LETTERS.len()]))
        .collect();
    format!("{}-{}", &letters[..4], &letters[4..])
}

/// A user code as typed (any case, with or without the dash or spaces), normalised.
pub(crate) fn typed_code(text: &str) -> String {
    let letters: String = text
        .chars()
        .filter(char::is_ascii_alphabetic)
        .map(|c| c.to_ascii_uppercase())
        .take(8)
        .collect();
    if letters.len() == 8 {
        format!("{}-{}", &letters[..4], &letters[4..])
    } else {
        letters
    }
}

/// `POST /api/v1/device/code`.
pub(crate) async fn start(
    State(state): State<AppState>,
    address: ClientAddress,
    Json(body): Json<CodeRequest>,
) -> Result<Response, ApiError> {
    let client = body.client_name.trim();
    if client.is_empty() || client.chars().count() > 200 || client.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "client_name: say what is signing in in 1 to 200 printable characters, e.g. \"formulary setup on LAPTOP-42\"",
        ));
    }
    let now = Utc::now();
    let recent = state
        .database
        .device_codes_from(&address.0, now - Duration::seconds(LIFETIME_SECONDS))
        .await?;
    if recent >= CODES_PER_ADDRESS {
        let mut response = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many sign-in codes",
            format!("{recent} sign-in codes were asked for from this address in the last ten minutes; wait a few minutes and run `formulary setup` again, or paste a token from {}account with --token-stdin", state.public_url),
        )
        .into_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("120"));
        return Ok(response);
    }
    let device_code = formulary_store::random_secret();
    let user = user_code(&formulary_store::random_secret());
    state
        .database
        .start_device_sign_in(
            &hash(&device_code),
            &user,
            client,
            &address.0,
            now + Duration::seconds(LIFETIME_SECONDS),
        )
        .await?;
    let page = state
        .public_url
        .join("device")
        .map_err(|error| ApiError::bad_request(error.to_string()))?;
    let mut complete = page.clone();
    complete.query_pairs_mut().append_pair("code", &user);
    Ok((
        StatusCode::OK,
        Json(json!({
            "device_code": device_code,
            "user_code": user,
            "verification_uri": page.as_str(),
            "verification_uri_complete": complete.as_str(),
            "expires_in": LIFETIME_SECONDS,
            "interval": INTERVAL_SECONDS,
        })),
    )
        .into_response())
}

/// A poll that gives no token: problem+json with RFC 8628's `error` code.
fn pending(error: &str, detail: &str) -> Response {
    let mut response = (
        StatusCode::BAD_REQUEST,
        Json(json!({
            "type": "about:blank",
            "title": "No token yet",
            "status": 400,
            "detail": detail,
            "error": error,
        })),
    )
        .into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    response
}

/// `POST /api/v1/device/token`.
pub(crate) async fn token(
    State(state): State<AppState>,
    Json(body): Json<TokenRequest>,
) -> Result<Response, ApiError> {
    let poll = state
        .database
        .poll_device_code(&hash(body.device_code.trim()), INTERVAL_SECONDS)
        .await?;
    let username =
        match poll {
            DevicePoll::Approved(username) => username,
            DevicePoll::Pending => {
                return Ok(pending(
                    "authorization_pending",
                    "not approved yet: open the page setup printed, sign in, and approve the code",
                ))
            }
            DevicePoll::SlowDown => {
                return Ok(pending(
                    "slow_down",
                    "polled too often: wait five seconds between polls",
                ))
            }
            DevicePoll::Expired => return Ok(pending(
                "expired_token",
                "the code expired after ten minutes without approval: run `formulary setup` again",
            )),
            DevicePoll::Used => return Ok(pending(
                "invalid_grant",
                "this code has already given its token: run `formulary setup` again for another",
            )),
            DevicePoll::Unknown => {
                return Ok(pending(
                    "invalid_grant",
                    "no such device code: run `formulary setup` again",
                ))
            }
        };
    let Some((user, _)) = state.database.user_by_username(&username).await? else {
        return Ok(pending(
            "access_denied",
            "the account that approved the code no longer exists",
        ));
    };
    if user.disabled_at.is_some() {
        return Ok(pending(
            "access_denied",
            "the account that approved the code is disabled",
        ));
    }
    let issued = state
        .database
        .issue_user_token_with_scope(
            &format!("formulary setup (device sign-in) for {username}"),
            &user,
            TokenScope::Gateway,
            Some(Utc::now() + Duration::days(crate::api::session::GATEWAY_TOKEN_DAYS)),
        )
        .await?;
    Ok((
        StatusCode::OK,
        Json(json!({
            "token": issued.secret,
            "id": issued.token.id,
            "username": username,
            "expires_at": issued.token.expires_at,
        })),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_codes_are_eight_letters_and_typing_is_forgiving() {
        let code = user_code(&formulary_store::random_secret());
        assert_eq!(code.len(), 9);
        assert!(code
            .chars()
            .all(|c| c == '-' || LETTERS.contains(&(c as u8))));
        assert_eq!(typed_code(" bcdf ghjk "), "BCDF-GHJK");
        assert_eq!(typed_code("BCDF-GHJK"), "BCDF-GHJK");
        assert_eq!(typed_code("bc"), "BC");
    }
}
