//! The CRAN-like repository (`/cran/`, `/o/{org}/cran/`, `/@YYYY-MM-DD/cran/`): `PACKAGES` and
//! `PACKAGES.gz` per tree, `src/contrib/Meta/archive.rds`, package files, and refusals R can
//! show. R prints only the URL of a download that failed, so a refused file redirects to
//! `…/cran/{directory}/_blocked/{file}/{reason}` in the same view, and refused stanzas of
//! `PACKAGES` and rows of `archive.rds` point at `…/_blocked/{reason}/{file}`; both answer 403
//! with the refusal decided again (the reason is in the URL R prints; the page never shows URL
//! text).

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use formulary_gateway::{is_cran_tree, refusal_slug, CranFileOutcome, CranGateway, Rendered};

use crate::downloads::{serve_blob, write_ledger, Requester};
use crate::error::ApiError;
use crate::gateway::{document_response, gateway_error, refusal, snapshot_for, view_for};
use crate::state::AppState;

fn gateway(state: &AppState) -> Result<&CranGateway, ApiError> {
    state
        .cran
        .as_deref()
        .ok_or_else(|| ApiError::not_found("the CRAN gateway is not configured on this server"))
}

fn index_response(
    headers: &HeaderMap,
    rendered: &Rendered,
    content_type: &'static str,
    stale: bool,
) -> Response {
    document_response(headers, rendered, content_type, stale, true)
}

/// `GET …/cran/{*path}`.
pub(crate) async fn serve(
    State(state): State<AppState>,
    Path(params): Path<HashMap<String, String>>,
    headers: HeaderMap,
    requester: Requester,
) -> Result<Response, ApiError> {
    let path = params
        .get("path")
        .map(String::as_str)
        .unwrap_or_default()
        .trim_start_matches('/');
    let request = view_for(&state, &params)?;
    let (generation, snapshot) = snapshot_for(&state, &request, "/cran/").await?;
    let not_found = || {
        ApiError::not_found(format!(
            "'{}' is not part of this CRAN-like repository",
            path.escape_debug()
        ))
    };
    if path == "src/contrib/Meta/archive.rds" {
        let archive = gateway(&state)?
            .archive_rds(&snapshot, generation, &request.view, request.day)
            .await
            .map_err(gateway_error)?;
        return Ok(index_response(
            &headers,
            &archive,
            "application/octet-stream",
            false,
        ));
    }
    if let Some((directory, rest)) = path.split_once("/_blocked/") {
        return blocked(&state, &snapshot, &request.view, directory, rest).await;
    }
    let Some((directory, file)) = path.rsplit_once('/') else {
        return Err(not_found());
    };
    if is_cran_tree(directory) && matches!(file, "PACKAGES" | "PACKAGES.gz") {
        let index = gateway(&state)?
            .index(&snapshot, generation, &request.view, request.day, directory)
            .await
            .map_err(gateway_error)?
            .ok_or_else(|| ApiError::not_found(format!("no upstream has {directory}/PACKAGES")))?;
        return Ok(if file == "PACKAGES" {
            index_response(
                &headers,
                &index.packages,
                "text/plain; charset=utf-8",
                index.stale,
            )
        } else {
            index_response(
                &headers,
                &index.packages_gz,
                "application/gzip",
                index.stale,
            )
        });
    }
    if is_cran_tree(directory) && file == "PACKAGES.rds" {
        return Err(ApiError::not_found(
            "PACKAGES.rds is not served; R falls back to PACKAGES.gz",
        ));
    }
    // Archived sources: src/contrib/Archive/{package}/{file}.
    let tree = match directory.strip_prefix("src/contrib/Archive/") {
        Some(package) if !package.contains('/') && file.starts_with(&format!("{package}_")) => {
            "src/contrib"
        }
        Some(_) => return Err(not_found()),
        None if is_cran_tree(directory) => directory,
        None => return Err(not_found()),
    };
    let outcome = gateway(&state)?
        .file(&snapshot, &request.view, tree, file)
        .await
        .map_err(gateway_error)?;
    let ledger = |component: formulary_core::Component, version: String, outcome: &str| {
        requester.line(
            &request.view.organisation,
            component,
            version,
            file,
            outcome,
        )
    };
    match outcome {
        CranFileOutcome::Missing => Err(not_found()),
        CranFileOutcome::Refused(decision) => {
            write_ledger(
                &state,
                &ledger(
                    decision.component.clone(),
                    decision.version.clone(),
                    "refused",
                ),
            )
            .await;
            // Beside the file, in the same view: `…/cran/{directory}/_blocked/{file}/{reason}`,
            // absolute from `public_url`, because R prints the URL.
            let mut prefix = String::new();
            if let Some(organisation) = params.get("org") {
                prefix.push_str(&format!("o/{organisation}/"));
            }
            if let Some(at) = params.get("at") {
                prefix.push_str(&format!("{at}/"));
            }
            let target = format!(
                "{prefix}cran/{directory}/_blocked/{file}/{}",
                refusal_slug(&decision)
            );
            let target = state
                .public_url
                .join(&target)
                .map_or(target, |url| url.to_string());
            Ok(Redirect::to(&target).into_response())
        }
        CranFileOutcome::Serve { blob, version } => {
            if let Some((component, _)) = formulary_gateway::parse_cran_filename(file) {
                write_ledger(&state, &ledger(component, version, "served")).await;
            }
            serve_blob(&state, &blob.sha256, &headers).await
        }
    }
}

/// `GET …/cran/{directory}/_blocked/{file}/{reason}`: where refused R downloads land (R prints
/// only the URL, so the reason is in it). The refusal is decided again, as a download of that
/// file in that view is; the page shows that decision, and answers 404 unless the gateway does
/// refuse the file for the reason the URL names. No text of the URL is shown.
async fn blocked(
    state: &AppState,
    snapshot: &formulary_core::policy::PolicySnapshot,
    view: &formulary_core::policy::View,
    directory: &str,
    rest: &str,
) -> Result<Response, ApiError> {
    let not_a_refusal = || {
        ApiError::not_found(
            "this is not a refusal this server made; ask for the package's page at /components/cran/NAME",
        )
    };
    // `_blocked/{file}/{reason}` (where a refused download redirects) or `_blocked/{reason}/{file}`
    // (the `Path` of a refused PACKAGES stanza, and refused rows of archive.rds).
    let Some((first, second)) = rest.split_once('/') else {
        return Err(not_a_refusal());
    };
    let (file, reason) = if formulary_gateway::parse_cran_filename(second).is_some() {
        (second, first)
    } else {
        (first, second)
    };
    let tree = match directory.strip_prefix("src/contrib/Archive/") {
        Some(package) if !package.contains('/') => "src/contrib",
        Some(_) => return Err(not_a_refusal()),
        None if is_cran_tree(directory) => directory,
        None => return Err(not_a_refusal()),
    };
    let decision = gateway(state)?
        .refusal(snapshot, view, tree, file)
        .await
        .map_err(gateway_error)?
        .filter(|decision| refusal_slug(decision) == reason)
        .ok_or_else(not_a_refusal)?;
    Ok(refusal(state, &decision))
}
