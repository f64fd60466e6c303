//! conda channels (`/conda/{channel}/`, `/o/{org}/conda/{channel}/`,
//! `/@YYYY-MM-DD/conda/{channel}/`): each subdirectory's `repodata.json` with the records the
//! view denies left out, package files with Range and 304, and refusals (problem+json, reason
//! phrase) for a denied file asked for directly. Compressed and sharded repodata
//! (`repodata.json.zst`, `.bz2`, `repodata_shards.msgpack.zst`) and `current_repodata.json`
//! answer 404, from which conda, mamba and rattler fall back to `repodata.json`.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use formulary_core::ecosystems::conda;
use formulary_gateway::{CondaGateway, PackageFileOutcome, RepodataOutcome};

use crate::downloads::{serve_blob, write_ledger, Requester};
use crate::error::ApiError;
use crate::gateway::{document_response, gateway_error, refusal, snapshot_for, view_for};
use crate::state::AppState;

/// Where this ecosystem's views live under a view prefix, for messages.
const PATH: &str = "/conda/conda-forge/";

fn gateway(state: &AppState) -> Result<&CondaGateway, ApiError> {
    state
        .conda
        .as_deref()
        .ok_or_else(|| ApiError::not_found("the conda gateway is not configured on this server"))
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
    if filename == "repodata.json" {
        return repodata(state, gateway, params, headers, channel, subdir).await;
    }
    if !conda::is_package_filename(filename) {
        return Err(ApiError::not_found(format!(
            "Formulary serves repodata.json and package files (.conda, .tar.bz2) here, not '{}'; conda, mamba and pixi fall back to repodata.json",
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

async fn repodata(
    state: &AppState,
    gateway: &CondaGateway,
    params: &HashMap<String, String>,
    headers: &HeaderMap,
    channel: &str,
    subdir: &str,
) -> Result<Response, ApiError> {
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
        RepodataOutcome::Repodata(served) => Ok(document_response(
            headers,
            &served.json,
            "application/json",
            served.stale,
            false,
        )),
        RepodataOutcome::Missing => Err(ApiError::not_found(format!(
            "no upstream of channel {channel} has a subdirectory {subdir}"
        ))),
    }
}
