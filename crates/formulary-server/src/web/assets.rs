//! The stylesheets and icons, compiled into the binary and served with long-lived caching.

use axum::extract::Path;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// Every asset: name, media type, content.
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "nhsuk-frontend.min.css",
        "text/css; charset=utf-8",
        include_bytes!("../../assets/nhsuk/nhsuk-frontend.min.css"),
    ),
    (
        "formulary.css",
        "text/css; charset=utf-8",
        include_bytes!("../../assets/formulary.css"),
    ),
];

/// The icons the NHS.UK stylesheet refers to at `/assets/images/…`.
const IMAGES: &[(&str, &[u8])] = &[
    (
        "nhsuk-icon-arrow-down.svg",
        include_bytes!("../../assets/nhsuk/nhsuk-icon-arrow-down.svg"),
    ),
    (
        "nhsuk-icon-arrow-up.svg",
        include_bytes!("../../assets/nhsuk/nhsuk-icon-arrow-up.svg"),
    ),
    (
        "nhsuk-icon-arrow-up-down.svg",
        include_bytes!("../../assets/nhsuk/nhsuk-icon-arrow-up-down.svg"),
    ),
    (
        "nhsuk-icon-cross.svg",
        include_bytes!("../../assets/nhsuk/nhsuk-icon-cross.svg"),
    ),
];

fn answer(headers: &HeaderMap, kind: &'static str, body: &'static [u8]) -> Response {
    let etag = format!("\"{}-{}\"", env!("CARGO_PKG_VERSION"), body.len());
    let unchanged = headers
        .get(IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value == etag);
    let cache = [
        (CACHE_CONTROL, "public, max-age=86400".to_owned()),
        (ETAG, etag),
    ];
    if unchanged {
        return (StatusCode::NOT_MODIFIED, cache).into_response();
    }
    (
        StatusCode::OK,
        [(CONTENT_TYPE, kind.to_owned())],
        cache,
        body,
    )
        .into_response()
}

/// `GET /assets/{file}`.
pub(crate) async fn serve(
    headers: HeaderMap,
    Path(file): Path<String>,
) -> Result<Response, ApiError> {
    ASSETS
        .iter()
        .find(|(name, _, _)| *name == file)
        .map(|(_, kind, body)| answer(&headers, kind, body))
        .ok_or_else(|| ApiError::not_found(format!("there is no asset '{}'", file.escape_debug())))
}

/// `GET /assets/images/{file}`.
pub(crate) async fn image(
    headers: HeaderMap,
    Path(file): Path<String>,
) -> Result<Response, ApiError> {
    IMAGES
        .iter()
        .find(|(name, _)| *name == file)
        .map(|(_, body)| answer(&headers, "image/svg+xml", body))
        .ok_or_else(|| ApiError::not_found(format!("there is no image '{}'", file.escape_debug())))
}
