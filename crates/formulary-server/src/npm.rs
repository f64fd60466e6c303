//! The npm registry (`/npm/`, `/o/{org}/npm/`, `/@YYYY-MM-DD/npm/`): packuments in both forms
//! (full `application/json` and abbreviated `application/vnd.npm.install-v1+json`, each with
//! its own entity tag, `Vary: Accept`), scoped names (`@scope/name` and `@scope%2fname`),
//! tarballs with Range and 304, refusals npm and pnpm show, and `npm audit`'s bulk advisory
//! endpoint answered by the formulary.

use std::collections::HashMap;
use std::io::Read;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use formulary_core::ecosystems::npm;
use formulary_core::ecosystems::Ecosystem;
use formulary_core::policy::{Decision, Effect, ReasonCode};
use formulary_core::Component;
use formulary_gateway::{NpmGateway, PackumentOutcome, TarballOutcome};

use crate::downloads::{serve_blob, write_ledger, Requester};
use crate::error::ApiError;
use crate::gateway::{
    document_response, gateway_error, reason_phrase, request_link, snapshot_for, view_for,
};
use crate::state::AppState;

/// Where this ecosystem's views live under a view prefix, for messages.
const PATH: &str = "/npm/";

/// Largest `npm audit` body accepted, after decompression.
const MAX_AUDIT_BYTES: u64 = 64 * 1024 * 1024;

fn gateway(state: &AppState) -> Result<&NpmGateway, ApiError> {
    state
        .npm
        .as_deref()
        .ok_or_else(|| ApiError::not_found("the npm gateway is not configured on this server"))
}

/// An answer npm and pnpm show: JSON with the message in `error` (which npm prints), the same
/// fields as the other gateways' problem documents, and the message in the `npm-notice` header
/// (which npm prints too) and the reason phrase.
fn npm_error(status: StatusCode, title: &str, detail: &str) -> Response {
    let body = serde_json::json!({
        "error": detail,
        "type": "about:blank",
        "title": title,
        "status": status.as_u16(),
        "detail": detail,
    });
    let mut response = (status, serde_json::to_vec(&body).unwrap_or_default()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(notice) = HeaderValue::from_str(&printable_ascii(detail)) {
        response.headers_mut().insert("npm-notice", notice);
    }
    response
}

/// One line of printable ASCII, at most 300 characters: what a header or a reason phrase holds.
fn printable_ascii(text: &str) -> String {
    text.replace('…', "...")
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .take(300)
        .collect()
}

fn from_api(error: ApiError) -> Response {
    npm_error(error.status, &error.title, &error.detail)
}

/// A refused tarball: 403 with the reason in `error`, `npm-notice` and the reason phrase (npm
/// prints `403 Forbidden - GET <url> - <error>`), every reason and the request link.
fn refusal(state: &AppState, decision: &Decision) -> Response {
    let denials: Vec<String> = decision
        .reasons
        .iter()
        .filter(|reason| reason.effect == Effect::Deny)
        .map(|reason| reason.message.clone())
        .collect();
    let link = request_link(decision);
    let link = if link.starts_with('/') {
        format!("{}{link}", state.public_url.as_str().trim_end_matches('/'))
    } else {
        link
    };
    let error = format!(
        "{}. Request it at {link}",
        reason_phrase(decision).trim_end_matches('.')
    );
    let body = serde_json::json!({
        "error": error,
        "type": "about:blank",
        "title": format!("Blocked by Formulary: {} {} is not allowed", decision.component.name, decision.version),
        "status": 403,
        "detail": denials.join(" | "),
        "reasons": decision.reasons,
        "request": link,
    });
    let mut response = (
        StatusCode::FORBIDDEN,
        serde_json::to_vec(&body).unwrap_or_default(),
    )
        .into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(notice) = HeaderValue::from_str(&printable_ascii(&error)) {
        headers.insert("npm-notice", notice);
    }
    if let Ok(phrase) = hyper::ext::ReasonPhrase::try_from(reason_phrase(decision)) {
        response.extensions_mut().insert(phrase);
    }
    response
}

/// The client asked for the abbreviated packument (npm and pnpm do when installing).
fn wants_abbreviated(headers: &HeaderMap) -> bool {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    let mut abbreviated = -1.0f32;
    let mut full = -1.0f32;
    for item in accept.split(',') {
        let mut parts = item.split(';');
        let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let quality = parts
            .find_map(|part| {
                part.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
            })
            .unwrap_or(1.0);
        match media.as_str() {
            npm::ABBREVIATED_CONTENT_TYPE => abbreviated = abbreviated.max(quality),
            "application/json" | "application/*" | "*/*" => full = full.max(quality),
            _ => {}
        }
    }
    abbreviated > 0.0 && abbreviated >= full
}

/// The package name from the path: `{package}` (`lodash`, or `@scope/name` decoded from
/// `@scope%2fname`) or `{scope}/{name}`.
fn package_name(params: &HashMap<String, String>) -> Result<Component, ApiError> {
    let name = match (
        params.get("scope"),
        params.get("name"),
        params.get("package"),
    ) {
        (Some(scope), Some(name), _) if scope.starts_with('@') => format!("{scope}/{name}"),
        (_, _, Some(package)) => package.clone(),
        _ => return Err(ApiError::not_found("not an npm package path")),
    };
    Component::new(Ecosystem::Npm, &name).map_err(|error| ApiError::not_found(error.to_string()))
}

/// The absolute URL of this view's npm registry, from the configured public URL (never the
/// request's Host): tarball URLs in packuments start with it.
fn registry_base(state: &AppState, params: &HashMap<String, String>) -> String {
    let mut base = state.public_url.as_str().trim_end_matches('/').to_owned();
    if let Some(org) = params.get("org") {
        base.push_str(&format!("/o/{org}"));
    }
    if let Some(at) = params.get("at") {
        base.push_str(&format!("/{at}"));
    }
    base.push_str("/npm/");
    base
}

/// `GET /npm/-/ping` (`npm ping`, and how `formulary setup` finds that a server offers npm):
/// an empty JSON object, as the public registry answers.
pub(crate) async fn ping() -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({}))
}

/// `GET …/npm/{package}` and `GET …/npm/@scope/{name}`: the packument.
pub(crate) async fn packument(
    State(state): State<AppState>,
    Path(params): Path<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    packument_answer(&state, &params, &headers)
        .await
        .unwrap_or_else(from_api)
}

async fn packument_answer(
    state: &AppState,
    params: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let component = package_name(params)?;
    let request = view_for(state, params)?;
    let (generation, snapshot) = snapshot_for(state, &request, PATH).await?;
    let base = registry_base(state, params);
    match gateway(state)?
        .packument(
            &snapshot,
            generation,
            &request.view,
            request.day,
            &component,
            &base,
        )
        .await
        .map_err(gateway_error)?
    {
        PackumentOutcome::Packument(served) => {
            let (rendered, content_type) = if wants_abbreviated(headers) {
                (&served.abbreviated, npm::ABBREVIATED_CONTENT_TYPE)
            } else {
                (&served.full, npm::FULL_CONTENT_TYPE)
            };
            let mut response =
                document_response(headers, rendered, content_type, served.stale, false);
            response
                .headers_mut()
                .insert(header::VARY, HeaderValue::from_static("Accept"));
            Ok(response)
        }
        PackumentOutcome::NotInFormulary(decision) => {
            // npm prints the body's `error` and `npm-notice`; pnpm prints the reason phrase.
            let curated = decision
                .reasons
                .iter()
                .any(|reason| reason.code == ReasonCode::NotInFormulary);
            let why = decision
                .headline()
                .unwrap_or("no version is allowed")
                .trim_end_matches('.');
            let why = if curated {
                why.to_owned()
            } else {
                format!(
                    "the newest, {} {}, is denied: {why}",
                    component.name, decision.version
                )
            };
            let detail = format!(
                "Formulary allows no version of {} here: {why}. Request it at {}{}",
                component.name,
                state.public_url.as_str().trim_end_matches('/'),
                request_link(&decision)
            );
            let mut response = npm_error(StatusCode::NOT_FOUND, "No version allowed", &detail);
            if let Ok(phrase) = hyper::ext::ReasonPhrase::try_from(reason_phrase(&decision)) {
                response.extensions_mut().insert(phrase);
            }
            Ok(response)
        }
        PackumentOutcome::Missing => Err(ApiError::not_found(format!(
            "no upstream registry has a package called {}",
            component.name
        ))),
    }
}

/// `GET …/npm/{package}/-/{filename}` and `GET …/npm/@scope/{name}/-/{filename}`: a tarball.
pub(crate) async fn tarball(
    State(state): State<AppState>,
    Path(params): Path<HashMap<String, String>>,
    headers: HeaderMap,
    requester: Requester,
) -> Response {
    tarball_answer(&state, &params, &headers, requester)
        .await
        .unwrap_or_else(from_api)
}

async fn tarball_answer(
    state: &AppState,
    params: &HashMap<String, String>,
    headers: &HeaderMap,
    requester: Requester,
) -> Result<Response, ApiError> {
    let component = package_name(params)?;
    let filename = params
        .get("filename")
        .map(String::as_str)
        .unwrap_or_default();
    if !filename.ends_with(".tgz") || filename.contains(['/', '\\']) || filename.starts_with('.') {
        return Err(ApiError::not_found(format!(
            "'{}' is not a tarball Formulary serves",
            filename.escape_debug()
        )));
    }
    let request = view_for(state, params)?;
    let (_, snapshot) = snapshot_for(state, &request, PATH).await?;
    let outcome = gateway(state)?
        .tarball(&snapshot, &request.view, &component, filename)
        .await
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
        TarballOutcome::Refused(decision) => {
            write_ledger(state, &ledger(decision.version.clone(), "refused")).await;
            Ok(refusal(state, &decision))
        }
        TarballOutcome::Missing => Err(ApiError::not_found(format!(
            "{} has no tarball called {}",
            component.name,
            filename.escape_debug()
        ))),
        TarballOutcome::Serve { blob, version } => {
            write_ledger(state, &ledger(version, "served")).await;
            let mut response = serve_blob(state, &blob.sha256, headers).await?;
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            Ok(response)
        }
    }
}

/// The request body, decompressed when it came gzipped (npm sends `Content-Encoding: gzip`).
fn audit_body(headers: &HeaderMap, body: &Bytes) -> Result<Vec<u8>, ApiError> {
    let gzipped = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.trim().eq_ignore_ascii_case("gzip"))
        || body.starts_with(&[0x1f, 0x8b]);
    if !gzipped {
        return Ok(body.to_vec());
    }
    let mut text = Vec::new();
    flate2::read::GzDecoder::new(body.as_ref())
        .take(MAX_AUDIT_BYTES + 1)
        .read_to_end(&mut text)
        .map_err(|error| {
            ApiError::bad_request(format!("the gzip body could not be decompressed: {error}"))
        })?;
    if text.len() as u64 > MAX_AUDIT_BYTES {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "Audit request too large",
            format!(
                "the audit request is larger than {} MiB once decompressed",
                MAX_AUDIT_BYTES / (1024 * 1024)
            ),
        ));
    }
    Ok(text)
}

/// `POST …/npm/-/npm/v1/security/advisories/bulk`: what the formulary knows about the
/// installed versions (OSV advisories and the formulary's prohibitions).
pub(crate) async fn audit(
    State(state): State<AppState>,
    Path(params): Path<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    audit_answer(&state, &params, &headers, &body)
        .await
        .unwrap_or_else(from_api)
}

async fn audit_answer(
    state: &AppState,
    params: &HashMap<String, String>,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Response, ApiError> {
    let text = audit_body(headers, body)?;
    let bulk = npm::parse_bulk_request(&text).map_err(|why| {
        ApiError::bad_request(format!("this is not an npm bulk advisory request: {why}"))
    })?;
    let request = view_for(state, params)?;
    let (_, snapshot) = snapshot_for(state, &request, PATH).await?;
    let base = state.public_url.as_str().trim_end_matches('/');
    let answer = gateway(state)?
        .audit(&snapshot, &request.view, &bulk, base)
        .await
        .map_err(gateway_error)?;
    let mut response = (
        StatusCode::OK,
        serde_json::to_vec(&answer).unwrap_or_default(),
    )
        .into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npm_and_pnpm_accept_headers_choose_the_abbreviated_form() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_static(
                "application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*",
            ),
        );
        assert!(wants_abbreviated(&headers));
        headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        assert!(!wants_abbreviated(&headers));
        headers.remove(header::ACCEPT);
        assert!(!wants_abbreviated(&headers));
    }

    #[test]
    fn gzip_audit_bodies_are_read() {
        use std::io::Write;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(br#"{"a":["1.0.0"]}"#).expect("write");
        let gzipped = Bytes::from(encoder.finish().expect("finish"));
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        assert_eq!(
            audit_body(&headers, &gzipped).expect("read"),
            br#"{"a":["1.0.0"]}"#
        );
        let broken = Bytes::from_static(&[0x1f, 0x8b, 1, 2, 3]);
        assert!(audit_body(&HeaderMap::new(), &broken).is_err());
    }
}
