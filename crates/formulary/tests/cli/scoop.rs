//! Scoop manifests for approved tools. Scoop runs only on Windows, so this checks the manifest
//! Scoop would read, and fetches its file the way Scoop does (no credentials but the token in
//! the path; the SHA-256 compared with the manifest's `hash`). The file is ruff's real Windows
//! executable, from its `win_amd64` wheel on PyPI, packed as astral publishes it
//! (`ruff-x86_64-pc-windows-msvc.zip` holding `ruff.exe`).

use std::io::Write;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::formulary_cli::{static_server, Workspace};
use crate::gateway_auth::{gateway_token, ledger_actors, serve, upstreams, PASSWORD};
use crate::tools::wheel_for;

fn windows_archive(version: &str) -> Vec<u8> {
    let wheel = wheel_for("ruff", version, "win_amd64");
    let mut wheel = zip::ZipArchive::new(std::fs::File::open(wheel).expect("wheel")).expect("zip");
    let mut program = Vec::new();
    std::io::copy(
        &mut wheel
            .by_name(&format!("ruff-{version}.data/scripts/ruff.exe"))
            .expect("ruff.exe in the wheel"),
        &mut program,
    )
    .expect("read");
    let mut archive = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    archive
        .start_file("ruff.exe", zip::write::SimpleFileOptions::default())
        .expect("entry");
    archive.write_all(&program).expect("write");
    archive.finish().expect("zip").into_inner()
}

crate::on_both_databases!(async fn scoop_gets_a_manifest_of_the_newest_allowed_version_with_gateway_addresses);
async fn scoop_gets_a_manifest_of_the_newest_allowed_version_with_gateway_addresses() {
    let workspace = Workspace::new();
    let root = workspace.folder.path().to_path_buf();
    workspace.ok(&["org", "add", "RJ1", "--name", "A trust"]);
    workspace.add_user("jane", "Jane Analyst", &["RJ1:requester"], PASSWORD);
    let (_pypi, pypi_url, _cran, cran_url) = upstreams(&root.join("upstreams"));
    let vendor = root.join("vendor");
    std::fs::create_dir_all(vendor.join("0.6.9")).expect("vendor");
    let bytes = windows_archive("0.6.9");
    let filename = "ruff-x86_64-pc-windows-msvc.zip";
    std::fs::write(vendor.join("0.6.9").join(filename), &bytes).expect("archive");
    let sha256 = hex::encode(Sha256::digest(&bytes));
    let (_vendor_server, vendor_url) = static_server(&vendor);
    let manifest = root.join("ruff.toml");
    std::fs::write(
        &manifest,
        format!("name = \"ruff\"\nversion = \"0.6.9\"\n\n[[file]]\nplatform = \"x86_64-windows\"\nurl = \"{vendor_url}0.6.9/{filename}\"\nsha256 = \"{sha256}\"\nsize = {}\nkind = \"archive\"\nbinaries = [\"ruff.exe\"]\n", bytes.len()),
    )
    .expect("manifest");
    workspace.ok(&["tools", "add", &manifest.display().to_string()]);
    let (_server, base) = serve(&workspace, &pypi_url, &cran_url, "token", &root.join("log"));
    let client = reqwest::Client::new();
    let (token, _) = gateway_token(&client, &base, "jane").await;
    let path_token = token.replacen("frm_", "frm-", 1);

    // `scoop install {base}/t/frm-…/o/RJ1/tools/scoop/ruff.json`: no other credential.
    let address = format!("{base}/t/{path_token}/o/RJ1/tools/scoop/ruff.json");
    let answer = client.get(&address).send().await.expect("GET");
    assert_eq!(answer.status(), 200);
    let scoop: Value = answer.json().await.expect("JSON");
    assert_eq!(scoop["version"], "0.6.9");
    assert_eq!(scoop["bin"], serde_json::json!(["ruff.exe"]));
    let file = &scoop["architecture"]["64bit"];
    assert_eq!(file["hash"], sha256.as_str());
    let url = file["url"].as_str().expect("url");
    assert_eq!(
        url,
        format!("{base}/t/{path_token}/o/RJ1/tools/files/ruff/0.6.9/x86_64-windows/{filename}")
    );
    // Scoop downloads it and checks the hash.
    let downloaded = client
        .get(url)
        .send()
        .await
        .expect("GET")
        .bytes()
        .await
        .expect("bytes");
    assert_eq!(hex::encode(Sha256::digest(&downloaded)), sha256);
    let actors = ledger_actors(&workspace, "pkg:generic/ruff", 1).await;
    assert!(
        actors.iter().all(|actor| actor == "user:jane"),
        "{actors:?}"
    );

    // Without a token: 401; an unknown tool: 404; every version prohibited: 403 with the reason.
    let without = client
        .get(format!("{base}/o/RJ1/tools/scoop/ruff.json"))
        .send()
        .await
        .expect("GET");
    assert_eq!(without.status(), 401);
    let unknown = client
        .get(format!("{base}/t/{path_token}/o/RJ1/tools/scoop/git.json"))
        .send()
        .await
        .expect("GET");
    assert_eq!(unknown.status(), 404);
    workspace.ok(&[
        "entry",
        "add",
        "pkg:generic/ruff",
        "--status",
        "prohibited",
        "--reason",
        "Replaced by the trust's own linter",
    ]);
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    let refused = client.get(&address).send().await.expect("GET");
    assert_eq!(refused.status(), 403);
    let body = refused.text().await.expect("body");
    assert!(
        body.contains("Replaced by the trust's own linter"),
        "{body}"
    );
}
