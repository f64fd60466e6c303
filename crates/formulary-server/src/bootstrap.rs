//! The bootstrap for a computer with nothing installed: `GET /setup.sh` (POSIX sh, for Linux
//! and macOS: `curl -fsSL https://HOST/setup.sh | sh`) and `GET /setup.ps1` (PowerShell, for
//! Windows: `irm https://HOST/setup.ps1 | iex`).
//!
//! Each script names this server by its `public_url` (never the request's `Host`), and lists,
//! per platform, the `formulary` client the server offers: the newest version of the desktop
//! tool `pkg:generic/formulary` (files of kind `binary`, added from a release's manifest with
//! `formulary tools add`) that the default view allows, its address on the gateway and its
//! SHA-256. The script downloads it with the person's token (the gateway's policy, cache and
//! ledger apply), checks the SHA-256, puts it in the person's own profile, and runs
//! `formulary setup`. The scripts themselves are public, like the home page: they hold no
//! secret, and a person must be able to read one before running it.

use std::collections::{BTreeMap, HashMap};

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use formulary_core::ecosystems::{Ecosystem, Version};

use crate::error::ApiError;
use crate::gateway::{gateway_error, snapshot_for, view_for};
use crate::state::AppState;

/// The desktop tool whose files are the `formulary` client's release binaries.
pub(crate) const CLIENT_TOOL: &str = "formulary";

const SHELL_TEMPLATE: &str = include_str!("bootstrap/setup.sh");
const POWERSHELL_TEMPLATE: &str = include_str!("bootstrap/setup.ps1");

/// One platform's client: which version, where the gateway serves it, what it must hash to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClientBuild {
    /// `{arch}-{os}`, as tool manifests name platforms (`x86_64-linux`, `aarch64-macos`, …).
    pub(crate) platform: String,
    pub(crate) version: String,
    /// An absolute address on this server's gateway (default view).
    pub(crate) url: String,
    pub(crate) sha256: String,
}

/// The newest allowed `formulary` binary per platform, in the server's default view.
async fn client_builds(state: &AppState) -> Result<Vec<ClientBuild>, ApiError> {
    let Some(tools) = state.tools.as_deref() else {
        return Ok(Vec::new());
    };
    let request = view_for(state, &HashMap::new())?;
    let (_, snapshot) = snapshot_for(state, &request, "/tools/").await?;
    let offered = tools
        .offered(&snapshot, &request.view)
        .await
        .map_err(gateway_error)?;
    let mut newest: BTreeMap<String, (Version, ClientBuild)> = BTreeMap::new();
    for tool in offered.iter().filter(|tool| tool.decision.allowed) {
        for artifact in &tool.artifacts {
            if artifact.name != CLIENT_TOOL || artifact.kind != "binary" {
                continue;
            }
            let Ok(version) = Version::parse(Ecosystem::Generic, &artifact.version) else {
                continue;
            };
            let url = state
                .public_url
                .join(&format!(
                    "tools/files/{}/{}/{}/{}",
                    artifact.name, artifact.version, artifact.platform, artifact.filename
                ))
                .map_err(|error| {
                    ApiError::new(
                        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                        "A client's address could not be built",
                        format!("{}: {error}", artifact.filename.escape_debug()),
                    )
                })?;
            let build = ClientBuild {
                platform: artifact.platform.clone(),
                version: artifact.version.clone(),
                url: url.to_string(),
                sha256: artifact.sha256.clone(),
            };
            match newest.get(&artifact.platform) {
                Some((best, _)) if *best >= version => {}
                _ => {
                    newest.insert(artifact.platform.clone(), (version, build));
                }
            }
        }
    }
    Ok(newest.into_values().map(|(_, build)| build).collect())
}

/// A text in single quotes for sh: `'` becomes `'\''`.
fn sh_quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// A text in single quotes for PowerShell: `'` becomes `''`.
fn ps_quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// `setup.sh` for this server and these clients.
pub(crate) fn shell_script(server: &url::Url, builds: &[ClientBuild]) -> String {
    let cases: String = builds
        .iter()
        .map(|build| {
            format!(
                "    {})\n        version={}\n        url={}\n        sha256={}\n        ;;\n",
                sh_quoted(&build.platform),
                sh_quoted(&build.version),
                sh_quoted(&build.url),
                sh_quoted(&build.sha256)
            )
        })
        .collect();
    let server = server.as_str().replace('\'', "%27");
    SHELL_TEMPLATE
        .replace("@@CASES@@", &cases)
        .replace("@@SERVER@@", &server)
}

/// `setup.ps1` for this server and these clients (the Windows platforms among them).
pub(crate) fn powershell_script(server: &url::Url, builds: &[ClientBuild]) -> String {
    let cases: String = builds
        .iter()
        .filter(|build| build.platform.ends_with("-windows"))
        .map(|build| {
            format!(
                "    {} = @{{ version = {}; url = {}; sha256 = {} }}\n",
                ps_quoted(&build.platform),
                ps_quoted(&build.version),
                ps_quoted(&build.url),
                ps_quoted(&build.sha256)
            )
        })
        .collect();
    let server = server.as_str().replace('\'', "%27");
    POWERSHELL_TEMPLATE
        .replace("@@CASES@@", &cases)
        .replace("@@SERVER@@", &server)
}

fn script(text: String) -> Response {
    let mut response = text.into_response();
    let headers = response.headers_mut();
    // Plain text, so that a browser shows the script for reading rather than downloading it.
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// `GET /setup.sh`.
pub(crate) async fn shell(State(state): State<AppState>) -> Result<Response, ApiError> {
    let builds = client_builds(&state).await?;
    Ok(script(shell_script(&state.public_url, &builds)))
}

/// `GET /setup.ps1`.
pub(crate) async fn powershell(State(state): State<AppState>) -> Result<Response, ApiError> {
    let builds = client_builds(&state).await?;
    Ok(script(powershell_script(&state.public_url, &builds)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn builds() -> Vec<ClientBuild> {
        ["x86_64-linux", "x86_64-windows"]
            .into_iter()
            .map(|platform| ClientBuild {
                platform: platform.to_owned(),
                version: "1.2.0".to_owned(),
                url: format!(
                    "https://f.example/tools/files/formulary/1.2.0/{platform}/formulary-{platform}"
                ),
                sha256: "ab".repeat(32),
            })
            .collect()
    }

    #[test]
    fn the_shell_script_names_the_public_url_and_each_platforms_client() {
        let server = url::Url::parse("https://f.example/").expect("url");
        let script = shell_script(&server, &builds());
        assert!(script.starts_with("#!/bin/sh\n"));
        assert!(script.contains("server='https://f.example/'\n"));
        assert!(script.contains("    'x86_64-linux')\n        version='1.2.0'\n        url='https://f.example/tools/files/formulary/1.2.0/x86_64-linux/formulary-x86_64-linux'\n"));
        assert!(script.contains(&format!("sha256='{}'", "ab".repeat(32))));
        assert!(!script.contains("@@"), "every placeholder is filled");
        // The token never goes on a command line.
        assert!(script.contains("| curl -sSL --retry 2 -K - "));
        assert!(script.contains("| \"$bin/formulary\" setup --server \"$server\" --token-stdin"));
        // With no FORMULARY_TOKEN, a terminal offers the browser sign-in first, then a token.
        assert!(script.contains("Sign in with your browser [Y/n], or paste a token"));
        assert!(script.contains("--data-binary @- \"${server}api/v1/device/code\""));
        assert!(script.contains("--data-binary @- \"${server}api/v1/device/token\""));
    }

    #[test]
    fn the_powershell_script_lists_windows_clients_only() {
        let server = url::Url::parse("https://f.example/").expect("url");
        let script = powershell_script(&server, &builds());
        assert!(script.contains("$server = 'https://f.example/'"));
        assert!(script.contains("'x86_64-windows' = @{ version = '1.2.0'; url = 'https://f.example/tools/files/formulary/1.2.0/x86_64-windows/formulary-x86_64-windows'"));
        assert!(!script.contains("x86_64-linux"));
        assert!(!script.contains("@@"));
        assert!(script.contains("[Environment]::SetEnvironmentVariable('Path'"));
        assert!(script.contains("Sign in with your browser [Y/n], or paste a token"));
        assert!(script.contains("-Uri \"${server}api/v1/device/token\""));
    }

    #[test]
    fn quotes_cannot_break_out_of_a_string() {
        assert_eq!(sh_quoted("a'b"), r"'a'\''b'");
        assert_eq!(ps_quoted("a'b"), "'a''b'");
    }

    #[test]
    fn the_shell_script_is_valid_sh() {
        let server = url::Url::parse("https://f.example/").expect("url");
        let script = shell_script(&server, &builds());
        let checked = std::process::Command::new("sh")
            .arg("-n")
            .arg("-c")
            .arg(&script)
            .output();
        if let Ok(output) = checked {
            assert!(
                output.status.success(),
                "{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }
}
