use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use formulary_store::StoreError;
use serde::Serialize;

/// An error answered as `application/problem+json` (RFC 9457): what happened (`title`), why and
/// what to do next (`detail`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// A short, stable summary.
    pub title: String,
    /// The specifics, and what to do next.
    pub detail: String,
}

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    title: &'a str,
    status: u16,
    detail: &'a str,
}

impl ApiError {
    /// An error with any status.
    pub fn new(
        status: StatusCode,
        title: impl Into<String>,
        detail: impl Into<String>,
    ) -> ApiError {
        ApiError {
            status,
            title: title.into(),
            detail: detail.into(),
        }
    }

    /// 400: the request is malformed.
    pub fn bad_request(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "The request is not valid", detail)
    }

    /// 401: no valid credentials.
    pub fn unauthenticated() -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "Sign-in required",
            "This change needs an API token: send `Authorization: Bearer frm_…`. An administrator creates one with `formulary token create`.",
        )
    }

    /// 403: authenticated, but not allowed.
    pub fn forbidden(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "Not allowed", detail)
    }

    /// 404.
    pub fn not_found(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "Not found", detail)
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> ApiError {
        match error {
            StoreError::NotFound(what) => ApiError::not_found(format!("{what} was not found")),
            StoreError::Conflict(detail) => ApiError::new(StatusCode::CONFLICT, "Conflict", detail),
            StoreError::Invalid(error) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "The input is not valid",
                error.to_string(),
            ),
            StoreError::Contended(_) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "Busy", error.to_string())
            }
            StoreError::Unavailable(why) => crate::offline::unavailable(&why),
            StoreError::BlobUnavailable { why, .. } => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "Package file storage unavailable",
                format!("Formulary could not read or write the storage that holds package files: {why}. Nothing was cached or changed. Try again in a minute; if it persists, tell the operator (the blob store is down or unreachable)."),
            ),
            StoreError::Blob(ref source) => {
                tracing::error!(error = %source, "blob storage failure");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Package file storage unavailable",
                    "Formulary could not read or write the storage that holds package files. Nothing was cached or changed. Try again in a minute; if it persists, tell the operator (the error is in the server log).",
                )
            }
            other => {
                tracing::error!(error = %other, "storage failure");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Storage failure",
                    "Formulary could not read or write its records. The error is in the server log; try again, and tell the operator if it persists.",
                )
            }
        }
    }
}

impl From<formulary_core::CoreError> for ApiError {
    fn from(error: formulary_core::CoreError) -> ApiError {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "The input is not valid",
            error.to_string(),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&Problem {
            kind: "about:blank",
            title: &self.title,
            status: self.status.as_u16(),
            detail: &self.detail,
        })
        .unwrap_or_default();
        let mut response = (self.status, body).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"formulary\""),
            );
        }
        response
    }
}
