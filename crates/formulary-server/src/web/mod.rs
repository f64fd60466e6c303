//! The web UI: server-rendered pages in the NHS.UK design system's style, working without
//! JavaScript. Every page that changes state is a form checked for CSRF ([`session`]); every
//! page carries a strict Content Security Policy.

mod account;
mod admin;
mod assets;
mod catalogue;
mod device;
mod evidence;
pub(crate) mod notifications;
mod oidc;
pub(crate) mod page;
mod password_reset;
mod reports;
mod requests;
mod review;
pub(crate) mod session;
mod sign_in;
mod sign_out;

pub(crate) use sign_in::with_retry_after;

use axum::http::header::{
    CONTENT_SECURITY_POLICY, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use maud::html;

use crate::error::ApiError;
use crate::state::AppState;

/// A failure shown as a page (not JSON): what happened, and what to do next.
#[derive(Debug)]
pub struct WebError(ApiError, Option<Box<session::Viewer>>);

impl WebError {
    /// The same failure, shown with the viewer's header (who is signed in, their navigation).
    pub(crate) fn seen_by(self, viewer: &session::Viewer) -> WebError {
        WebError(self.0, Some(Box::new(viewer.clone())))
    }
}

impl From<ApiError> for WebError {
    fn from(error: ApiError) -> WebError {
        WebError(error, None)
    }
}

impl From<formulary_store::StoreError> for WebError {
    fn from(error: formulary_store::StoreError) -> WebError {
        WebError(error.into(), None)
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let content = html! {
            h1 { (self.0.title) }
            p { (self.0.detail) }
            p { a href="/" { "Go to the home page" } " or " a href="/components" { "search the catalogue" } "." }
        };
        let viewer = self.1.map(|viewer| *viewer).unwrap_or_default();
        page::render_with_status(
            self.0.status,
            &viewer,
            page::Section::Home,
            &self.0.title,
            false,
            content,
        )
        .into_response()
    }
}

/// True when the client asks for HTML (a browser's `Accept` names `text/html`).
pub(crate) fn wants_html(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get_all(axum::http::header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(|value| value.contains("text/html"))
}

/// The page for an address that serves nothing, for browsers: what happened and where to go.
pub(crate) fn not_found_page(path: &str) -> Response {
    let shown: String = path.chars().take(200).collect();
    let content = html! {
        h1 { "Page not found" }
        p { "Nothing is served at " code { (shown) } ". If you typed the address, check it; if you followed a link, it may be out of date." }
        p { a href="/" { "Go to the home page" } ", " a href="/components" { "search the catalogue" } " or " a href="/requests" { "see your requests" } "." }
    };
    let page = page::render_with_status(
        axum::http::StatusCode::NOT_FOUND,
        &session::Viewer::default(),
        page::Section::Home,
        "Page not found",
        false,
        content,
    );
    with_security_headers(page.into_response())
}

/// Headers every page carries: no inline script or style, no framing, no sniffing.
async fn security_headers(response: Response) -> Response {
    with_security_headers(response)
}

fn with_security_headers(response: Response) -> Response {
    let mut response = response;
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    );
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    response
}

/// Headers for every answer of the application (applied by the front door,
/// [`crate::front_door`], over the whole router):
///
/// - `Cache-Control: no-store, private` on whatever is answered to a signed-in browser (session
///   cookie) or an API token, and on answers that set a cookie, unless the handler chose its
///   own caching (static assets). Request pages hold problem and credentials text, which must
///   not stay in a shared or browser cache.
/// - `Strict-Transport-Security` when `public_url` is `https`.
///
/// [`AnswerProtection::before`] looks at the request (and makes the connection's peer available
/// as `ConnectInfo<SocketAddr>`); [`AnswerProtection::after`] sets the headers on the answer.
pub(crate) struct AnswerProtection {
    /// The request carried a credential (an `Authorization` header or a session cookie).
    personal: bool,
}

impl AnswerProtection {
    /// Notes what the answer's headers depend on, before the request is handed on.
    pub(crate) fn before(request: &mut axum::extract::Request) -> Self {
        // Handlers written against the plain socket address (the gateway's download ledger)
        // see the TCP peer too (the server's own connection loop puts in both).
        let extensions = request.extensions();
        if let (None, Some(axum::extract::ConnectInfo(crate::state::Peer(peer)))) = (
            extensions.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>(),
            extensions
                .get::<axum::extract::ConnectInfo<crate::state::Peer>>()
                .copied(),
        ) {
            request
                .extensions_mut()
                .insert(axum::extract::ConnectInfo(peer));
        }
        let personal = request
            .headers()
            .contains_key(axum::http::header::AUTHORIZATION)
            || session::cookie(request.headers(), session::SESSION_COOKIE).is_some();
        Self { personal }
    }

    /// Sets the caching and transport-security headers on the answer.
    pub(crate) fn after(self, state: &AppState, response: &mut Response) {
        let headers = response.headers_mut();
        if (self.personal || headers.contains_key(axum::http::header::SET_COOKIE))
            && !headers.contains_key(axum::http::header::CACHE_CONTROL)
        {
            headers.insert(
                axum::http::header::CACHE_CONTROL,
                HeaderValue::from_static("no-store, private"),
            );
        }
        if state.is_https() {
            headers.insert(
                axum::http::header::STRICT_TRANSPORT_SECURITY,
                HeaderValue::from_static("max-age=31536000"),
            );
        }
    }
}

/// The web UI's routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(catalogue::home))
        .route("/sign-in", get(sign_in::show).post(sign_in::submit))
        .route("/sign-out", post(sign_out::sign_out))
        .route("/signed-out", get(sign_out::signed_out))
        .route("/device", get(device::show).post(device::approve))
        .route("/sign-in/oidc/{id}", get(oidc::start))
        .route("/sign-in/oidc/{id}/callback", get(oidc::callback))
        .route("/components", get(catalogue::search_page))
        .route(
            "/components/{ecosystem}/{name}",
            get(catalogue::component_page),
        )
        .route(
            "/components/{ecosystem}/{scope}/{name}",
            get(catalogue::scoped_component_page),
        )
        .route("/requests", get(requests::list).post(requests::create))
        .route("/requests/new", get(requests::new))
        .route("/requests/{id}", get(requests::show))
        .route("/requests/{id}/comments", post(requests::comment))
        .route("/requests/{id}/sign-offs", post(requests::sign_off))
        .route("/requests/{id}/decision", post(requests::decide))
        .route("/requests/{id}/withdraw", post(requests::withdraw))
        .route("/requests/{id}/assignments", post(review::assign))
        .route("/decisions", get(reports::decisions))
        .route("/metrics", get(reports::metrics_page))
        .route("/status", get(crate::upstreams::status_page))
        .route("/audit", get(reports::audit))
        .route("/account", get(account::show))
        .route("/account/password", post(account::change_password))
        .route("/account/tokens/{id}/revoke", post(account::revoke_token))
        .route("/notifications", get(notifications::show))
        .route("/notifications/read", post(notifications::mark_read))
        .route("/notifications/email", post(notifications::set_email))
        .route(
            "/account/gateway-tokens",
            post(account::issue_gateway_token),
        )
        .route(
            "/reset-password/{secret}",
            get(password_reset::show).post(password_reset::submit),
        )
        .merge(admin::routes())
        .layer(axum::middleware::map_response(security_headers))
        .route("/assets/{file}", get(assets::serve))
        .route("/assets/images/{file}", get(assets::image))
}
