//! Every error under `/api/` is `application/problem+json`, including the ones the framework
//! answers before a handler runs (a body that is not JSON, a missing query parameter, a wrong
//! method, a body too large): those arrive as plain text and are rewritten here, keeping their
//! status and their explanation.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// The most of a framework rejection's text kept as the problem's detail.
const MAX_DETAIL_BYTES: usize = 4096;

/// Whether answers to this request are rewritten by [`as_problem`] (paths under `/api/`).
pub(crate) fn applies_to(request: &Request) -> bool {
    request.uri().path().starts_with("/api/")
}

/// Rewrites a plain-text error answer to an `/api/` request (see [`applies_to`]) as
/// problem+json; any other answer is returned as it is. Called by the front door
/// ([`crate::front_door`]).
pub(crate) async fn as_problem(response: Response) -> Response {
    if !needs_rewrite(&response) {
        return response;
    }
    let status = response.status();
    let allow = response.headers().get(header::ALLOW).cloned();
    let text = match axum::body::to_bytes(response.into_body(), MAX_DETAIL_BYTES).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).trim().to_owned(),
        Err(_) => String::new(),
    };
    let mut rewritten = problem_for(status, &text).into_response();
    if let Some(allow) = allow {
        rewritten.headers_mut().insert(header::ALLOW, allow);
    }
    rewritten
}

/// An error whose body is not already JSON (problem+json or a JSON error document).
fn needs_rewrite(response: &Response<Body>) -> bool {
    if !(response.status().is_client_error() || response.status().is_server_error()) {
        return false;
    }
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    !content_type.contains("json")
}

/// The problem for a framework rejection with `status` and explanation `text`.
fn problem_for(status: StatusCode, text: &str) -> ApiError {
    let what = if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("the request was refused")
            .to_owned()
    } else {
        text.to_owned()
    };
    let (title, next_step) = match status {
        StatusCode::METHOD_NOT_ALLOWED => (
            "Method not allowed",
            "The `Allow` header lists the methods this path accepts; /api/v1/openapi.json describes each.",
        ),
        StatusCode::PAYLOAD_TOO_LARGE => (
            "The request body is too large",
            "Send a smaller body; /api/v1/openapi.json describes what each operation takes.",
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            "The request body is not JSON",
            "Send the body as JSON with `Content-Type: application/json`.",
        ),
        StatusCode::REQUEST_TIMEOUT => (
            "The request took too long",
            "Try again; if it keeps happening, tell your Formulary administrator.",
        ),
        status if status.is_server_error() => (
            "The server could not answer",
            "Try again; if it keeps happening, tell your Formulary administrator.",
        ),
        _ => (
            "The request is not valid",
            "Check it against /api/v1/openapi.json, which describes every parameter and body.",
        ),
    };
    ApiError::new(status, title, format!("{what}. {next_step}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_framework_rejection_keeps_its_status_and_explanation_and_says_what_to_do() {
        let problem = problem_for(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Failed to deserialize the JSON body into the target type: missing field `body`",
        );
        assert_eq!(problem.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            problem.detail.contains("missing field `body`"),
            "{problem:?}"
        );
        assert!(problem.detail.contains("openapi.json"), "{problem:?}");
        let empty = problem_for(StatusCode::METHOD_NOT_ALLOWED, "");
        assert_eq!(empty.title, "Method not allowed");
        assert!(empty.detail.starts_with("Method Not Allowed."), "{empty:?}");
    }
}
