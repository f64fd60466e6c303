//! `formulary advisories sync` against a real HTTP server on loopback serving an OSV export, on
//! SQLite and on PostgreSQL.

use std::io::Write;

use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;

use crate::formulary_cli::{repo_root, text, Workspace};
use crate::on_both_databases;

/// Builds an `all.zip` like OSV's from the R advisory database.
fn r_database_zip() -> Vec<u8> {
    let mut cursor = std::io::Cursor::new(Vec::new());
    {
        let mut archive = zip::ZipWriter::new(&mut cursor);
        let folder = repo_root().join("test-data/osv/r-advisory-database/vulns");
        for package in std::fs::read_dir(&folder).expect("folder").flatten() {
            for record in std::fs::read_dir(package.path())
                .expect("package")
                .flatten()
            {
                let name = record
                    .file_name()
                    .to_string_lossy()
                    .replace(".yaml", ".json");
                let yaml: serde_json::Value =
                    serde_yaml::from_slice(&std::fs::read(record.path()).expect("read"))
                        .expect("yaml");
                archive
                    .start_file(name, zip::write::SimpleFileOptions::default())
                    .expect("start");
                archive
                    .write_all(serde_json::to_string(&yaml).expect("json").as_bytes())
                    .expect("write");
            }
        }
        archive.finish().expect("finish");
    }
    cursor.into_inner()
}

async fn serve_exports() -> String {
    let zip = r_database_zip();
    let app = Router::new()
        .route(
            "/CRAN/all.zip",
            get(move || std::future::ready(zip.clone())),
        )
        .route(
            "/broken/all.zip",
            get(|| std::future::ready(b"PK\x03\x04 this is not really a zip".to_vec())),
        )
        .route(
            "/gone/all.zip",
            get(|| std::future::ready(StatusCode::NOT_FOUND)),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{address}")
}

on_both_databases!(async fn sync_imports_an_export_once_and_reports_upstream_failures);
async fn sync_imports_an_export_once_and_reports_upstream_failures() {
    let base = serve_exports().await;
    let workspace = Workspace::new();
    let run = |args: Vec<String>| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        workspace.run(&args)
    };
    let url = format!("{base}/CRAN/all.zip");
    let first = tokio::task::block_in_place(|| {
        run(vec![
            "advisories".into(),
            "sync".into(),
            "--url".into(),
            url.clone(),
        ])
    });
    assert!(first.status.success(), "{}", text(&first.stderr));
    assert!(
        text(&first.stdout).contains("new, 0 updated, 0 unchanged"),
        "{}",
        text(&first.stdout)
    );
    let second = tokio::task::block_in_place(|| {
        run(vec![
            "advisories".into(),
            "sync".into(),
            "--url".into(),
            url.clone(),
        ])
    });
    assert!(
        text(&second.stdout).contains("0 new, 0 updated"),
        "syncing again changes nothing: {}",
        text(&second.stdout)
    );

    let gone = tokio::task::block_in_place(|| {
        run(vec![
            "advisories".into(),
            "sync".into(),
            "--url".into(),
            format!("{base}/gone/all.zip"),
        ])
    });
    assert_eq!(gone.status.code(), Some(2));
    assert!(
        text(&gone.stderr).contains("answered 404"),
        "{}",
        text(&gone.stderr)
    );
    let broken = tokio::task::block_in_place(|| {
        run(vec![
            "advisories".into(),
            "sync".into(),
            "--url".into(),
            format!("{base}/broken/all.zip"),
        ])
    });
    assert_eq!(broken.status.code(), Some(2));
    assert!(
        text(&broken.stderr).contains("not a readable zip archive"),
        "{}",
        text(&broken.stderr)
    );

    let check = tokio::task::block_in_place(|| {
        workspace.run(&["policy", "check", "pkg:cran/readxl@1.2.0"])
    });
    assert_eq!(check.status.code(), Some(1), "{}", text(&check.stdout));
}
