//! The database is not on the download path: with PostgreSQL stopped under a running server
//! whose upstream still answers, a revalidation that cannot store what it fetched serves the
//! cached copy, cached files and installs go on, and the upstream status answers from memory.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::cluster::Cluster;
use crate::formulary_cli::{text, Workspace};
use crate::gateway_pypi::{pip, venv};
use crate::reliability::serve;
use crate::reliability_upstream::{wheels, FaultyUpstream};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_database_stopped_a_revalidation_that_cannot_write_serves_the_cached_copy() {
    let Some(cluster) = tokio::task::block_in_place(Cluster::start) else {
        return;
    };
    let workspace = Workspace::on_database(&cluster.url());
    let folder = workspace.folder.path().join("made");
    let files = wheels(&folder, "calm", &["1.0", "1.5"], 1000, Duration::ZERO);
    let upstream = FaultyUpstream::start(BTreeMap::from([("calm".to_owned(), files)]));
    let upstreams = format!("[\"{}\"]", upstream.index());
    let (_server, base, log) = tokio::task::block_in_place(|| {
        serve(
            &workspace,
            &[
                ("FORMULARY_PYPI_UPSTREAMS", upstreams.as_str()),
                ("FORMULARY_INDEX_REVALIDATE_SECONDS", "0"),
                ("FORMULARY_UPSTREAM_TIMEOUT_SECONDS", "5"),
            ],
        )
    });
    let index = format!("{base}/pypi/simple/");
    let first = venv(workspace.folder.path(), "first");
    let output = tokio::task::block_in_place(|| pip(&first, &index, "calm"));
    assert!(output.status.success(), "{}", text(&output.stderr));

    tokio::task::block_in_place(|| cluster.stop());
    let client = reqwest::Client::new();
    let started = Instant::now();
    let response = client
        .get(format!("{index}calm/"))
        .header("Accept", "application/vnd.pypi.simple.v1+json")
        .send()
        .await
        .expect("answer");
    let waited = started.elapsed();
    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key("x-formulary-stale"));
    let page: serde_json::Value = response.json().await.expect("JSON");
    assert_eq!(page["files"].as_array().map(Vec::len), Some(2), "{page}");
    assert!(waited < Duration::from_secs(2), "{waited:?}");
    eprintln!("database stopped, upstream answering: cached page after {waited:?}");
    let environment = venv(workspace.folder.path(), "database-down");
    let output = tokio::task::block_in_place(|| pip(&environment, &index, "calm==1.5"));
    assert!(output.status.success(), "{}", text(&output.stderr));
    for path in ["/api/v1/upstreams", "/status", "/livez"] {
        let status = client
            .get(format!("{base}{path}"))
            .send()
            .await
            .expect("answer")
            .status();
        assert_eq!(status, 200, "{path} answers from memory");
    }
    let logged = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        logged.contains("could not store a new upstream document"),
        "{logged}"
    );
    tokio::task::block_in_place(|| cluster.resume());
}
