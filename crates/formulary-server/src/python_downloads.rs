//! `uv python install` through the gateway: `…/python/download-metadata.json` (uv's
//! `python-downloads-json-url` setting, or `UV_PYTHON_DOWNLOADS_JSON_URL`), in the format of
//! uv's own `download-metadata.json`, under every view prefix and behind the gateway's
//! authentication (uv sends the netrc credentials when asked).
//!
//! The builds are the files of the desktop tool `pkg:generic/cpython` (python-build-standalone
//! `install_only` archives, added from a manifest with `formulary tools add`), and only those
//! the view allows are listed: uv then picks the newest allowed build, and a version that is not
//! allowed is "not found" by uv (`formulary tools list` says why). Each build's address is the
//! tool file route (`…/tools/files/cpython/…`), so the archive is pulled through, checked against
//! the manifest's SHA-256 and size before it is cached, refused with the reason when the policy
//! denies it, and recorded in the download ledger with the person.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use formulary_store::ToolArtifact;
use serde_json::{json, Map, Value};

use crate::error::ApiError;
use crate::gateway::{gateway_error, snapshot_for, view_for};
use crate::state::AppState;

/// The desktop tool whose files are CPython builds.
pub(crate) const PYTHON_TOOL: &str = "cpython";

/// `GET …/python/download-metadata.json`: the allowed CPython builds, as uv reads them.
pub(crate) async fn list(
    State(state): State<AppState>,
    Path(params): Path<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let request = view_for(&state, &params)?;
    let (_, snapshot) = snapshot_for(&state, &request, "/python/download-metadata.json").await?;
    let tools = state.tools.as_deref().ok_or_else(|| {
        ApiError::not_found("this server offers no desktop tools, so no Python builds either")
    })?;
    let offered = tools
        .offered(&snapshot, &request.view)
        .await
        .map_err(gateway_error)?;
    let base = view_base(&state.public_url, &params)?;
    let mut downloads = Map::new();
    for tool in offered.iter().filter(|tool| tool.decision.allowed) {
        for artifact in &tool.artifacts {
            if artifact.name != PYTHON_TOOL || artifact.kind != "archive" {
                continue;
            }
            if let Some((key, entry)) = download(artifact, &base) {
                downloads.insert(key, entry);
            }
        }
    }
    let mut response = Json(Value::Object(downloads)).into_response();
    // uv keeps the list in its cache; it must ask again, so that a new prohibition applies.
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(response)
}

/// The view's address on this server, from `public_url` and the request's prefix.
fn view_base(
    public_url: &url::Url,
    params: &HashMap<String, String>,
) -> Result<url::Url, ApiError> {
    let mut prefix = String::new();
    if let Some(organisation) = params.get("org") {
        prefix.push_str(&format!("o/{organisation}/"));
    }
    if let Some(at) = params.get("at") {
        prefix.push_str(&format!("{at}/"));
    }
    public_url
        .join(&prefix)
        .map_err(|error| ApiError::not_found(format!("not a view: {error}")))
}

/// `3.11.2` → (3, 11, 2, ""); `3.14.0rc1` → (3, 14, 0, "rc1"); anything else: `None`.
fn python_version(version: &str) -> Option<(u8, u8, u8, String)> {
    let mut parts = version.splitn(3, '.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    let rest = parts.next()?;
    let digits = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    let patch = rest[..digits].parse().ok()?;
    let prerelease = &rest[digits..];
    let known = prerelease.is_empty()
        || ["a", "b", "rc"].iter().any(|kind| {
            prerelease.strip_prefix(kind).is_some_and(|number| {
                !number.is_empty() && number.chars().all(|c| c.is_ascii_digit())
            })
        });
    known.then(|| (major, minor, patch, prerelease.to_owned()))
}

/// One entry of uv's list for a build: its key and fields. Platforms are `{arch}-{os}` with an
/// optional libc (`x86_64-linux` is glibc, `x86_64-linux-musl`), as tool manifests write them.
fn download(artifact: &ToolArtifact, base: &url::Url) -> Option<(String, Value)> {
    let (major, minor, patch, prerelease) = python_version(&artifact.version)?;
    let mut parts = artifact.platform.split('-');
    let (arch, os, libc) = (parts.next()?, parts.next()?, parts.next());
    if parts.next().is_some() {
        return None;
    }
    let (os, libc) = match (os, libc) {
        ("linux", None | Some("gnu")) => ("linux", "gnu"),
        ("linux", Some("musl")) => ("linux", "musl"),
        ("macos", None) => ("darwin", "none"),
        ("windows", None) => ("windows", "none"),
        _ => return None,
    };
    // python-build-standalone names hold `+`; uv expects it written `%2B`.
    let url = base
        .join(&format!(
            "tools/files/{}/{}/{}/{}",
            artifact.name,
            artifact.version,
            artifact.platform,
            artifact.filename.replace('+', "%2B")
        ))
        .ok()?;
    let key = format!("cpython-{major}.{minor}.{patch}{prerelease}-{os}-{arch}-{libc}");
    Some((
        key,
        json!({
            "name": "cpython",
            "arch": { "family": arch, "variant": null },
            "os": os,
            "libc": libc,
            "major": major,
            "minor": minor,
            "patch": patch,
            "prerelease": prerelease,
            "url": url.as_str(),
            "sha256": artifact.sha256,
            "variant": null,
            "build": null,
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn artifact(version: &str, platform: &str) -> ToolArtifact {
        ToolArtifact {
            name: "cpython".to_owned(),
            version: version.to_owned(),
            platform: platform.to_owned(),
            filename: format!(
                "cpython-{version}+20250428-x86_64-unknown-linux-gnu-install_only.tar.gz"
            ),
            url: "https://vendor.example/x.tar.gz".to_owned(),
            sha256: "ab".repeat(32),
            size: 1,
            kind: "archive".to_owned(),
            binaries: Vec::new(),
        }
    }

    #[test]
    fn builds_are_listed_as_uv_reads_them_with_gateway_addresses() {
        let base = url::Url::parse("https://f.example/o/RJ1/").expect("url");
        let (key, entry) = download(&artifact("3.11.2", "x86_64-linux"), &base).expect("entry");
        assert_eq!(key, "cpython-3.11.2-linux-x86_64-gnu");
        assert_eq!(entry["os"], "linux");
        assert_eq!(entry["libc"], "gnu");
        assert_eq!(entry["arch"]["family"], "x86_64");
        assert_eq!(
            (
                entry["major"].as_u64(),
                entry["minor"].as_u64(),
                entry["patch"].as_u64()
            ),
            (Some(3), Some(11), Some(2))
        );
        assert_eq!(
            entry["url"],
            "https://f.example/o/RJ1/tools/files/cpython/3.11.2/x86_64-linux/cpython-3.11.2%2B20250428-x86_64-unknown-linux-gnu-install_only.tar.gz"
        );
        let (key, entry) = download(&artifact("3.14.0rc1", "aarch64-macos"), &base).expect("entry");
        assert_eq!(key, "cpython-3.14.0rc1-darwin-aarch64-none");
        assert_eq!(entry["prerelease"], "rc1");
        assert!(download(&artifact("3.14", "x86_64-linux"), &base).is_none());
        assert!(download(&artifact("3.11.2", "x86_64-plan9"), &base).is_none());
        assert!(download(&artifact("3.11.2dev", "x86_64-linux"), &base).is_none());
    }

    #[test]
    fn the_view_prefix_comes_from_the_request_and_the_host_from_public_url() {
        let public = url::Url::parse("https://f.example/").expect("url");
        let mut params = HashMap::new();
        assert_eq!(
            view_base(&public, &params).expect("base").as_str(),
            "https://f.example/"
        );
        params.insert("org".to_owned(), "RJ1".to_owned());
        params.insert("at".to_owned(), "@2026-01-02".to_owned());
        assert_eq!(
            view_base(&public, &params).expect("base").as_str(),
            "https://f.example/o/RJ1/@2026-01-02/"
        );
    }
}
