//! A server started with the database down ([`formulary_store::Database::is_offline`]) serves
//! what its local copy holds: the package gateways, health and the upstream status. Everything
//! else (signing in, requests, the API's reads and writes, pages built from records) is answered
//! at once with a 503 saying why and what to do, never with a 500 or a wait.

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::state::AppState;

/// The 503 for anything that needs the database while it is down; `why` says what needed it.
pub(crate) fn unavailable(why: &str) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "Database unavailable",
        format!(
            "The database is unavailable, so this server only serves what it already holds (package indexes and files it cached before; {why}). Nothing was changed. Try again once the database is back; the operator sees this server's state at /readyz."
        ),
    )
}

/// Paths answered from memory or the local copy whatever the database does, besides the
/// gateways (which are not behind this layer).
fn served_without_database(path: &str) -> bool {
    matches!(path, "/status" | "/api/v1/upstreams") || path.starts_with("/assets/")
}

/// The layer over every route except the gateways' and the health checks': while the database
/// is down, refuses at once.
pub(crate) async fn refuse_while_offline(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if !state.database.is_offline() || served_without_database(request.uri().path()) {
        return next.run(request).await;
    }
    let error = unavailable("this page or operation needs the database");
    let mut response = if crate::web::wants_html(request.headers()) {
        crate::web::WebError::from(error).into_response()
    } else {
        error.into_response()
    };
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("30"));
    response
}
