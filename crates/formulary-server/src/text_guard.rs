//! Text with NUL characters is refused at the door. No name, comment or search is ever meant to
//! hold one, SQLite would store it and PostgreSQL refuses it (so the same request would succeed
//! on one database and fail with a storage error on the other). A query string with `%00`, or a
//! JSON or form body that encodes NUL, is answered 400 before any handler runs, on both. (A
//! compressed body is left to its handler.)

use axum::body::Body;
use axum::extract::Request;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// Largest body examined (and so buffered); larger bodies are left to the handler's own limit.
const MAX_EXAMINED_BYTES: usize = 64 * 1024 * 1024;

/// Lets a request in, or answers 400 when its query string or JSON/form body holds a NUL
/// character (a body it examined is handed on in full). Called by the front door
/// ([`crate::front_door`]) before routing.
pub(crate) async fn admit(request: Request) -> Result<Request, Response> {
    if request.uri().query().is_some_and(percent_encodes_nul) {
        return Err(refusal("the query string"));
    }
    let Some(content_type) = request.headers().get(header::CONTENT_TYPE) else {
        return Ok(request);
    };
    let content_type = content_type.to_str().unwrap_or("").to_ascii_lowercase();
    let is_json = content_type.contains("json");
    let is_form = content_type.starts_with("application/x-www-form-urlencoded");
    // A compressed body (npm audit sends gzip) is the handler's to decode and check.
    let encoded = request.headers().contains_key(header::CONTENT_ENCODING);
    if encoded || (!is_json && !is_form) {
        return Ok(request);
    }
    let (parts, body) = request.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_EXAMINED_BYTES).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return Err(ApiError::new(
                axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                "The request body is too large",
                "The body could not be read in full (it is larger than 64 MB, or the connection broke off). Send a smaller body.",
            )
            .into_response())
        }
    };
    let holds_nul = if is_json {
        json_encodes_nul(&bytes)
    } else {
        form_encodes_nul(&bytes)
    };
    if holds_nul {
        return Err(refusal("the body"));
    }
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

fn refusal(place: &str) -> Response {
    ApiError::bad_request(format!(
        "{place} holds a NUL character (\\u0000 or %00), which no Formulary field accepts; remove it and send the request again"
    ))
    .into_response()
}

/// Whether URL-encoded text holds `%00`.
fn percent_encodes_nul(text: &str) -> bool {
    text.as_bytes().windows(3).any(|window| window == b"%00")
}

/// Whether a URL-encoded form body holds a NUL: the escape `%00`, or a raw 0 byte (which a
/// form decoder passes through as it is), whether or not the rest is UTF-8.
fn form_encodes_nul(bytes: &[u8]) -> bool {
    bytes.contains(&0) || bytes.windows(3).any(|window| window == b"%00")
}

/// Whether a JSON document holds a NUL: a raw 0 byte, or the escape `\u0000` (not itself escaped,
/// as in `\\u0000`, which is a backslash followed by the text `u0000`).
fn json_encodes_nul(bytes: &[u8]) -> bool {
    if bytes.contains(&0) {
        return true;
    }
    let mut backslashes = 0usize;
    for (index, byte) in bytes.iter().enumerate() {
        if *byte == b'\\' {
            backslashes += 1;
            continue;
        }
        if backslashes % 2 == 1
            && *byte == b'u'
            && bytes
                .get(index + 1..index + 5)
                .is_some_and(|digits| digits == b"0000")
        {
            return true;
        }
        backslashes = 0;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_is_found_however_it_is_encoded_and_only_then() {
        assert!(percent_encodes_nul("q=a%00b"));
        assert!(!percent_encodes_nul("q=a%200b&x=%100"));
        assert!(json_encodes_nul(br#"{"body": "a\u0000b"}"#));
        assert!(json_encodes_nul(br#"{"body": "a\\\u0000b"}"#));
        assert!(json_encodes_nul(b"{\"body\": \"a\0b\"}"));
        assert!(!json_encodes_nul(br#"{"body": "a\\u0000b"}"#));
        assert!(!json_encodes_nul(br#"{"body": "a\u0001b \u00e9"}"#));
        assert!(form_encodes_nul(b"comment=a%00b"));
        assert!(form_encodes_nul(b"comment=a\0b"));
        assert!(
            form_encodes_nul(b"comment=\xff\0"),
            "a raw NUL in a body that is not UTF-8"
        );
        assert!(!form_encodes_nul(b"comment=a%200b&x=%100"));
    }
}
