//! Desktop tools through the gateway (`/tools/…` under every view prefix): the list of tool
//! versions with files and the view's decision on each (`tools/index.json`, read by
//! `formulary tools list|install`), and the files themselves, pulled through, verified,
//! refused with the reasons when the policy denies them, and recorded in the download ledger.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use formulary_core::ecosystems::Ecosystem;
use formulary_core::policy::Effect;
use formulary_core::Component;
use formulary_gateway::{ToolFileOutcome, ToolGateway};
use serde_json::{json, Value};

use crate::downloads::{serve_blob, write_ledger, Requester};
use crate::error::ApiError;
use crate::gateway::{gateway_error, refusal, snapshot_for, view_for};
use crate::state::AppState;

fn gateway(state: &AppState) -> Result<&ToolGateway, ApiError> {
    state
        .tools
        .as_deref()
        .ok_or_else(|| ApiError::not_found("desktop tools are not offered by this server"))
}

/// `GET …/tools/index.json`: every tool version with files, the view's decision, and the files'
/// addresses relative to `…/tools/`.
pub(crate) async fn index(
    State(state): State<AppState>,
    Path(params): Path<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let request = view_for(&state, &params)?;
    let (_, snapshot) = snapshot_for(&state, &request, "/tools/").await?;
    let offered = gateway(&state)?
        .offered(&snapshot, &request.view)
        .await
        .map_err(gateway_error)?;
    let tools: Vec<Value> = offered
        .iter()
        .filter_map(|tool| {
            let first = tool.artifacts.first()?;
            Some(json!({
                "name": first.name,
                "version": first.version,
                "allowed": tool.decision.allowed,
                "reasons": tool.decision.reasons.iter().filter(|reason| reason.effect == Effect::Deny).map(|reason| json!({"code": reason.code, "message": reason.message})).collect::<Vec<_>>(),
                "files": tool.artifacts.iter().map(|artifact| json!({
                    "platform": artifact.platform,
                    "filename": artifact.filename,
                    "sha256": artifact.sha256,
                    "size": artifact.size,
                    "kind": artifact.kind,
                    "binaries": artifact.binaries,
                    "install_args": artifact.install_args,
                    "signature": artifact.signature.as_ref().map(|signature| json!({"kind": signature.kind, "signer": signature.signer, "url": signature.url})),
                    "url": format!("files/{}/{}/{}/{}", artifact.name, artifact.version, artifact.platform, artifact.filename),
                })).collect::<Vec<_>>(),
            }))
        })
        .collect();
    Ok(Json(json!({ "tools": tools })))
}

/// `GET …/tools/files/{name}/{version}/{platform}/{filename}`.
pub(crate) async fn file(
    State(state): State<AppState>,
    Path(params): Path<HashMap<String, String>>,
    headers: HeaderMap,
    requester: Requester,
) -> Result<Response, ApiError> {
    let part = |key: &str| params.get(key).map(String::as_str).unwrap_or_default();
    let (name, version, platform, filename) = (
        part("name"),
        part("version"),
        part("platform"),
        part("filename"),
    );
    let component = Component::new(Ecosystem::Generic, name)
        .map_err(|error| ApiError::not_found(error.to_string()))?;
    let request = view_for(&state, &params)?;
    let (_, snapshot) = snapshot_for(&state, &request, "/tools/").await?;
    let outcome = gateway(&state)?
        .file(
            &snapshot,
            &request.view,
            component.name.as_str(),
            version,
            platform,
        )
        .await
        .map_err(gateway_error)?;
    let line = |outcome: &str| {
        requester.line(
            &request.view.organisation,
            component.clone(),
            version.to_owned(),
            filename,
            outcome,
        )
    };
    match outcome {
        ToolFileOutcome::Missing => Err(ApiError::not_found(format!(
            "no file {} of {name} {version} for {platform}",
            filename.escape_debug()
        ))),
        ToolFileOutcome::Refused(decision) => {
            write_ledger(&state, &line("refused")).await;
            Ok(refusal(&state, &decision).into_response())
        }
        ToolFileOutcome::Serve(blob) => {
            write_ledger(&state, &line("served")).await;
            serve_blob(&state, &blob.sha256, &headers).await
        }
    }
}
