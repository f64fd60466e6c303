//! Who is reading the package gateway. One middleware over every gateway route (`/pypi/…`,
//! `/cran/…` and those to come, under every view prefix) reads a Formulary token the way each
//! client sends one: HTTP Basic with the token as the password (pip, uv, R's libcurl, netrc;
//! any username) or as the username, and `Authorization: Bearer` (npm's `_authToken`). A valid
//! token's person or service account is handed to the handlers ([`GatewayCaller`]) for the
//! download ledger; a missing one is refused when the deployment asks for a token on every
//! request ([`GatewayAccess::Token`]); an unknown, revoked or expired one is always refused.
//! While the database is down, tokens are checked against the server's sealed local copy.
//! Answers say how to get a token, with a link built from `public_url`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::state::AppState;

/// Whether the gateway may be read without a token (`gateway_access`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum GatewayAccess {
    /// Anyone who can reach the server may read the gateway; a token, when sent, is checked
    /// and names the person in the download ledger.
    #[default]
    Anonymous,
    /// Every gateway request carries a valid token.
    Token,
}

impl std::str::FromStr for GatewayAccess {
    type Err = String;

    fn from_str(text: &str) -> Result<GatewayAccess, String> {
        match text.trim() {
            "anonymous" => Ok(GatewayAccess::Anonymous),
            "token" => Ok(GatewayAccess::Token),
            other => Err(format!(
                "'{}' is not a gateway access mode; write \"anonymous\" (reads need no token) or \"token\" (every gateway request carries a Formulary token)",
                other.escape_debug()
            )),
        }
    }
}

/// The person or service account a gateway request came from, put in the request's extensions
/// by [`authenticate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GatewayCaller {
    /// How they appear in the download ledger and the audit log (`user:jane`, `token:t-… (ci)`).
    pub(crate) actor: String,
}

/// How long a checked token is remembered, so that a `pip install` of fifty packages does not
/// ask the database fifty times. A revocation or a disabled account takes effect within this,
/// or sooner: a token is remembered only while the policy snapshot's generation (the audit
/// change counter, which every revocation moves and every replica follows) stays the same.
pub(crate) const REMEMBERED_FOR: Duration = Duration::from_secs(10);

/// The most tokens remembered at once; beyond it the memory is emptied.
const REMEMBERED_AT_MOST: usize = 10_000;

/// Tokens recently found valid, by the SHA-256 of their secret (the secret itself is not kept).
#[derive(Debug, Default)]
pub struct GatewayTokens {
    valid: Mutex<HashMap<[u8; 32], (Instant, i64, GatewayCaller)>>,
}

impl GatewayTokens {
    /// The caller of a token checked less than [`REMEMBERED_FOR`] ago at the same `generation`.
    fn remembered(&self, key: &[u8; 32], generation: i64) -> Option<GatewayCaller> {
        let valid = self.valid.lock().ok()?;
        valid
            .get(key)
            .filter(|(at, seen, _)| at.elapsed() < REMEMBERED_FOR && *seen == generation)
            .map(|(_, _, caller)| caller.clone())
    }

    fn remember(&self, key: [u8; 32], generation: i64, caller: GatewayCaller) {
        if let Ok(mut valid) = self.valid.lock() {
            if valid.len() >= REMEMBERED_AT_MOST {
                valid.clear();
            }
            valid.insert(key, (Instant::now(), generation, caller));
        }
    }
}

/// The token a request carries, if it carries a credential at all: `Ok(None)` for none,
/// `Err(())` for a credential that holds no Formulary token.
fn presented_token(headers: &HeaderMap) -> Result<Option<String>, ()> {
    let Some(value) = headers.get(AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| ())?.trim();
    let (scheme, rest) = value.split_once(' ').ok_or(())?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return Ok(Some(rest.to_owned()));
    }
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(());
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest)
        .map_err(|_| ())?;
    let decoded = String::from_utf8(decoded).map_err(|_| ())?;
    let (username, password) = decoded.split_once(':').unwrap_or((&decoded, ""));
    // The token is the password (`user:frm_…@host`, netrc's `password`); some people put it
    // in the username instead (`frm_…@host`), as other registries' tokens allow.
    let token = [password, username]
        .into_iter()
        .find(|part| part.starts_with("frm_"))
        .map(str::to_owned);
    token.map(Some).ok_or(())
}

/// What checking a token found.
enum Checked {
    /// A valid token: its holder.
    Caller(GatewayCaller),
    /// Unknown, revoked or expired (or, checked against the local copy while the database is
    /// down, of a disabled account: the copy holds only usable tokens, so it cannot say which).
    Refused { from_local_copy: bool },
    /// The database is down and the local copy holds no tokens: the request goes on without a
    /// caller (it is refused with a 503 where every request needs a token).
    Unchecked,
}

/// Checks a token for reading the gateway: any valid token of an enabled person who holds a
/// role, or of a service account, whatever its scope. While the database is down, the local
/// copy's tokens answer (the same rules, as of when the copy was last written).
async fn caller_for(state: &AppState, secret: &str) -> Result<Checked, ApiError> {
    let key: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
    // Read before the check, so that a change landing during it makes the memory stale.
    let generation = state.snapshot.generation();
    if let Some(caller) = state.gateway_tokens.remembered(&key, generation) {
        return Ok(Checked::Caller(caller));
    }
    let actor = if state.database.is_offline() {
        match state.database.token_from_local_copy(secret) {
            Ok(Some(token)) => token.actor,
            Ok(None) => {
                return Ok(Checked::Refused {
                    from_local_copy: true,
                })
            }
            // Where anonymous reading is allowed, the request goes on unattributed; otherwise
            // it must wait for the database.
            Err(_) => {
                return match state.gateway_access {
                    GatewayAccess::Anonymous => Ok(Checked::Unchecked),
                    GatewayAccess::Token => Err(crate::offline::unavailable(
                        "tokens cannot be checked without it",
                    )),
                }
            }
        }
    } else {
        let Some((principal, _scope)) = crate::auth::token_principal(state, secret).await? else {
            return Ok(Checked::Refused {
                from_local_copy: false,
            });
        };
        principal.actor
    };
    let caller = GatewayCaller { actor };
    state
        .gateway_tokens
        .remember(key, generation, caller.clone());
    Ok(Checked::Caller(caller))
}

/// Why a request was refused.
enum Refusal {
    Missing,
    NotAToken,
    Invalid(ApiError),
}

/// The 401 every client can show: problem+json saying how to get a token, an HTTP reason
/// phrase for pip (which prints only that), and a Basic challenge (pip, uv, R) beside a Bearer
/// one (npm).
fn unauthorised(state: &AppState, refusal: Refusal) -> Response {
    let account = state
        .public_url
        .join("account")
        .map_or_else(|_| state.public_url.to_string(), |url| url.to_string());
    let how = format!(
        "Create a token for package clients at {account} (\"Tokens for package clients\"), then run `formulary setup --server {}` to configure pip, uv, R, conda and npm with it; or put it in your client's index URL as the password (https://anything:frm_…@host/…)",
        state.public_url
    );
    let (title, detail, phrase) = match refusal {
        Refusal::Missing => (
            "Token required".to_owned(),
            format!("This package gateway needs a Formulary token on every request, so that downloads are recorded against the person who made them. {how}."),
            format!("Unauthorized: this gateway needs a Formulary token; create one at {account}"),
        ),
        Refusal::NotAToken => (
            "Not a Formulary token".to_owned(),
            format!("The request carried credentials, but no Formulary token (a secret starting frm_) as the password or the bearer token. {how}."),
            format!("Unauthorized: the credentials hold no Formulary token; create one at {account}"),
        ),
        Refusal::Invalid(error) => (
            error.title.clone(),
            format!("{} {how}.", error.detail),
            format!("Unauthorized: {}; create a new token at {account}", error.title.to_lowercase()),
        ),
    };
    let mut response = ApiError::new(StatusCode::UNAUTHORIZED, title, detail).into_response();
    let headers = response.headers_mut();
    headers.remove(WWW_AUTHENTICATE);
    headers.append(
        WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"Formulary package gateway\", charset=\"UTF-8\""),
    );
    headers.append(
        WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"Formulary package gateway\""),
    );
    let phrase: String = phrase
        .chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(300)
        .collect();
    if let Ok(phrase) = hyper::ext::ReasonPhrase::try_from(phrase) {
        response.extensions_mut().insert(phrase);
    }
    response
}

/// The middleware on the gateway's routes (see [`crate::router::app`]).
pub(crate) async fn authenticate(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let token = match presented_token(request.headers()) {
        Ok(token) => token,
        Err(()) => return unauthorised(&state, Refusal::NotAToken),
    };
    match token {
        None if state.gateway_access == GatewayAccess::Token => {
            return unauthorised(&state, Refusal::Missing)
        }
        None => {}
        Some(secret) => match caller_for(&state, &secret).await {
            Ok(Checked::Caller(caller)) => {
                request.extensions_mut().insert(caller);
            }
            Ok(Checked::Unchecked) => {}
            Ok(Checked::Refused { from_local_copy }) => {
                let detail = if from_local_copy {
                    "The token is unknown, revoked or expired, or its account is disabled (the database is unavailable, so it was checked against the server's local copy of usable tokens, which cannot say which)."
                } else {
                    "The token is unknown, revoked or expired."
                };
                return unauthorised(
                    &state,
                    Refusal::Invalid(ApiError::new(
                        StatusCode::UNAUTHORIZED,
                        "Invalid token",
                        detail,
                    )),
                );
            }
            Err(error) if error.status == StatusCode::UNAUTHORIZED => {
                return unauthorised(&state, Refusal::Invalid(error))
            }
            Err(error) => return error.into_response(),
        },
    }
    // The credential has done its work: nothing further down sees it.
    request.headers_mut().remove(AUTHORIZATION);
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(credentials: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let encoded = base64::engine::general_purpose::STANDARD.encode(credentials);
        headers.insert(
            AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {encoded}")).expect("header"),
        );
        headers
    }

    #[test]
    fn tokens_are_read_the_way_each_client_sends_them() {
        assert_eq!(presented_token(&HeaderMap::new()), Ok(None));
        assert_eq!(
            presented_token(&basic("jane:frm_abc")),
            Ok(Some("frm_abc".to_owned())),
            "pip, uv, R and netrc: any username, the token as password"
        );
        assert_eq!(
            presented_token(&basic("frm_abc:")),
            Ok(Some("frm_abc".to_owned())),
            "the token as the username"
        );
        assert_eq!(
            presented_token(&basic("frm_abc")),
            Ok(Some("frm_abc".to_owned()))
        );
        assert_eq!(presented_token(&basic("jane:hunter2")), Err(()));
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Bearer frm_xyz"));
        assert_eq!(presented_token(&headers), Ok(Some("frm_xyz".to_owned())));
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Digest x=1"));
        assert_eq!(presented_token(&headers), Err(()));
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Basic !!!"));
        assert_eq!(presented_token(&headers), Err(()));
    }

    #[test]
    fn access_modes_parse_with_a_helpful_error() {
        assert_eq!("token".parse(), Ok(GatewayAccess::Token));
        assert_eq!("anonymous".parse(), Ok(GatewayAccess::Anonymous));
        let error = "tokens".parse::<GatewayAccess>().expect_err("refused");
        assert!(error.contains("\"token\""), "{error}");
    }

    #[test]
    fn remembered_tokens_are_forgotten_after_a_while() {
        let tokens = GatewayTokens::default();
        let caller = GatewayCaller {
            actor: "user:jane".to_owned(),
        };
        tokens.remember([1; 32], 7, caller.clone());
        assert_eq!(tokens.remembered(&[1; 32], 7), Some(caller));
        assert_eq!(tokens.remembered(&[2; 32], 7), None);
        assert_eq!(
            tokens.remembered(&[1; 32], 8),
            None,
            "a change anywhere (a revocation on another replica) ends the memory"
        );
        if let Ok(mut valid) = tokens.valid.lock() {
            for (at, _, _) in valid.values_mut() {
                *at = Instant::now().checked_sub(REMEMBERED_FOR).unwrap_or(*at);
            }
        }
        assert_eq!(tokens.remembered(&[1; 32], 7), None);
    }
}
