//! Signing out, and single logout with the identity provider. `POST /sign-out` ends
//! Formulary's session first, whatever happens next; for a session signed in through an OpenID
//! provider whose discovery document names an `end_session_endpoint`, it then sends the browser
//! there (RP-initiated logout: `id_token_hint`, `client_id`, `post_logout_redirect_uri` built
//! from `public_url`, and a random `state` also kept in a short-lived cookie), and the provider
//! sends it back to `GET /signed-out`. A provider without that endpoint, or one that cannot be
//! reached, leaves only Formulary's session ended, and the page says so.

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;

use super::page::{self, Section};
use super::session::{
    self, cookie, csrf_refusal, read_form_body, same_origin, same_secret, set_cookie, with_cookie,
    Viewer, SESSION_COOKIE,
};
use crate::state::AppState;

/// The cookie that ties the provider's answer to the sign-out this browser started:
/// `<state>.<provider id>`.
pub const SIGN_OUT_COOKIE: &str = "formulary_sign_out";
/// Minutes a person has to confirm signing out at the provider.
const SIGN_OUT_MINUTES: i64 = 10;

/// Where the provider sends people back after signing them out: `<public_url>signed-out`.
/// Register it with the provider as a post-logout redirect URI.
pub(crate) fn post_logout_uri(state: &AppState) -> url::Url {
    let mut url = state.public_url.clone();
    url.set_path(&format!("{}signed-out", state.public_url.path()));
    url.set_query(None);
    url
}

/// `POST /sign-out`: ends the session for good (so the cookie stops working even if kept),
/// then signs the person out at their identity provider when there is one to ask.
pub(crate) async fn sign_out(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let pairs = match read_form_body(body).await {
        Ok(pairs) => pairs,
        Err(refusal) => return refusal.into_response(),
    };
    let Some(secret) = cookie(&headers, SESSION_COOKIE) else {
        return Redirect::to("/").into_response();
    };
    let session = match state.database.session(secret).await {
        Ok(session) => session,
        Err(error) => {
            tracing::error!(%error, "could not read the session");
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
    };
    let mut provider_session = None;
    if let Some(session) = session {
        let sent = session::field(&pairs, "csrf_token").unwrap_or("");
        if !same_origin(&headers, &state.public_origin()) || !same_secret(sent, &session.csrf_token)
        {
            return csrf_refusal();
        }
        match state.database.end_session_for_logout(secret).await {
            Ok(ended) => provider_session = ended,
            Err(error) => {
                tracing::error!(%error, "could not end the session");
                return StatusCode::SERVICE_UNAVAILABLE.into_response();
            }
        }
    }
    let cleared = set_cookie(state.is_https(), SESSION_COOKIE, "", 0);
    let Some(ended) = provider_session else {
        return with_cookie(Redirect::to("/").into_response(), cleared);
    };
    let Some(provider) = state.oidc.find(&ended.provider) else {
        // The provider was taken out of the configuration since the sign-in.
        return with_cookie(Redirect::to("/signed-out").into_response(), cleared);
    };
    let logout_state = formulary_store::random_secret();
    let target = provider
        .logout_url(&ended.id_token, &post_logout_uri(&state), &logout_state)
        .await;
    match target {
        Ok(Some(url)) => {
            let response = with_cookie(Redirect::to(url.as_str()).into_response(), cleared);
            with_cookie(
                response,
                set_cookie(
                    state.is_https(),
                    SIGN_OUT_COOKIE,
                    &format!("{logout_state}.{}", provider.settings.id),
                    SIGN_OUT_MINUTES * 60,
                ),
            )
        }
        Ok(None) => with_cookie(Redirect::to("/signed-out").into_response(), cleared),
        Err(error) => {
            tracing::warn!(provider = %provider.settings.id, %error, "could not sign out at the identity provider; Formulary's session has ended");
            with_cookie(
                Redirect::to(&format!("/signed-out?unreachable={}", provider.settings.id))
                    .into_response(),
                cleared,
            )
        }
    }
}

/// The query of `GET /signed-out`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Back {
    /// The `state` the provider sends back.
    #[serde(default)]
    state: String,
    /// The provider that could not be reached.
    #[serde(default)]
    unreachable: String,
}

/// `GET /signed-out`: where people land after signing out through their identity provider.
/// What it says depends on whether the provider's answer belongs to this browser's sign-out;
/// nothing is acted on either way (the session ended before the browser left).
pub(crate) async fn signed_out(
    State(state): State<AppState>,
    headers: HeaderMap,
    viewer: Viewer,
    Query(back): Query<Back>,
) -> Response {
    let kept = cookie(&headers, SIGN_OUT_COOKIE).unwrap_or("");
    let confirmed = kept
        .split_once('.')
        .filter(|(expected, _)| !back.state.is_empty() && same_secret(&back.state, expected))
        .and_then(|(_, id)| state.oidc.find(id))
        .map(|provider| provider.settings.display_name.clone());
    let unreachable = state
        .oidc
        .find(&back.unreachable)
        .map(|provider| provider.settings.display_name.clone());
    let content = html! {
        div.nhsuk-grid-row { div.nhsuk-grid-column-two-thirds {
            h1 { "You are signed out" }
            @if let Some(name) = &confirmed {
                p { "You have signed out of Formulary and of " (name) "." }
            } @else if let Some(name) = &unreachable {
                p { "You have signed out of Formulary. " (name) " could not be reached, so you may still be signed in there: close your browser, or sign out at " (name) " itself, if others use this computer." }
            } @else {
                p { "You have signed out of Formulary." }
            }
            p { "To use Formulary again, " a href="/sign-in" { "go to the sign-in page" } ", or " a href="/" { "go to the home page" } " to search the catalogue, which needs no account." }
        } }
    };
    let response = page::render(&viewer, Section::Account, "Signed out", false, content);
    with_cookie(
        response.into_response(),
        set_cookie(state.is_https(), SIGN_OUT_COOKIE, "", 0),
    )
}
