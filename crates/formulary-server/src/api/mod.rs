//! The JSON API under `/api/v1`: one module per resource.

pub(crate) mod advisories;
pub(crate) mod catalogue;
pub(crate) mod channel_notices;
pub(crate) mod device;
pub mod entries;
pub(crate) mod openapi;
pub(crate) mod organisations;
pub(crate) mod people;
pub(crate) mod policy;
pub(crate) mod problems;
pub mod requests;
pub(crate) mod session;

use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// Any unknown path: an HTML page for a browser (its `Accept` names `text/html`), and
/// problem+json for everyone else.
pub(crate) async fn not_found(headers: HeaderMap, uri: Uri) -> Response {
    if crate::web::wants_html(&headers) && !uri.path().starts_with("/api/") {
        return crate::web::not_found_page(uri.path());
    }
    ApiError::not_found(format!(
        "nothing is served at {}; the API lives under /api/v1",
        uri.path()
    ))
    .into_response()
}

/// Reads a component purl from a query or body field, with a 400 that names the field.
pub(crate) fn parse_field<T: std::str::FromStr<Err = formulary_core::CoreError>>(
    field: &str,
    text: &str,
) -> Result<T, ApiError> {
    text.parse::<T>()
        .map_err(|error| ApiError::bad_request(format!("{field}: {error}")))
}
