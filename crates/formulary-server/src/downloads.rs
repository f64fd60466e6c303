//! Serving package files to clients (from the blob store, with Range support) and recording
//! them in the download ledger: shared by every package front-end.

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use formulary_core::{Component, OrgCode};
use formulary_store::Download;
use futures::TryStreamExt;

use crate::error::ApiError;
use crate::state::AppState;

/// Who asked for a file: the client's address (the TCP peer, or what a trusted proxy reports),
/// User-Agent, and the person or service account whose token the request carried, for the
/// ledger. Every gateway handler takes it as an argument.
pub(crate) struct Requester {
    client: String,
    user_agent: String,
    actor: Option<String>,
}

impl axum::extract::FromRequestParts<AppState> for Requester {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let crate::state::ClientAddress(client) =
            crate::state::ClientAddress::from_request_parts(parts, state).await?;
        Ok(Requester {
            client,
            user_agent: parts
                .headers
                .get(header::USER_AGENT)
                .and_then(|value| value.to_str().ok())
                .unwrap_or("")
                .to_owned(),
            actor: parts
                .extensions
                .get::<crate::gateway_auth::GatewayCaller>()
                .map(|caller| caller.actor.clone()),
        })
    }
}

impl Requester {
    /// A ledger line for a file this requester asked for.
    pub(crate) fn line(
        &self,
        organisation: &OrgCode,
        component: Component,
        version: String,
        filename: &str,
        outcome: &str,
    ) -> Download {
        Download {
            organisation: organisation.clone(),
            component,
            version,
            filename: filename.to_owned(),
            outcome: outcome.to_owned(),
            client: self.client.clone(),
            user_agent: self.user_agent.clone(),
            actor: self.actor.clone(),
        }
    }
}

/// Records a download without waiting: queued for the ledger's writer, which keeps lines in a
/// local journal while the database is down. Without a writer (tests, tools), the line is
/// written directly and a failure is logged; it never fails the download.
pub(crate) async fn write_ledger(state: &AppState, line: &Download) {
    match &state.ledger {
        Some(ledger) => ledger.record(line.clone()),
        None => {
            if let Err(error) = state.database.record_download(line).await {
                tracing::warn!(%error, "could not write the download ledger");
            }
        }
    }
}

/// Where the bytes of a blob being served come from.
enum Source {
    /// Kept in memory (a small file, sent with sendfile where it can be).
    Memory(bytes::Bytes),
    /// A file in the local blob folder.
    File(tokio::fs::File),
    /// Object storage: read in bounded requests as the client takes the bytes.
    Remote,
}

/// Streams a blob, honouring a single `Range: bytes=a-b` (uv reads wheel metadata this way),
/// `If-Range` and `If-None-Match` (304, answered without touching the store). The blob is
/// opened once: directly when blobs live in a local folder, else through the store, in
/// requests of bounded size. A range is read from its offset as it is sent, never held whole
/// in memory.
pub(crate) async fn serve_blob(
    state: &AppState,
    sha256: &str,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let etag = format!("\"sha256-{sha256}\"");
    if crate::gateway::etag_matches(headers, &etag) {
        let mut response = StatusCode::NOT_MODIFIED.into_response();
        set_file_headers(&mut response, Some(&etag));
        return Ok(response);
    }
    let wants_range = headers.contains_key(header::RANGE)
        && headers
            .get(header::IF_RANGE)
            .and_then(|value| value.to_str().ok())
            .is_none_or(|value| value == etag);
    let (source, size) = match crate::zero_copy::blob(sha256) {
        Some(bytes) => {
            let size = bytes.len() as u64;
            (Source::Memory(bytes), size)
        }
        None => open(state, sha256, wants_range).await?,
    };
    let range = headers
        .get(header::RANGE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| parse_range(value, size));
    let mut response = match range.filter(|_| wants_range) {
        Some(Ok((start, end))) => {
            let length = end + 1 - start;
            let part = match source {
                Source::Memory(bytes) => Body::from(bytes.slice(
                    usize::try_from(start).unwrap_or(0)..usize::try_from(end + 1).unwrap_or(0),
                )),
                Source::File(file) => Body::from_stream(crate::file_ranges::stream(
                    std::sync::Arc::new(file.into_std().await),
                    start,
                    length,
                )),
                Source::Remote => remote_body(state, sha256, start..end + 1)?,
            };
            let mut response = (StatusCode::PARTIAL_CONTENT, part).into_response();
            response
                .headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(length));
            if let Ok(value) = HeaderValue::from_str(&format!("bytes {start}-{end}/{size}")) {
                response.headers_mut().insert(header::CONTENT_RANGE, value);
            }
            response
        }
        Some(Err(())) => {
            let mut response = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
            if let Ok(value) = HeaderValue::from_str(&format!("bytes */{size}")) {
                response.headers_mut().insert(header::CONTENT_RANGE, value);
            }
            return Ok(response);
        }
        None => {
            let body = match source {
                Source::Memory(bytes) => Body::from(bytes),
                Source::File(file) => Body::from_stream(crate::file_ranges::stream(
                    std::sync::Arc::new(file.into_std().await),
                    0,
                    size,
                )),
                Source::Remote => remote_body(state, sha256, 0..size)?,
            };
            let mut response = body.into_response();
            response
                .headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(size));
            response
        }
    };
    set_file_headers(&mut response, Some(&etag));
    Ok(response)
}

/// Opens a blob that is not kept in memory. Small files are read whole once (one reader per
/// blob: many clients asking for the same new file at once wait for that read rather than each
/// holding a copy) and then sent from the file with sendfile.
async fn open(
    state: &AppState,
    sha256: &str,
    wants_range: bool,
) -> Result<(Source, u64), ApiError> {
    let _reading = first_reads().lock(sha256).await;
    if let Some(bytes) = crate::zero_copy::blob(sha256) {
        let size = bytes.len() as u64;
        return Ok((Source::Memory(bytes), size));
    }
    Ok(match state.blobs.open_local(sha256).await? {
        Some((file, size)) if wants_range => (Source::File(file), size),
        Some((file, size)) if size <= crate::zero_copy::MAX_BLOB_BYTES => {
            (Source::Memory(read_whole(sha256, file, size).await?), size)
        }
        Some((file, size)) => (Source::File(file), size),
        None => match state.blobs.stat(sha256).await? {
            Some(blob) => (Source::Remote, blob.size),
            None => {
                return Err(
                    formulary_store::StoreError::NotFound(format!("blob sha256:{sha256}")).into(),
                )
            }
        },
    })
}

/// One lock per blob being opened.
fn first_reads() -> &'static KeyedLock {
    static LOCKS: std::sync::OnceLock<KeyedLock> = std::sync::OnceLock::new();
    LOCKS.get_or_init(KeyedLock::default)
}

/// One asynchronous lock per key; a key's lock is dropped once nobody holds or waits for it.
#[derive(Default)]
struct KeyedLock {
    locks:
        std::sync::Mutex<std::collections::HashMap<String, std::sync::Arc<tokio::sync::Mutex<()>>>>,
}

impl KeyedLock {
    async fn lock(&self, key: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self
                .locks
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            locks.retain(|_, lock| std::sync::Arc::strong_count(lock) > 1);
            std::sync::Arc::clone(locks.entry(key.to_owned()).or_default())
        };
        lock.lock_owned().await
    }
}

/// A body read from object storage as the client takes it. A store that fails mid-way breaks
/// the response off (the client sees a short body against its Content-Length, never wrong bytes).
fn remote_body(
    state: &AppState,
    sha256: &str,
    range: std::ops::Range<u64>,
) -> Result<Body, ApiError> {
    let stream = state.blobs.read_range(sha256, range)?;
    Ok(Body::from_stream(stream.map_err(std::io::Error::other)))
}

/// Reads a small blob whole in one blocking call, and keeps it for sending with sendfile.
async fn read_whole(
    sha256: &str,
    file: tokio::fs::File,
    size: u64,
) -> Result<bytes::Bytes, ApiError> {
    let mut file = file.into_std().await;
    let read = tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let mut buffer = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        file.read_to_end(&mut buffer).map(|_| (buffer, file))
    })
    .await;
    match read {
        Ok(Ok((buffer, file))) => {
            let bytes = bytes::Bytes::from(buffer);
            crate::zero_copy::keep_blob(sha256, bytes.clone(), file);
            Ok(bytes)
        }
        Ok(Err(error)) => Err(formulary_store::StoreError::Conflict(format!(
            "cannot read a stored package file: {error}"
        ))
        .into()),
        Err(error) => Err(formulary_store::StoreError::Conflict(format!(
            "cannot read a stored package file: {error}"
        ))
        .into()),
    }
}

/// The headers every package file carries: opaque bytes, ranges supported, cacheable for ever
/// (a file name never changes content), and an entity tag when the digest is known.
pub(crate) fn set_file_headers(response: &mut Response, etag: Option<&str>) {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("max-age=31536000, immutable"),
    );
    if let Some(value) = etag.and_then(|etag| HeaderValue::from_str(etag).ok()) {
        headers.insert(header::ETAG, value);
    }
}

/// Reads `bytes=a-b`, `bytes=a-` or `bytes=-n` against a size; `Err` when unsatisfiable,
/// `None` for anything else (several ranges, other units), which is answered in full.
fn parse_range(value: &str, size: u64) -> Option<Result<(u64, u64), ()>> {
    let spec = value.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (first, last) = spec.split_once('-')?;
    let range = match (first.trim(), last.trim()) {
        ("", suffix) => {
            let length: u64 = suffix.parse().ok()?;
            if length == 0 || size == 0 {
                return Some(Err(()));
            }
            (size.saturating_sub(length), size - 1)
        }
        (start, "") => (start.parse().ok()?, size.saturating_sub(1)),
        (start, end) => (
            start.parse().ok()?,
            end.parse::<u64>().ok()?.min(size.saturating_sub(1)),
        ),
    };
    if range.0 >= size || range.0 > range.1 {
        return Some(Err(()));
    }
    Some(Ok(range))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_follow_rfc_9110() {
        assert_eq!(parse_range("bytes=0-9", 100), Some(Ok((0, 9))));
        assert_eq!(parse_range("bytes=90-", 100), Some(Ok((90, 99))));
        assert_eq!(parse_range("bytes=-10", 100), Some(Ok((90, 99))));
        assert_eq!(parse_range("bytes=95-200", 100), Some(Ok((95, 99))));
        assert_eq!(parse_range("bytes=100-", 100), Some(Err(())));
        assert_eq!(parse_range("bytes=0-1,5-6", 100), None);
        assert_eq!(parse_range("items=0-1", 100), None);
    }
}
