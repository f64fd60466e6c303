//! conda channels (`/conda/{channel}/`, `/o/{org}/conda/{channel}/`,
//! `/@YYYY-MM-DD/conda/{channel}/`): each subdirectory's `repodata.json` with the records the
//! view denies left out, the same as `repodata.json.zst` and as CEP-16 sharded repodata
//! (`repodata_shards.msgpack.zst`, `shards/<sha256>.msgpack.zst`), package files with Range and
//! 304, and refusals (problem+json, reason phrase) for a denied file asked for directly.
//! `channeldata.json` and a package file's `.sigs` (CEP-27) pass through from the upstream where
//! it has them; `notices.json` (CEP-6) lists the view's standing prohibitions of conda packages
//! and the channel notices people wrote for the view (while the database is down, only the
//! prohibitions: written notices live in the database alone).
//! `repodata.json.bz2` and `current_repodata.json` answer 404, from which conda, mamba and
//! rattler fall back to `repodata.json`. Every document served is logged at debug level
//! (`FORMULARY_LOG=formulary_server::conda=debug`).

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use formulary_core::channel_notice::ChannelNotice;
use formulary_core::ecosystems::conda;
use formulary_core::OrgCode;
use formulary_gateway::{
    parse_shard_filename, CondaGateway, PackageFileOutcome, RepodataOutcome, ServedRepodata,
    SigsOutcome,
};

use crate::downloads::{serve_blob, write_ledger, Requester};
use crate::error::ApiError;
use crate::gateway::{
    document_response, etag_matches, gateway_error, refusal, snapshot_for, view_for,
};
use crate::state::AppState;

/// Where this ecosystem's views live under a view prefix, for messages.
const PATH: &str = "/conda/conda-forge/";

fn gateway(state: &AppState) -> Result<&CondaGateway, ApiError> {
    state
        .conda
        .as_deref()
        .ok_or_else(|| ApiError::not_found("the conda gateway is not configured on this server"))
}

/// The gateway, when `channel` is configured and `subdir` is a subdirectory name.
fn checked<'a>(
    state: &'a AppState,
    channel: &str,
    subdir: &str,
) -> Result<&'a CondaGateway, ApiError> {
    let gateway = gateway(state)?;
    if !gateway.has_channel(channel) {
        let known: Vec<&str> = gateway.channels().collect();
        return Err(ApiError::not_found(format!(
            "this server has no conda channel '{}'; it serves {}",
            channel.escape_debug(),
            known.join(", ")
        )));
    }
    if !conda::is_subdir(subdir) {
        return Err(ApiError::not_found(format!(
            "'{}' is not a conda subdirectory (such as noarch or linux-64)",
            subdir.escape_debug()
        )));
    }
    Ok(gateway)
}

/// `GET …/conda/{channel}/{subdir}/{filename}`: `repodata.json`, or a package file.
pub(crate) async fn serve(
    State(state): State<AppState>,
    Path(params): Path<HashMap<String, String>>,
    headers: HeaderMap,
    requester: Requester,
) -> Response {
    answer(&state, &params, &headers, requester)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn answer(
    state: &AppState,
    params: &HashMap<String, String>,
    headers: &HeaderMap,
    requester: Requester,
) -> Result<Response, ApiError> {
    let param = |name: &str| params.get(name).map(String::as_str).unwrap_or_default();
    let (channel, subdir, filename) = (param("channel"), param("subdir"), param("filename"));
    let gateway = checked(state, channel, subdir)?;
    match filename {
        "repodata.json" | "repodata.json.zst" | "repodata_shards.msgpack.zst" => {
            return repodata(state, gateway, params, headers, channel, subdir, filename).await;
        }
        _ => {}
    }
    if let Some(package) = filename
        .strip_suffix(".sigs")
        .filter(|package| conda::is_package_filename(package))
    {
        return sigs(state, gateway, params, channel, subdir, package, requester).await;
    }
    if !conda::is_package_filename(filename) {
        return Err(ApiError::not_found(format!(
            "Formulary serves repodata.json, repodata.json.zst, repodata_shards.msgpack.zst and package files (.conda, .tar.bz2, and their .sigs) here, not '{}'; conda, mamba and pixi fall back to repodata.json",
            filename.escape_debug()
        )));
    }
    let request = view_for(state, params)?;
    let (_, snapshot) = snapshot_for(state, &request, PATH).await?;
    let outcome = gateway
        .package_file(&snapshot, &request.view, channel, subdir, filename)
        .await
        .map_err(gateway_error)?;
    match outcome {
        PackageFileOutcome::Refused(decision) => {
            let line = requester.line(
                &request.view.organisation,
                decision.component.clone(),
                decision.version.clone(),
                filename,
                "refused",
            );
            write_ledger(state, &line).await;
            Ok(refusal(state, &decision))
        }
        PackageFileOutcome::Missing => Err(ApiError::not_found(format!(
            "channel {channel} has no package file {subdir}/{}",
            filename.escape_debug()
        ))),
        PackageFileOutcome::Serve {
            blob,
            component,
            version,
        } => {
            let line = requester.line(
                &request.view.organisation,
                component,
                version,
                filename,
                "served",
            );
            write_ledger(state, &line).await;
            let mut response = serve_blob(state, &blob.sha256, headers).await?;
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            Ok(response)
        }
    }
}

/// The view's built repodata for a subdirectory.
async fn served_repodata(
    state: &AppState,
    gateway: &CondaGateway,
    params: &HashMap<String, String>,
    channel: &str,
    subdir: &str,
) -> Result<Arc<ServedRepodata>, ApiError> {
    let request = view_for(state, params)?;
    let (generation, snapshot) = snapshot_for(state, &request, PATH).await?;
    match gateway
        .repodata(
            &snapshot,
            generation,
            &request.view,
            request.day,
            channel,
            subdir,
        )
        .await
        .map_err(gateway_error)?
    {
        RepodataOutcome::Repodata(served) => Ok(served),
        RepodataOutcome::Missing => Err(ApiError::not_found(format!(
            "no upstream of channel {channel} has a subdirectory {subdir}"
        ))),
    }
}

/// `repodata.json`, `repodata.json.zst` or `repodata_shards.msgpack.zst` for the view.
async fn repodata(
    state: &AppState,
    gateway: &CondaGateway,
    params: &HashMap<String, String>,
    headers: &HeaderMap,
    channel: &str,
    subdir: &str,
    filename: &str,
) -> Result<Response, ApiError> {
    let served = served_repodata(state, gateway, params, channel, subdir).await?;
    tracing::debug!(
        channel,
        subdir,
        document = filename,
        "serving a conda document"
    );
    let rendered = match filename {
        "repodata.json.zst" => {
            let zst = gateway
                .repodata_zst(&served)
                .await
                .map_err(|error| local_disk_failure("repodata.json.zst", &error))?;
            // Sent from its spool file as it is read: with sendfile from a second descriptor of
            // it where the connection allows, read chunk by chunk otherwise.
            let body = || {
                let body = match zst.file().try_clone() {
                    Ok(file) => Body::from_stream(crate::file_ranges::stream(
                        std::sync::Arc::new(file),
                        0,
                        zst.len(),
                    )),
                    Err(_) => Body::from_stream(zst.stream()),
                };
                (body, Some(zst.len()))
            };
            return Ok(streamed_document(
                headers,
                &zst.etag,
                "application/zstd",
                served.stale,
                body,
            ));
        }
        "repodata_shards.msgpack.zst" => match gateway
            .sharded(&served)
            .await
            .map_err(|error| local_disk_failure("the sharded repodata", &error))?
        {
            Some(sharded) => sharded.index.clone(),
            None => {
                return Err(ApiError::not_found(format!(
                    "the sharded repodata of {channel}/{subdir} could not be built (the server log says why); conda, mamba and pixi fall back to repodata.json"
                )))
            }
        },
        _ => return Ok(streamed_json(headers, &served)),
    };
    // The shard index (hundreds of KB for a large subdir) is the same bytes for every client of
    // the view until the policy changes: sent from an in-memory file with `sendfile`.
    Ok(document_response(
        headers,
        &rendered,
        "application/zstd",
        served.stale,
        true,
    ))
}

/// A 503 for a document the gateway could not write to (or read from) its spool files on local
/// disk (full or failing): nothing partial was kept or sent, and a later request tries again.
fn local_disk_failure(what: &str, error: &std::io::Error) -> ApiError {
    tracing::error!(%error, what, "cannot build a conda document on local disk");
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "Local disk unavailable",
        format!("Formulary could not build {what} on its local disk ({error}). Nothing partial was kept; try again in a minute, and if it persists tell the operator (the disk holding the data directory is full or failing)."),
    )
}

/// The view's `repodata.json`, streamed as it is rendered from the records (never held whole).
fn streamed_json(headers: &HeaderMap, served: &Arc<ServedRepodata>) -> Response {
    streamed_document(
        headers,
        &served.etag,
        "application/json",
        served.stale,
        || (Body::from_stream(served.json_stream()), None),
    )
}

/// A document whose body is streamed rather than held, with its entity tag, 304 and the headers
/// of [`document_response`]: `body` (and its length, when known) is made only when the client's
/// copy is not current.
fn streamed_document(
    headers: &HeaderMap,
    etag: &str,
    content_type: &'static str,
    stale: bool,
    body: impl FnOnce() -> (Body, Option<u64>),
) -> Response {
    let matched = etag_matches(headers, etag);
    let mut response = document_response(
        headers,
        &formulary_gateway::Rendered {
            body: bytes::Bytes::new(),
            etag: etag.to_owned(),
        },
        content_type,
        stale,
        false,
    );
    if !matched {
        let (body, length) = body();
        *response.body_mut() = body;
        if let Some(length) = length {
            response
                .headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(length));
        }
    }
    response
}

/// `GET …/conda/{channel}/{subdir}/shards/{sha256}.msgpack.zst`: a shard the view's index
/// names (or named within the retention period), immutable.
pub(crate) async fn serve_shard(
    State(state): State<AppState>,
    Path(params): Path<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    shard(&state, &params, &headers)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn shard(
    state: &AppState,
    params: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let param = |name: &str| params.get(name).map(String::as_str).unwrap_or_default();
    let (channel, subdir, filename) = (param("channel"), param("subdir"), param("filename"));
    let gateway = checked(state, channel, subdir)?;
    let Some(sha256) = parse_shard_filename(filename) else {
        return Err(ApiError::not_found(format!(
            "'{}' is not a shard name (<sha256>.msgpack.zst)",
            filename.escape_debug()
        )));
    };
    let served = served_repodata(state, gateway, params, channel, subdir).await?;
    let stored = gateway
        .shard(&served, &sha256)
        .await
        .map_err(|error| local_disk_failure("a shard", &error))?;
    let Some(bytes) = stored else {
        return Err(ApiError::not_found(format!(
            "no index of {channel}/{subdir} in this view names the shard {filename} (it was not built here, or was retired more than an hour ago); fetch repodata_shards.msgpack.zst again"
        )));
    };
    tracing::debug!(
        channel,
        subdir,
        document = "shard",
        shard = filename,
        "serving a conda document"
    );
    let etag = format!("\"{}\"", filename.trim_end_matches(".msgpack.zst"));
    let mut response = if etag_matches(headers, &etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        Body::from(bytes).into_response()
    };
    let response_headers = response.headers_mut();
    response_headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/zstd"),
    );
    response_headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    if let Ok(value) = HeaderValue::from_str(&etag) {
        response_headers.insert(header::ETAG, value);
    }
    Ok(response)
}

/// A package file's CEP-27 attestations, for a file the view allows.
async fn sigs(
    state: &AppState,
    gateway: &CondaGateway,
    params: &HashMap<String, String>,
    channel: &str,
    subdir: &str,
    package: &str,
    requester: Requester,
) -> Result<Response, ApiError> {
    let request = view_for(state, params)?;
    let (_, snapshot) = snapshot_for(state, &request, PATH).await?;
    match gateway
        .sigs(&snapshot, &request.view, channel, subdir, package)
        .await
        .map_err(gateway_error)?
    {
        SigsOutcome::Sigs(bytes) => {
            let mut response = Body::from(bytes).into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            Ok(response)
        }
        SigsOutcome::Refused(decision) => {
            let line = requester.line(
                &request.view.organisation,
                decision.component.clone(),
                decision.version.clone(),
                &format!("{package}.sigs"),
                "refused",
            );
            write_ledger(state, &line).await;
            Ok(refusal(state, &decision))
        }
        SigsOutcome::Missing => Err(ApiError::not_found(format!(
            "no upstream of channel {channel} has attestations for {subdir}/{}",
            package.escape_debug()
        ))),
    }
}

/// How long `notices.json` waits for the written notices before serving without them.
const WRITTEN_NOTICES_PATIENCE: std::time::Duration = std::time::Duration::from_secs(2);

/// The notices people wrote for `organisation`'s views and the national ones. While the
/// database is down, failing or slower than [`WRITTEN_NOTICES_PATIENCE`] these are left out
/// (logged): the prohibitions still come from the snapshot, and a missing banner must not cost
/// conda its channel.
async fn written_notices(state: &AppState, organisation: &OrgCode) -> Vec<ChannelNotice> {
    let organisations = [OrgCode::national(), organisation.clone()];
    let organisations = if organisation.is_national() {
        &organisations[..1]
    } else {
        &organisations[..]
    };
    let read = state.database.channel_notices_of(organisations);
    match tokio::time::timeout(WRITTEN_NOTICES_PATIENCE, read).await {
        Ok(Ok(notices)) => notices,
        Ok(Err(error)) => {
            tracing::warn!(%error, "notices.json leaves out the written channel notices: the database did not answer");
            Vec::new()
        }
        Err(_) => {
            tracing::warn!(
                patience = ?WRITTEN_NOTICES_PATIENCE,
                "notices.json leaves out the written channel notices: the database did not answer in time"
            );
            Vec::new()
        }
    }
}

/// `GET …/conda/{channel}/{filename}`: the upstream's `channeldata.json`, or the view's
/// `notices.json` (CEP-6: its standing prohibitions of conda packages and the channel notices
/// written for it); anything else is 404.
pub(crate) async fn serve_channel_document(
    State(state): State<AppState>,
    Path(params): Path<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    channel_document(&state, &params, &headers)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn channel_document(
    state: &AppState,
    params: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let param = |name: &str| params.get(name).map(String::as_str).unwrap_or_default();
    let (channel, filename) = (param("channel"), param("filename"));
    let gateway = checked(state, channel, "noarch")?;
    if filename != "channeldata.json" && filename != "notices.json" {
        return Err(ApiError::not_found(format!(
            "Formulary serves channeldata.json, notices.json and subdirectories here, not '{}'",
            filename.escape_debug()
        )));
    }
    // The view must exist (an unknown organisation is 404 like everywhere else).
    let request = view_for(state, params)?;
    let (_, snapshot) = snapshot_for(state, &request, PATH).await?;
    if filename == "notices.json" {
        let written = written_notices(state, &request.view.organisation).await;
        let notices = formulary_gateway::channel_notices(
            &snapshot,
            &request.view,
            state.public_url.as_str(),
            channel,
            &written,
        );
        let body = serde_json::to_vec(&notices).map_err(|error| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Could not write notices.json",
                error.to_string(),
            )
        })?;
        tracing::debug!(
            channel,
            document = "notices.json",
            "serving a conda document"
        );
        return Ok(document_response(
            headers,
            &formulary_gateway::Rendered::new(body),
            "application/json",
            false,
            false,
        ));
    }
    let Some(document) = gateway.channeldata(channel).await.map_err(gateway_error)? else {
        return Err(ApiError::not_found(format!(
            "no upstream of channel {channel} has a channeldata.json"
        )));
    };
    Ok(document_response(
        headers,
        &document.document,
        "application/json",
        document.stale,
        false,
    ))
}
