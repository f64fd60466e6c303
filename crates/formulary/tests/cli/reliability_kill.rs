//! kill -9 at awkward moments: during a streamed download, an advisory import and a mirror
//! import. Each time, the rerun completes and the store passes `formulary audit verify` and
//! `formulary cache verify`: nothing half-written is believed.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::formulary_cli::{repo_root, text, Workspace};
use crate::reliability::serve;
use crate::reliability_upstream::{wheels, Fault, FaultyUpstream};

/// Both verifications pass on the workspace's store.
fn store_verifies(workspace: &Workspace) {
    for check in [["audit", "verify"], ["cache", "verify"]] {
        let output = workspace.run(&check);
        assert!(
            output.status.success(),
            "formulary {}: {}{}",
            check.join(" "),
            text(&output.stdout),
            text(&output.stderr)
        );
    }
}

/// Runs `args` and kills it with SIGKILL after `after` (when it is still running); true when it
/// was killed.
fn killed_after(workspace: &Workspace, args: &[&str], after: Duration) -> bool {
    let mut child = workspace
        .command(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starts");
    let started = Instant::now();
    while started.elapsed() < after {
        if child.try_wait().expect("wait").is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    true
}

crate::on_both_databases!(fn kill_9_during_an_advisory_import_leaves_a_store_a_rerun_completes);
fn kill_9_during_an_advisory_import_leaves_a_store_a_rerun_completes() {
    let workspace = Workspace::new();
    workspace.ok(&["org", "list"]);
    let database = repo_root()
        .join("test-data/osv/pypa-advisory-database")
        .display()
        .to_string();
    let args = ["advisories", "import", database.as_str()];
    let mut kills = 0;
    for after in [150, 400, 900, 1600] {
        if killed_after(&workspace, &args, Duration::from_millis(after)) {
            kills += 1;
        }
        store_verifies(&workspace);
    }
    assert!(kills > 0, "the import always finished before the kill");
    let rerun = workspace.ok(&args);
    assert!(rerun.contains("Imported 2661 advisories"), "{rerun}");
    store_verifies(&workspace);
    let decided = workspace.run(&["policy", "check", "pkg:pypi/requests@2.19.1"]);
    assert_eq!(decided.status.code(), Some(1), "{}", text(&decided.stdout));
    assert!(text(&decided.stdout).contains("PYSEC-2018-28"));
}

crate::on_both_databases!(fn kill_9_during_a_mirror_import_leaves_a_store_a_rerun_completes);
fn kill_9_during_a_mirror_import_leaves_a_store_a_rerun_completes() {
    let workspace = Workspace::new();
    let folder = workspace.folder.path().join("wheels");
    for project in ["alpha", "beta", "gamma", "delta"] {
        wheels(
            &folder,
            project,
            &["1.0", "2.0", "3.0"],
            3 * 1024 * 1024,
            Duration::ZERO,
        );
    }
    let folder_text = folder.display().to_string();
    let args = ["mirror", "import", "pypi", folder_text.as_str()];
    let mut kills = 0;
    for after in [100, 300, 700] {
        if killed_after(&workspace, &args, Duration::from_millis(after)) {
            kills += 1;
        }
        store_verifies(&workspace);
    }
    assert!(kills > 0, "the import always finished before the kill");
    let rerun = workspace.ok(&args);
    assert!(rerun.contains("Imported"), "{rerun}");
    store_verifies(&workspace);
    // Everything imported is served, whole.
    let (_server, base, _log) = serve(&workspace, &[]);
    for project in ["alpha", "beta", "gamma", "delta"] {
        let page = fetch(&format!("{base}/pypi/simple/{project}/"));
        for version in ["1.0", "2.0", "3.0"] {
            let name = format!("{project}-{version}-py3-none-any.whl");
            assert!(page.contains(&name), "{page}");
            let served = fetch_digest(&format!("{base}/pypi/files/{project}/{name}"));
            let made = hex::encode(Sha256::digest(
                std::fs::read(folder.join(&name)).expect("wheel"),
            ));
            assert_eq!(served, made, "{name}");
        }
    }
}

/// The body of a GET, with Python's urllib (the test is not async).
fn fetch(url: &str) -> String {
    let output = std::process::Command::new("python3")
        .args(["-c", "import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1]).read().decode())", url])
        .output()
        .expect("python3");
    assert!(output.status.success(), "{url}: {}", text(&output.stderr));
    text(&output.stdout)
}

/// The SHA-256 of a GET's body.
fn fetch_digest(url: &str) -> String {
    let output = std::process::Command::new("python3")
        .args(["-c", "import hashlib, sys, urllib.request; print(hashlib.sha256(urllib.request.urlopen(sys.argv[1]).read()).hexdigest())", url])
        .output()
        .expect("python3");
    assert!(output.status.success(), "{url}: {}", text(&output.stderr));
    text(&output.stdout).trim().to_owned()
}

crate::on_both_databases!(async fn kill_9_during_a_streamed_download_caches_nothing_partial_and_the_next_download_completes);
async fn kill_9_during_a_streamed_download_caches_nothing_partial_and_the_next_download_completes()
{
    let workspace = Workspace::new();
    let folder = workspace.folder.path().join("made");
    // 8 MiB in 32 chunks a tenth of a second apart.
    let files = wheels(
        &folder,
        "bulky",
        &["1.0"],
        8 * 1024 * 1024,
        Duration::from_millis(100),
    );
    let (name, (bytes, _)) = files
        .iter()
        .next()
        .map(|(name, file)| (name.clone(), file.clone()))
        .expect("wheel");
    let upstream = FaultyUpstream::start(BTreeMap::from([("bulky".to_owned(), files)]));
    let upstreams = format!("[\"{}\"]", upstream.index());
    let settings = [
        ("FORMULARY_PYPI_UPSTREAMS", upstreams.as_str()),
        ("FORMULARY_UPSTREAM_TIMEOUT_SECONDS", "5"),
    ];
    let (mut server, base, _log) = tokio::task::block_in_place(|| serve(&workspace, &settings));
    let client = reqwest::Client::new();
    let download = |base: String| {
        let (client, name) = (client.clone(), name.clone());
        async move {
            let _ = client
                .get(format!("{base}/pypi/simple/bulky/"))
                .send()
                .await
                .expect("page");
            client
                .get(format!("{base}/pypi/files/bulky/{name}"))
                .send()
                .await
                .expect("download starts")
        }
    };
    let mut response = download(base).await;
    assert_eq!(response.status(), 200);
    let mut received = 0;
    while received < 512 * 1024 {
        received += response
            .chunk()
            .await
            .expect("chunk")
            .expect("more bytes")
            .len();
    }
    // Mid-stream: the server dies.
    server.0.kill().expect("SIGKILL");
    let _ = server.0.wait();
    assert!(
        tokio::time::timeout(Duration::from_secs(10), async {
            while let Ok(Some(_)) = response.chunk().await {}
        })
        .await
        .is_ok(),
        "the client sees the stream end"
    );
    tokio::task::block_in_place(|| store_verifies(&workspace));

    // Restarted, the download completes from upstream, verified; then it is cached.
    let (_server, base, _log) = tokio::task::block_in_place(|| serve(&workspace, &settings));
    let body = download(base.clone())
        .await
        .bytes()
        .await
        .expect("whole file");
    assert_eq!(Sha256::digest(&body), Sha256::digest(&bytes));
    upstream.set(Fault::Hang);
    let cached = download(base).await.bytes().await.expect("cached file");
    assert_eq!(Sha256::digest(&cached), Sha256::digest(&bytes));
    upstream.set(Fault::None);
    tokio::task::block_in_place(|| store_verifies(&workspace));
}
