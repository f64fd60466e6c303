//! The CRAN-like repository (`/cran/`, `/o/{org}/cran/`, `/@YYYY-MM-DD/cran/`): `PACKAGES` and
//! `PACKAGES.gz` per tree, `src/contrib/Meta/archive.rds`, package files, and refusals R can
//! show. R prints only the URL of a download that failed, so a refused file redirects to
//! `/_blocked/cran/{package}/{version}/{reason}`, which answers 403: the reason is in the URL R
//! prints.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use formulary_core::policy::Decision;
use formulary_gateway::{is_cran_tree, CranFileOutcome, CranGateway, Rendered};

use crate::downloads::{serve_blob, write_ledger, Requester};
use crate::error::ApiError;
use crate::gateway::{document_response, gateway_error, snapshot_for, view_for};
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

/// A reason as a URL path segment: lower-case letters, digits and dashes.
fn slug(decision: &Decision) -> String {
    let headline = decision.headline().unwrap_or("denied by policy");
    let mut slug = String::new();
    for character in headline.chars() {
        if character.is_ascii_alphanumeric() {
            slug.push(character.to_ascii_lowercase());
        } else if !slug.ends_with('-') {
            slug.push('-');
        }
        if slug.len() >= 150 {
            break;
        }
    }
    slug.trim_matches('-').to_owned()
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
            let target = format!(
                "/_blocked/cran/{}/{}/{}",
                decision.component.name,
                decision.version,
                slug(&decision)
            );
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

/// `GET /_blocked/cran/{package}/{version}/{reason}`: where refused R downloads land.
pub(crate) async fn blocked(
    Path((package, version, reason)): Path<(String, String, String)>,
) -> ApiError {
    let clean = |text: &str| {
        text.chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
            .take(160)
            .collect::<String>()
    };
    ApiError::new(
        StatusCode::FORBIDDEN,
        format!(
            "Blocked by Formulary: {} {} is not allowed",
            clean(&package),
            clean(&version)
        ),
        format!(
            "{}. Ask for it through a request, or install an allowed version.",
            clean(&reason).replace('-', " ")
        ),
    )
}
