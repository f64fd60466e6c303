//! Sessions in the browser: the session cookie (HttpOnly, SameSite=Lax, Secure except on
//! loopback development hosts), the viewer it identifies, and CSRF protection for every form
//! that changes state (a per-session token in a hidden field, plus an Origin check).

use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::{COOKIE, ORIGIN, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Duration;
use serde::de::DeserializeOwned;

use crate::identity::Principal;
use crate::state::AppState;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "formulary_session";
/// The cookie that protects the sign-in form (there is no session yet).
pub const SIGN_IN_COOKIE: &str = "formulary_sign_in";
/// How long a session lasts: a working day.
pub const SESSION_HOURS: i64 = 10;
/// Largest form body accepted.
pub const MAX_FORM_BYTES: usize = 64 * 1024;

/// How long a session lasts.
pub fn session_lifetime() -> Duration {
    Duration::hours(SESSION_HOURS)
}

/// Reads one cookie's value.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Lax, Path=/, and `Secure` when the server's
/// `public_url` is `https` (decided by configuration, never by the request's `Host`).
pub fn set_cookie(secure: bool, name: &str, value: &str, max_age_seconds: i64) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_seconds}{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("invalid=; Max-Age=0"))
}

/// Adds a cookie to a response.
pub fn with_cookie(mut response: Response, cookie: HeaderValue) -> Response {
    response.headers_mut().append(SET_COOKIE, cookie);
    response
}

/// Who is looking at a page: a signed-in person, or nobody.
#[derive(Debug, Clone, Default)]
pub struct Viewer {
    /// The signed-in person.
    pub principal: Option<Principal>,
    /// Their session's CSRF token.
    pub csrf_token: Option<String>,
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Some(secret) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Ok(Viewer::default());
        };
        match state.database.session(secret).await {
            Ok(Some(session)) => Ok(Viewer {
                principal: Some(Principal::from_user(session.user)),
                csrf_token: Some(session.csrf_token),
            }),
            Ok(None) => Ok(Viewer::default()),
            Err(error) => {
                tracing::error!(%error, "could not read the session");
                Err(StatusCode::SERVICE_UNAVAILABLE.into_response())
            }
        }
    }
}

/// A signed-in viewer; anyone else is sent to the sign-in page and brought back afterwards.
#[derive(Debug, Clone)]
pub struct SignedIn {
    /// Who.
    pub principal: Principal,
    /// The viewer, for rendering.
    pub viewer: Viewer,
}

fn sign_in_redirect(parts: &Parts) -> Response {
    let next = parts.uri.path_and_query().map_or("/", |path| path.as_str());
    let encoded: String = url::form_urlencoded::byte_serialize(next.as_bytes()).collect();
    Redirect::to(&format!("/sign-in?next={encoded}")).into_response()
}

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let viewer = Viewer::from_request_parts(parts, state).await?;
        match viewer.principal.clone() {
            Some(principal) => Ok(SignedIn { principal, viewer }),
            None => Err(sign_in_redirect(parts)),
        }
    }
}

/// Compares two secrets in time that does not depend on where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |difference, (x, y)| difference | (x ^ y))
            == 0
}

/// Refuses a cross-site form post: when the browser sends `Origin`, it must be the origin of
/// the configured `public_url` (`expected`, e.g. `https://formulary.example.nhs.uk`). The
/// request's `Host` is not consulted, so a proxy that rewrites it changes nothing.
pub fn same_origin(headers: &HeaderMap, expected: &str) -> bool {
    let Some(origin) = headers.get(ORIGIN).and_then(|value| value.to_str().ok()) else {
        return true;
    };
    let matches = origin.trim_end_matches('/').eq_ignore_ascii_case(expected);
    if !matches {
        tracing::warn!(
            origin = %origin.escape_debug(),
            expected,
            "form refused: its Origin is not this server's public_url; if people reach Formulary at that address, set public_url to it"
        );
    }
    matches
}

/// A form that could not be accepted: shown as a short page with what to do next.
#[derive(Debug, Clone)]
pub struct Refused {
    status: StatusCode,
    title: &'static str,
    detail: String,
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        let markup = maud::html! {
            (maud::DOCTYPE)
            html lang="en-GB" {
                head { meta charset="utf-8"; title { (self.title) " – Formulary" } link rel="stylesheet" href="/assets/nhsuk-frontend.min.css"; }
                body { div.nhsuk-width-container { main.nhsuk-main-wrapper #maincontent {
                    h1 { (self.title) } p { (self.detail) } p { a href="/" { "Go to the home page" } }
                } } }
            }
        };
        (self.status, axum::response::Html(markup.into_string())).into_response()
    }
}

fn refused(status: StatusCode, title: &'static str, detail: impl Into<String>) -> Refused {
    Refused {
        status,
        title,
        detail: detail.into(),
    }
}

/// A state-changing form from a signed-in person, checked for CSRF and size, then parsed
/// into `T` (unknown fields, such as the token itself, are ignored).
#[derive(Debug)]
pub struct PostedForm<T> {
    /// Who sent it.
    pub signed_in: SignedIn,
    /// The parsed fields.
    pub form: T,
}

/// Reads a form body within [`MAX_FORM_BYTES`], with a page saying so when it is larger.
pub async fn read_form_body(body: Body) -> Result<Vec<(String, String)>, Refused> {
    let bytes = axum::body::to_bytes(body, MAX_FORM_BYTES).await.map_err(|_| {
        refused(
            StatusCode::PAYLOAD_TOO_LARGE,
            "The form is too large",
            "Forms are limited to 64 KB and each text field to 4,000 characters. Shorten your answers, or link to a document, and send the form again.",
        )
    })?;
    Ok(url::form_urlencoded::parse(&bytes).into_owned().collect())
}

/// Builds `T` from form pairs.
pub fn parse_pairs<T: DeserializeOwned>(pairs: &[(String, String)]) -> Result<T, Refused> {
    let value = serde_json::Value::Object(
        pairs
            .iter()
            .filter(|(key, _)| key != "csrf_token")
            .map(|(key, value)| (key.clone(), serde_json::Value::String(value.clone())))
            .collect(),
    );
    serde_json::from_value(value).map_err(|error| {
        refused(
            StatusCode::BAD_REQUEST,
            "The form could not be read",
            format!("{error}. Go back, reload the page and try again."),
        )
    })
}

/// The value of one form field.
pub fn field<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

/// The page for a form whose CSRF token is missing or wrong.
pub fn csrf_refusal() -> Response {
    let refusal = refused(
        StatusCode::FORBIDDEN,
        "This form has expired",
        "The form did not carry this session's security token, so nothing was changed. This happens when a form was sent from another site, or after you signed out. Reload the page and send the form again.",
    );
    refusal.into_response()
}

impl<T: DeserializeOwned> FromRequest<AppState> for PostedForm<T> {
    type Rejection = Response;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = request.into_parts();
        let signed_in = SignedIn::from_request_parts(&mut parts, state).await?;
        if !same_origin(&parts.headers, &state.public_origin()) {
            return Err(csrf_refusal());
        }
        let pairs = read_form_body(body)
            .await
            .map_err(IntoResponse::into_response)?;
        let expected = signed_in.viewer.csrf_token.as_deref().unwrap_or("");
        let sent = field(&pairs, "csrf_token").unwrap_or("");
        if expected.is_empty() || !same_secret(sent, expected) {
            tracing::warn!(user = %signed_in.principal.actor, "form refused: CSRF token missing or wrong");
            return Err(csrf_refusal());
        }
        let form = parse_pairs(&pairs).map_err(IntoResponse::into_response)?;
        Ok(PostedForm { signed_in, form })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_read_and_set_safely() {
        let mut headers = HeaderMap::new();
        headers.insert(
            COOKIE,
            HeaderValue::from_static("a=1; formulary_session=abc; b=2"),
        );
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("abc"));
        let value = set_cookie(true, SESSION_COOKIE, "x", 60);
        let text = value.to_str().unwrap();
        assert!(
            text.contains("HttpOnly")
                && text.contains("SameSite=Lax")
                && text.ends_with("; Secure"),
            "{text}"
        );
        assert!(!set_cookie(false, SESSION_COOKIE, "x", 60)
            .to_str()
            .unwrap()
            .contains("Secure"));
    }

    #[test]
    fn cross_site_origins_are_refused() {
        let expected = "https://formulary.example.nhs.uk";
        let mut headers = HeaderMap::new();
        headers.insert(
            axum::http::header::HOST,
            HeaderValue::from_static("evil.example"),
        );
        assert!(
            same_origin(&headers, expected),
            "no Origin: the token decides"
        );
        headers.insert(
            ORIGIN,
            HeaderValue::from_static("https://formulary.example.nhs.uk"),
        );
        assert!(same_origin(&headers, expected));
        headers.insert(ORIGIN, HeaderValue::from_static("https://evil.example"));
        assert!(
            !same_origin(&headers, expected),
            "an Origin that matches the Host but not public_url is refused"
        );
        headers.insert(
            ORIGIN,
            HeaderValue::from_static("http://formulary.example.nhs.uk"),
        );
        assert!(!same_origin(&headers, expected), "the scheme counts");
        assert!(
            same_secret("abc", "abc") && !same_secret("abc", "abd") && !same_secret("abc", "ab")
        );
    }
}
