//! Scoop manifests for approved desktop tools: `…/tools/scoop/{name}.json` under every view
//! prefix (`scoop install https://HOST/o/ORG/tools/scoop/git.json`). Scoop installs into the
//! person's own profile without admin rights; the manifest names the newest version of the tool
//! the view allows that has Windows files, each file's address on the gateway (so it is pulled
//! through, verified, cached, refused when denied, and recorded in the ledger) and its SHA-256,
//! which Scoop checks.
//!
//! Scoop sends no credentials of its own: when the manifest was asked for with the token in the
//! path (`/t/frm-…/o/ORG/tools/scoop/git.json`), the files' addresses carry the same prefix.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use formulary_core::ecosystems::{Ecosystem, Version};
use formulary_core::policy::Effect;
use formulary_store::ToolArtifact;
use serde_json::{json, Map, Value};

use crate::error::ApiError;
use crate::gateway::{gateway_error, snapshot_for, view_for};
use crate::path_token::PathTokenPrefix;
use crate::state::AppState;

/// Scoop's architecture names for the platforms tool manifests use.
fn scoop_architecture(platform: &str) -> Option<&'static str> {
    match platform {
        "x86_64-windows" => Some("64bit"),
        "aarch64-windows" => Some("arm64"),
        "i686-windows" | "x86-windows" => Some("32bit"),
        _ => None,
    }
}

/// `GET …/tools/scoop/{file}` where `file` is `NAME.json`.
pub(crate) async fn manifest(
    State(state): State<AppState>,
    Path(params): Path<HashMap<String, String>>,
    prefix: Option<Extension<PathTokenPrefix>>,
) -> Result<Response, ApiError> {
    let file = params.get("file").map(String::as_str).unwrap_or_default();
    let name = file
        .strip_suffix(".json")
        .ok_or_else(|| ApiError::not_found("a Scoop manifest is NAME.json, e.g. git.json"))?
        .to_ascii_lowercase();
    let request = view_for(&state, &params)?;
    let (_, snapshot) = snapshot_for(&state, &request, "/tools/scoop/").await?;
    let tools = state
        .tools
        .as_deref()
        .ok_or_else(|| ApiError::not_found("desktop tools are not offered by this server"))?;
    let offered = tools
        .offered(&snapshot, &request.view)
        .await
        .map_err(gateway_error)?;
    let windows: Vec<_> = offered
        .iter()
        .filter(|tool| {
            tool.artifacts.iter().any(|artifact| {
                artifact.name == name
                    && artifact.kind != "installer"
                    && scoop_architecture(&artifact.platform).is_some()
            })
        })
        .collect();
    let newest = windows
        .iter()
        .filter(|tool| tool.decision.allowed)
        .filter_map(|tool| {
            let version = Version::parse(Ecosystem::Generic, &tool.artifacts[0].version).ok()?;
            Some((version, *tool))
        })
        .max_by(|(a, _), (b, _)| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal))
        .map(|(_, tool)| tool);
    let Some(tool) = newest else {
        if windows.is_empty() {
            return Err(ApiError::not_found(format!(
                "this view offers no Windows files of {name}; see `formulary tools list`"
            )));
        }
        let reasons: Vec<String> = windows
            .iter()
            .flat_map(|tool| {
                tool.decision
                    .reasons
                    .iter()
                    .filter(|reason| reason.effect == Effect::Deny)
                    .map(|reason| format!("{}: {}", tool.decision.version, reason.message))
            })
            .collect();
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "Blocked by Formulary",
            format!(
                "no version of {name} is allowed in this view ({})",
                reasons.join("; ")
            ),
        ));
    };
    let mut base = state.public_url.to_string();
    if let Some(Extension(PathTokenPrefix(prefix))) = prefix {
        base.push_str(prefix.trim_start_matches('/'));
        base.push('/');
    }
    if let Some(organisation) = params.get("org") {
        base.push_str(&format!("o/{organisation}/"));
    }
    if let Some(at) = params.get("at") {
        base.push_str(&format!("{at}/"));
    }
    Ok(Json(scoop_manifest(
        &name,
        &tool.artifacts,
        &base,
        &state.public_url,
    ))
    .into_response())
}

/// The manifest for one tool version's Windows files, with addresses under `base` (the view's
/// address, ending in `/`).
fn scoop_manifest(
    name: &str,
    artifacts: &[ToolArtifact],
    base: &str,
    public_url: &url::Url,
) -> Value {
    let mut architecture = Map::new();
    let mut bin: Vec<String> = Vec::new();
    let mut version = String::new();
    for artifact in artifacts {
        let (Some(arch), false) = (
            scoop_architecture(&artifact.platform),
            artifact.kind == "installer",
        ) else {
            continue;
        };
        version.clone_from(&artifact.version);
        let url = format!(
            "{base}tools/files/{}/{}/{}/{}",
            artifact.name, artifact.version, artifact.platform, artifact.filename
        );
        // A bare program is saved under the tool's name; an archive's programs are named by the
        // manifest.
        let (url, programs) = if artifact.kind == "binary" {
            (format!("{url}#/{name}.exe"), vec![format!("{name}.exe")])
        } else {
            (url, artifact.binaries.clone())
        };
        for program in programs {
            let program = program.replace('/', "\\");
            if !bin.contains(&program) {
                bin.push(program);
            }
        }
        architecture.insert(
            arch.to_owned(),
            json!({ "url": url, "hash": artifact.sha256 }),
        );
    }
    json!({
        "version": version,
        "description": format!("{name}, as approved in the formulary (pkg:generic/{name})"),
        "homepage": format!("{public_url}components/generic/{name}"),
        "license": "Unknown",
        "architecture": architecture,
        "bin": bin,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn artifact(platform: &str, kind: &str) -> ToolArtifact {
        ToolArtifact {
            name: "ruff".to_owned(),
            version: "0.6.9".to_owned(),
            platform: platform.to_owned(),
            filename: "ruff-x86_64-pc-windows-msvc.zip".to_owned(),
            url: "https://vendor.example/ruff.zip".to_owned(),
            sha256: "ab".repeat(32),
            size: 1,
            kind: kind.to_owned(),
            binaries: vec!["ruff.exe".to_owned()],
            install_args: Vec::new(),
            signature: None,
        }
    }

    #[test]
    fn windows_files_become_scoop_architectures_with_gateway_addresses() {
        let public = url::Url::parse("https://f.example/").expect("url");
        let manifest = scoop_manifest(
            "ruff",
            &[
                artifact("x86_64-windows", "archive"),
                artifact("x86_64-linux", "archive"),
                artifact("aarch64-windows", "installer"),
            ],
            "https://f.example/t/frm-abc/o/RJ1/",
            &public,
        );
        assert_eq!(manifest["version"], "0.6.9");
        assert_eq!(
            manifest["architecture"]["64bit"]["url"],
            "https://f.example/t/frm-abc/o/RJ1/tools/files/ruff/0.6.9/x86_64-windows/ruff-x86_64-pc-windows-msvc.zip"
        );
        assert_eq!(manifest["architecture"]["64bit"]["hash"], "ab".repeat(32));
        assert!(
            manifest["architecture"]["arm64"].is_null(),
            "installers are not for Scoop"
        );
        assert_eq!(manifest["bin"], json!(["ruff.exe"]));
        assert_eq!(
            manifest["homepage"],
            "https://f.example/components/generic/ruff"
        );
    }

    #[test]
    fn a_bare_program_is_saved_under_the_tools_name() {
        let public = url::Url::parse("https://f.example/").expect("url");
        let manifest = scoop_manifest(
            "formulary",
            &[ToolArtifact {
                name: "formulary".to_owned(),
                filename: "formulary-x86_64-pc-windows-msvc.exe".to_owned(),
                ..artifact("x86_64-windows", "binary")
            }],
            "https://f.example/",
            &public,
        );
        assert!(manifest["architecture"]["64bit"]["url"]
            .as_str()
            .is_some_and(
                |url| url.ends_with("formulary-x86_64-pc-windows-msvc.exe#/formulary.exe")
            ));
        assert_eq!(manifest["bin"], json!(["formulary.exe"]));
    }
}
