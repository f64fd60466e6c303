//! `formulary setup --device`: sign in with the browser instead of pasting a token (device
//! sign-in, RFC 8628 style). Setup asks the server for a code, prints the page and the short
//! code, and polls until the person approves it while signed in (OIDC or a local account); the
//! server then gives one token for package clients in their name.

use std::time::Duration;

use anyhow::{bail, Context as _};

use super::super::client;

/// Runs the device sign-in against `server`; the token for package clients.
pub(crate) async fn sign_in(server: &url::Url) -> anyhow::Result<String> {
    let host = client::this_computer();
    let http = client::http_client()?;
    let (status, body) = client::send_json(
        http.post(server.join("api/v1/device/code")?)
            .json(&serde_json::json!({ "client_name": format!("formulary setup on {host}") })),
        server.as_str(),
    )
    .await?;
    if !status.is_success() {
        bail!(
            "the server did not start a device sign-in ({status}): {} {}",
            body["title"].as_str().unwrap_or(""),
            body["detail"].as_str().unwrap_or("")
        );
    }
    let device_code = body["device_code"]
        .as_str()
        .context("the server's answer had no device code")?
        .to_owned();
    let mut interval = body["interval"].as_u64().unwrap_or(5).max(1);
    let expires_in = body["expires_in"].as_u64().unwrap_or(600);
    eprintln!(
        "To sign in, open {} in your browser, sign in, and approve the code {} (it expires in {} minutes).",
        body["verification_uri_complete"].as_str().unwrap_or(""),
        body["user_code"].as_str().unwrap_or(""),
        expires_in / 60
    );
    eprintln!("Waiting for approval…");
    let deadline = std::time::Instant::now() + Duration::from_secs(expires_in + interval);
    loop {
        tokio::time::sleep(Duration::from_secs(interval)).await;
        let (status, body) = client::send_json(
            http.post(server.join("api/v1/device/token")?)
                .json(&serde_json::json!({ "device_code": device_code })),
            server.as_str(),
        )
        .await?;
        if status.is_success() {
            eprintln!(
                "Approved by {}: a token for package clients was issued; it lasts 90 days.",
                body["username"].as_str().unwrap_or("you")
            );
            return body["token"]
                .as_str()
                .map(str::to_owned)
                .context("the server's answer had no token");
        }
        match body["error"].as_str() {
            Some("authorization_pending") => {}
            Some("slow_down") => interval += 5,
            _ => bail!(
                "the device sign-in ended ({status}): {}",
                body["detail"].as_str().unwrap_or("no reason given")
            ),
        }
        if std::time::Instant::now() > deadline {
            bail!(
                "nobody approved the code within {} minutes; run `formulary setup --device` again",
                expires_in / 60
            );
        }
    }
}
