//! `uv python install` through the gateway: `…/python/download-metadata.json` (uv's
//! `python-downloads-json-url` setting, or `UV_PYTHON_DOWNLOADS_JSON_URL`), in the format of
//! uv's own `download-metadata.json`, under every view prefix and behind the gateway's
//! authentication (uv sends the netrc credentials when asked).
//!
//! The builds are the files of the desktop tool `pkg:generic/cpython` (python-build-standalone
//! `install_only` archives, added from a manifest with `formulary tools add`). Every build the
//! view allows is listed; a refused build is listed where uv would choose it only for a request
//! no allowed build meets (`choice.rs`), so `uv python install 3.10` reaches its file, which
//! answers 403 with the reason (uv prints the reason phrase), while `uv python install 3.12`
//! still gets the newest allowed 3.12. Each build's address is the tool file route
//! (`…/tools/files/cpython/…`), so the archive is pulled through, checked against the manifest's
//! SHA-256 and size before it is cached, refused with the reason when the policy denies it, and
//! recorded in the download ledger with the person.

mod choice;

use std::collections::{BTreeMap, HashMap};

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use formulary_store::ToolArtifact;
use serde_json::{json, Map, Value};

use self::choice::{choose, Listing, PythonVersion};
use crate::error::ApiError;
use crate::gateway::{gateway_error, snapshot_for, view_for};
use crate::state::AppState;

/// The desktop tool whose files are CPython builds.
pub(crate) const PYTHON_TOOL: &str = "cpython";

/// `GET …/python/download-metadata.json`: the CPython builds, as uv reads them: every allowed
/// build, and refused builds only where uv reaches them for requests no allowed build meets.
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
    // Each platform's builds, with the view's decision, chosen as a whole (`choice.rs`).
    let mut platforms: BTreeMap<&str, Vec<(&ToolArtifact, PythonVersion, bool)>> = BTreeMap::new();
    for tool in &offered {
        for artifact in &tool.artifacts {
            if artifact.name != PYTHON_TOOL || artifact.kind != "archive" {
                continue;
            }
            if let Some(version) = PythonVersion::parse(&artifact.version) {
                platforms
                    .entry(artifact.platform.as_str())
                    .or_default()
                    .push((artifact, version, tool.decision.allowed));
            }
        }
    }
    let mut downloads = Map::new();
    for builds in platforms.values() {
        let versions: Vec<(PythonVersion, bool)> = builds
            .iter()
            .map(|(_, version, allowed)| (*version, *allowed))
            .collect();
        for ((artifact, _, _), (listing, listed)) in builds.iter().zip(choose(&versions)) {
            if listing == Listing::Left {
                continue;
            }
            if let Some((key, entry)) = download(artifact, listed, &base) {
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

/// One entry of uv's list for a build, named as `listed` (its own version, or a pre-release of
/// it): its key and fields. Platforms are `{arch}-{os}` with an optional libc (`x86_64-linux` is
/// glibc, `x86_64-linux-musl`), as tool manifests write them. The address is always the build's
/// own file.
fn download(
    artifact: &ToolArtifact,
    listed: PythonVersion,
    base: &url::Url,
) -> Option<(String, Value)> {
    let (major, minor, patch, prerelease) = (
        listed.major,
        listed.minor,
        listed.patch,
        listed.prerelease(),
    );
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
            install_args: Vec::new(),
            signature: None,
        }
    }

    #[test]
    fn builds_are_listed_as_uv_reads_them_with_gateway_addresses() {
        let base = url::Url::parse("https://f.example/o/RJ1/").expect("url");
        let entry = |version: &str, platform: &str| {
            download(
                &artifact(version, platform),
                PythonVersion::parse(version)?,
                &base,
            )
        };
        let (key, listed) = entry("3.11.2", "x86_64-linux").expect("entry");
        assert_eq!(key, "cpython-3.11.2-linux-x86_64-gnu");
        assert_eq!(listed["os"], "linux");
        assert_eq!(listed["libc"], "gnu");
        assert_eq!(listed["arch"]["family"], "x86_64");
        assert_eq!(
            (
                listed["major"].as_u64(),
                listed["minor"].as_u64(),
                listed["patch"].as_u64()
            ),
            (Some(3), Some(11), Some(2))
        );
        assert_eq!(
            listed["url"],
            "https://f.example/o/RJ1/tools/files/cpython/3.11.2/x86_64-linux/cpython-3.11.2%2B20250428-x86_64-unknown-linux-gnu-install_only.tar.gz"
        );
        let (key, listed) = entry("3.14.0rc1", "aarch64-macos").expect("entry");
        assert_eq!(key, "cpython-3.14.0rc1-darwin-aarch64-none");
        assert_eq!(listed["prerelease"], "rc1");
        assert!(entry("3.14", "x86_64-linux").is_none());
        assert!(entry("3.11.2", "x86_64-plan9").is_none());
        assert!(entry("3.11.2dev", "x86_64-linux").is_none());
    }

    #[test]
    fn a_build_listed_as_a_prerelease_keeps_its_own_address() {
        let base = url::Url::parse("https://f.example/").expect("url");
        let listed = PythonVersion::parse("3.14.2rc0").expect("version");
        let (key, entry) =
            download(&artifact("3.14.2", "x86_64-linux"), listed, &base).expect("entry");
        assert_eq!(key, "cpython-3.14.2rc0-linux-x86_64-gnu");
        assert_eq!(entry["prerelease"], "rc0");
        assert!(entry["url"].as_str().expect("url").starts_with(
            "https://f.example/tools/files/cpython/3.14.2/x86_64-linux/cpython-3.14.2%2B"
        ));
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
