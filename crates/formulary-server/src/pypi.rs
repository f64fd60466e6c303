//! The PyPI simple API (`/pypi/simple/`, `/o/{org}/pypi/simple/`, `/@YYYY-MM-DD/pypi/simple/`)
//! and its files: content negotiation (PEP 691), strong ETags, Range requests, and refusals that
//! pip and uv print.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Redirect, Response};
use formulary_core::ecosystems::pypi;
use formulary_core::ecosystems::Ecosystem;
use formulary_core::{Component, OrgCode};
use formulary_gateway::{FileOutcome, PageOutcome, PypiGateway, Rendered};

use crate::downloads::{serve_blob, set_file_headers, write_ledger, Requester};
use crate::error::ApiError;
use crate::gateway::{document_response, gateway_error, refusal, snapshot_for, view_for};
use crate::state::AppState;

/// Where this ecosystem's views live under a view prefix, for messages.
const PATH: &str = "/pypi/simple/";

/// The gateway serving an organisation: its own when it has upstreams of its own, else the default.
fn gateway<'a>(state: &'a AppState, organisation: &OrgCode) -> Result<&'a PypiGateway, ApiError> {
    state
        .pypi_by_organisation
        .get(organisation)
        .or(state.pypi.as_ref())
        .map(std::sync::Arc::as_ref)
        .ok_or_else(|| ApiError::not_found("the PyPI gateway is not configured on this server"))
}

/// The client asked for PEP 691 JSON rather than HTML.
fn wants_json(headers: &HeaderMap) -> bool {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    let mut best_json = -1.0f32;
    let mut best_html = -1.0f32;
    for item in accept.split(',') {
        let mut parts = item.split(';');
        let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let quality = parts
            .find_map(|part| {
                part.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
            })
            .unwrap_or(1.0);
        match media.as_str() {
            "application/vnd.pypi.simple.v1+json" | "application/vnd.pypi.simple.latest+json" => {
                best_json = best_json.max(quality)
            }
            "application/vnd.pypi.simple.v1+html"
            | "application/vnd.pypi.simple.latest+html"
            | "text/html"
            | "*/*" => best_html = best_html.max(quality),
            _ => {}
        }
    }
    best_json > 0.0 && best_json >= best_html
}

fn document(headers: &HeaderMap, json: bool, rendered: &Rendered, stale: bool) -> Response {
    let content_type = if json {
        pypi::JSON_CONTENT_TYPE
    } else if headers
        .get(header::ACCEPT)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|accept| accept.contains(pypi::HTML_CONTENT_TYPE))
    {
        pypi::HTML_CONTENT_TYPE
    } else {
        "text/html; charset=utf-8"
    };
    let mut response = document_response(headers, rendered, content_type, stale, false);
    response
        .headers_mut()
        .insert(header::VARY, HeaderValue::from_static("Accept"));
    response
}

/// `GET …/pypi/simple/`: the projects this gateway has served.
pub(crate) async fn root(
    State(state): State<AppState>,
    Path(params): Path<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let request = view_for(&state, &params)?;
    snapshot_for(&state, &request, PATH).await?;
    let listing = gateway(&state, &request.view.organisation)?
        .root_listing()
        .await
        .map_err(gateway_error)?;
    let json = wants_json(&headers);
    let rendered = if json { &listing.json } else { &listing.html };
    Ok(document(&headers, json, rendered, false))
}

/// `GET …/pypi/simple/{project}` without the trailing slash.
pub(crate) async fn project_without_slash(
    Path(params): Path<HashMap<String, String>>,
    uri: axum::http::Uri,
) -> Response {
    let _ = params;
    Redirect::permanent(&format!("{}/", uri.path())).into_response()
}

/// `GET …/pypi/simple/{project}/`.
pub(crate) async fn project(
    State(state): State<AppState>,
    Path(params): Path<HashMap<String, String>>,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> Result<Response, ApiError> {
    let name = params
        .get("project")
        .map(String::as_str)
        .unwrap_or_default();
    let component = Component::new(Ecosystem::Pypi, name)
        .map_err(|error| ApiError::not_found(error.to_string()))?;
    if component.name.as_str() != name {
        // PEP 503: redirect to the normalised name.
        let path = uri.path();
        let prefix = path.strip_suffix(&format!("{name}/")).unwrap_or(path);
        return Ok(Redirect::permanent(&format!("{prefix}{}/", component.name)).into_response());
    }
    let request = view_for(&state, &params)?;
    let (generation, snapshot) = snapshot_for(&state, &request, PATH).await?;
    let files_base = format!("../../files/{}/", component.name);
    match gateway(&state, &request.view.organisation)?
        .page(
            &snapshot,
            generation,
            &request.view,
            request.day,
            &component,
            &files_base,
            state.public_url.as_str(),
        )
        .await
        .map_err(gateway_error)?
    {
        PageOutcome::Page(served) => {
            let json = wants_json(&headers);
            let rendered = if json { served.json() } else { served.html() };
            Ok(document(&headers, json, rendered, served.stale))
        }
        PageOutcome::Missing => Err(ApiError::not_found(format!(
            "no upstream index has a project called {}",
            component.name
        ))),
    }
}

/// `GET …/pypi/files/{project}/{filename}`.
pub(crate) async fn file(
    State(state): State<AppState>,
    Path(params): Path<HashMap<String, String>>,
    headers: HeaderMap,
    requester: Requester,
) -> Result<Response, ApiError> {
    let name = params
        .get("project")
        .map(String::as_str)
        .unwrap_or_default();
    let requested = params
        .get("filename")
        .map(String::as_str)
        .unwrap_or_default();
    // PEP 658/714: `<file>.metadata` is the file's core metadata, under the same policy.
    let (filename, wants_metadata) = match requested.strip_suffix(".metadata") {
        Some(distribution) => (distribution, true),
        None => (requested, false),
    };
    let component = Component::new(Ecosystem::Pypi, name)
        .map_err(|error| ApiError::not_found(error.to_string()))?;
    if let Err(why) = pypi::check_filename(filename) {
        return Err(ApiError::not_found(format!(
            "'{}' is not a file Formulary serves: {why}",
            filename.escape_debug()
        )));
    }
    let request = view_for(&state, &params)?;
    let (_, snapshot) = snapshot_for(&state, &request, PATH).await?;
    let gateway = gateway(&state, &request.view.organisation)?;
    let outcome = if wants_metadata {
        gateway
            .metadata(&snapshot, &request.view, &component, filename)
            .await
    } else {
        let stream = !headers.contains_key(header::RANGE);
        gateway
            .file(&snapshot, &request.view, &component, filename, stream)
            .await
    }
    .map_err(gateway_error)?;
    let ledger = |version: String, outcome: &str| {
        requester.line(
            &request.view.organisation,
            component.clone(),
            version,
            filename,
            outcome,
        )
    };
    match outcome {
        FileOutcome::Refused(decision) => {
            if !wants_metadata {
                write_ledger(&state, &ledger(decision.version.clone(), "refused")).await;
            }
            Ok(refusal(&state, &decision))
        }
        FileOutcome::Missing => Err(ApiError::not_found(format!(
            "{} has no file called {}",
            component.name,
            requested.escape_debug()
        ))),
        FileOutcome::Serve { blob, version } => {
            if !wants_metadata {
                write_ledger(&state, &ledger(version, "served")).await;
            }
            serve_blob(&state, &blob.sha256, &headers).await
        }
        FileOutcome::Stream {
            body,
            size,
            sha256,
            version,
        } => {
            write_ledger(&state, &ledger(version, "served")).await;
            // The first request for a large file: bytes as they arrive from upstream (a request
            // with a Range is answered from the cache once the file is whole).
            let mut response = Body::from_stream(body).into_response();
            if let Some(size) = size {
                response
                    .headers_mut()
                    .insert(header::CONTENT_LENGTH, HeaderValue::from(size));
            }
            let etag = sha256.map(|digest| format!("\"sha256-{digest}\""));
            set_file_headers(&mut response, etag.as_deref());
            Ok(response)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pip_and_uv_accept_headers_negotiate_json() {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_static("application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01"));
        assert!(wants_json(&headers));
        headers.insert(header::ACCEPT, HeaderValue::from_static("text/html"));
        assert!(!wants_json(&headers));
        headers.remove(header::ACCEPT);
        assert!(!wants_json(&headers));
    }
}
