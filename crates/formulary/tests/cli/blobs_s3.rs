//! Blobs in an S3-compatible bucket (moto's server, started by the test), end to end: the real
//! pip installs through `formulary serve`, the files land in the bucket, a second replica with an
//! empty disk on the same PostgreSQL database serves them with the upstream gone (Range,
//! If-Range and 304 included); a bucket that is down or hangs gives a clear 503, not a hang; and
//! `formulary blobs migrate` moves a folder to a bucket and back, resuming after kill -9.

use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use sha2::{Digest, Sha256};

use crate::databases::{self, PostgresDatabase};
use crate::formulary_cli::{text, Workspace};
use crate::gateway_pypi::{pip, static_upstream, venv, wheels};
use crate::moto::Moto;

const BUCKET: &str = "formulary-cache";

/// The settings of a PyPI gateway on `upstream` with blobs in the bucket.
fn settings(moto: &Moto, prefix: &str, upstream: &str) -> Vec<(&'static str, String)> {
    let mut settings = moto.settings(BUCKET, prefix);
    settings.extend([
        ("FORMULARY_PYPI_UPSTREAMS", format!("[\"{upstream}\"]")),
        ("FORMULARY_INDEX_REVALIDATE_SECONDS", "0".to_owned()),
        ("FORMULARY_UPSTREAM_TIMEOUT_SECONDS", "5".to_owned()),
    ]);
    settings
}

/// Files under a folder (none when it does not exist).
fn files_under(folder: &Path) -> usize {
    std::fs::read_dir(folder)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| {
            if entry.path().is_dir() {
                files_under(&entry.path())
            } else {
                1
            }
        })
        .sum()
}

/// The bytes of a test wheel, as the upstream has it.
fn wheel_bytes(filename: &str) -> Vec<u8> {
    std::fs::read(wheels().join(filename)).expect("the test wheel")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_replica_with_an_empty_disk_serves_cached_files_from_the_bucket() {
    let Some(admin_url) = databases::admin_url() else {
        return;
    };
    let database = PostgresDatabase::create(&admin_url);
    let moto = Moto::start(BUCKET);
    let first = Workspace::on_database(&database.url);
    let (upstream, upstream_url) = static_upstream(&first.folder.path().join("upstream"));
    let settings = settings(&moto, "replicas", &upstream_url);
    let (server, base) = first.serve(&settings);

    let installed = venv(first.folder.path(), "first");
    let output = pip(&installed, &format!("{base}/pypi/simple/"), "requests");
    assert!(output.status.success(), "{}", text(&output.stderr));
    let keys = moto.keys(BUCKET, "replicas/sha256/");
    assert!(
        keys.len() >= 5,
        "requests and its four dependencies are in the bucket: {keys:?}"
    );
    let digest = hex::encode(Sha256::digest(wheel_bytes("idna-3.7-py3-none-any.whl")));
    assert!(
        keys.iter().any(|key| key.ends_with(&digest)),
        "idna 3.7 is stored under its digest: {keys:?}"
    );
    assert!(moto.keys(BUCKET, "replicas/incoming/").is_empty());
    assert_eq!(
        files_under(&first.folder.path().join("data/blobs")),
        0,
        "nothing is kept on the local disk"
    );
    // Readiness is polled, as a load balancer does: each check has a 100 ms budget, which a
    // loaded test machine can miss once.
    let mut readiness = serde_json::Value::Null;
    for _ in 0..20 {
        let ready = reqwest::get(format!("{base}/readyz"))
            .await
            .expect("readyz");
        let status = ready.status();
        readiness = ready.json().await.expect("json");
        if status == StatusCode::OK {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert_ne!(readiness["status"], "unavailable", "{readiness}");
    assert!(
        readiness["blobs"]["detail"]
            .as_str()
            .is_some_and(|detail| detail.contains("s3://formulary-cache/replicas")),
        "{readiness}"
    );
    drop(server);
    drop(upstream);

    // A second replica: same database and bucket, an empty data folder, no upstream.
    let second = Workspace::on_database(&database.url);
    let (_server, base) = second.serve(&settings);
    let offline = venv(second.folder.path(), "second");
    let output = pip(&offline, &format!("{base}/pypi/simple/"), "requests");
    assert!(
        output.status.success(),
        "the cached files install from the bucket: {}",
        text(&output.stderr)
    );
    assert_eq!(files_under(&second.folder.path().join("data/blobs")), 0);

    // Range, If-Range and If-None-Match work on files read from the bucket.
    let name = "requests-2.32.3-py3-none-any.whl";
    let bytes = wheel_bytes(name);
    let url = format!("{base}/pypi/files/requests/{name}");
    let client = reqwest::Client::new();
    let whole = client.get(&url).send().await.expect("GET");
    assert_eq!(whole.status(), StatusCode::OK);
    let etag = whole.headers()["etag"].to_str().expect("etag").to_owned();
    assert_eq!(whole.bytes().await.expect("body"), bytes);
    let part = client
        .get(&url)
        .header("Range", "bytes=100-1099")
        .send()
        .await
        .expect("range");
    assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        part.headers()["content-range"],
        format!("bytes 100-1099/{}", bytes.len()).as_str()
    );
    assert_eq!(part.bytes().await.expect("part"), bytes[100..1100]);
    let tail = client
        .get(&url)
        .header("Range", "bytes=-10")
        .header("If-Range", &etag)
        .send()
        .await
        .expect("tail");
    assert_eq!(tail.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(tail.bytes().await.expect("tail"), bytes[bytes.len() - 10..]);
    let changed = client
        .get(&url)
        .header("Range", "bytes=0-9")
        .header("If-Range", "\"sha256-other\"")
        .send()
        .await
        .expect("if-range");
    assert_eq!(
        changed.status(),
        StatusCode::OK,
        "a stale If-Range gets it all"
    );
    assert_eq!(changed.bytes().await.expect("body").len(), bytes.len());
    let unchanged = client
        .get(&url)
        .header("If-None-Match", &etag)
        .send()
        .await
        .expect("304");
    assert_eq!(unchanged.status(), StatusCode::NOT_MODIFIED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bucket_that_is_down_or_hangs_gives_a_clear_503_not_a_hang() {
    let mut moto = Moto::start(BUCKET);
    let workspace = Workspace::new();
    let (_upstream, upstream_url) = static_upstream(&workspace.folder.path().join("upstream"));
    let (_server, base) = workspace.serve(&settings(&moto, "", &upstream_url));
    let client = reqwest::Client::new();
    let cached = format!("{base}/pypi/files/idna/idna-3.7-py3-none-any.whl");
    let uncached = format!("{base}/pypi/files/six/six-1.16.0-py2.py3-none-any.whl");
    // The index pages name the files; the first request caches idna in the bucket.
    for project in ["idna", "six"] {
        let page = client
            .get(format!("{base}/pypi/simple/{project}/"))
            .send()
            .await
            .expect("index");
        assert_eq!(page.status(), StatusCode::OK);
    }
    let first = client.get(&cached).send().await.expect("GET");
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(
        first.bytes().await.expect("body"),
        wheel_bytes("idna-3.7-py3-none-any.whl")
    );
    assert_eq!(moto.keys(BUCKET, "sha256/").len(), 1);

    moto.stop();
    for url in [&cached, &uncached] {
        let started = Instant::now();
        let answer = client.get(url).send().await.expect("an answer");
        let took = started.elapsed();
        assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE, "{url}");
        let body = answer.text().await.expect("body");
        assert!(
            body.contains("Package file storage unavailable")
                && body.contains("did not answer or refused")
                && !body.contains("formulary-test-secret"),
            "{body}"
        );
        assert!(took < Duration::from_secs(5), "{url} took {took:?}");
    }
    let ready = client
        .get(format!("{base}/readyz"))
        .send()
        .await
        .expect("readyz");
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let readiness: serde_json::Value = ready.json().await.expect("json");
    assert_eq!(readiness["blobs"]["status"], "failed", "{readiness}");

    // The bucket's address now accepts connections and never answers.
    let listener = std::net::TcpListener::bind(("127.0.0.1", moto.port)).expect("rebind");
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    let started = Instant::now();
    let answer = client.get(&cached).send().await.expect("an answer");
    let took = started.elapsed();
    assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body = answer.text().await.expect("body");
    assert!(body.contains("did not answer within 10 s"), "{body}");
    assert!(took < Duration::from_secs(15), "{took:?}");
}

/// Writes `count` blobs into a folder in the blob store's layout; returns (digest, size) of each.
fn fill_folder(folder: &Path, count: usize) -> Vec<(String, usize)> {
    (0..count)
        .map(|index| {
            let size = if index % 25 == 0 {
                3 * 1024 * 1024 + index
            } else {
                100_000 + index * 97
            };
            let bytes: Vec<u8> = (0..size)
                .map(|at| ((at * 31 + index * 7) % 253) as u8)
                .collect();
            let digest = hex::encode(Sha256::digest(&bytes));
            let path = folder.join("sha256").join(&digest[..2]).join(&digest[2..4]);
            std::fs::create_dir_all(&path).expect("folder");
            std::fs::write(path.join(&digest), &bytes).expect("blob");
            (digest, size)
        })
        .collect()
}

#[test]
fn blobs_migrate_to_a_bucket_resumes_after_kill_and_comes_back_whole() {
    let moto = Moto::start(BUCKET);
    let workspace = Workspace::new();
    let folder = workspace.folder.path().join("data/blobs");
    let blobs = fill_folder(&folder, 200);
    let s3 = moto.settings(BUCKET, "migrated");
    let with_s3 = |args: &[&str]| {
        let mut command = workspace.command(args);
        command.envs(
            s3.iter()
                .filter(|(name, _)| *name != "FORMULARY_BLOB_STORE")
                .map(|(name, value)| (*name, value.as_str())),
        );
        command
    };
    let target = format!("s3://{BUCKET}/migrated");

    // Killed half-way (kill -9): what was copied is whole, the rest is missing.
    let mut running = with_s3(&["blobs", "migrate", "--to", &target, "--jobs", "2"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("migrate starts");
    let deadline = Instant::now() + Duration::from_secs(60);
    while moto.keys(BUCKET, "migrated/sha256/").len() < 40 {
        assert!(Instant::now() < deadline, "the migration made no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    running.kill().expect("kill -9");
    let _ = running.wait();
    let copied = moto.keys(BUCKET, "migrated/sha256/").len();
    assert!(
        copied < blobs.len(),
        "killed half-way: {copied} of {}",
        blobs.len()
    );

    // Resumed: the rest is copied, what was there skipped, and every digest checked.
    let output = with_s3(&["blobs", "migrate", "--to", &target])
        .output()
        .expect("migrate runs");
    let said = text(&output.stdout);
    assert!(output.status.success(), "{said}{}", text(&output.stderr));
    assert!(
        said.contains(&format!("{copied} already there"))
            && said.contains(&format!("holds every blob of {}", folder.display())),
        "{said}"
    );
    let listed = with_s3(&["blobs", "list", "--store", &target])
        .output()
        .expect("list runs");
    let mut expected: Vec<String> = blobs
        .iter()
        .map(|(digest, size)| format!("sha256:{digest} {size}"))
        .collect();
    expected.sort();
    assert_eq!(
        text(&listed.stdout).lines().collect::<Vec<_>>(),
        expected,
        "{}",
        text(&listed.stderr)
    );
    // The kill may have left uploads under incoming/ (swept after an hour by the server and by
    // the next migration); none of them is at an address.
    assert_eq!(moto.keys(BUCKET, "migrated/sha256/").len(), blobs.len());
    assert!(moto.keys(BUCKET, "migrated/incoming/").len() <= 2);
    let again = with_s3(&["blobs", "migrate", "--to", &target])
        .output()
        .expect("migrate runs");
    assert!(
        text(&again.stdout).contains("Copied 0 blob(s) (0 bytes)"),
        "{}",
        text(&again.stdout)
    );

    // And back to a new folder: byte for byte the same files.
    let back = workspace.folder.path().join("back");
    let output = with_s3(&[
        "blobs",
        "migrate",
        "--from",
        &target,
        "--to",
        &back.display().to_string(),
    ])
    .output()
    .expect("migrate back");
    assert!(output.status.success(), "{}", text(&output.stdout));
    for (digest, _) in &blobs {
        let relative = Path::new("sha256")
            .join(&digest[..2])
            .join(&digest[2..4])
            .join(digest);
        assert_eq!(
            std::fs::read(back.join(&relative)).expect("copied back"),
            std::fs::read(folder.join(&relative)).expect("original")
        );
    }
    let stat = with_s3(&["blobs", "stat", &blobs[0].0, "--store", &target])
        .output()
        .expect("stat");
    assert!(stat.status.success());
    assert!(text(&stat.stdout).contains(&format!("{} bytes", blobs[0].1)));

    // Each finished run is in the audit log (the killed first one may not be).
    let records = format!(
        "sqlite://{}",
        workspace.folder.path().join("data/formulary.db").display()
    );
    let audited: i64 = tokio::runtime::Runtime::new()
        .expect("runtime")
        .block_on(async {
            use sqlx::Connection;
            sqlx::any::install_default_drivers();
            let mut connection = sqlx::AnyConnection::connect(&records)
                .await
                .expect("the workspace's records");
            sqlx::query_scalar("SELECT COUNT(*) FROM audit_log WHERE action = 'blobs.migrate'")
                .fetch_one(&mut connection)
                .await
                .expect("count")
        });
    assert!(audited >= 3, "{audited} migrations audited");
}

#[test]
fn cache_verify_quarantines_a_damaged_blob_in_the_bucket() {
    let moto = Moto::start(BUCKET);
    let workspace = Workspace::new();
    let settings = moto.settings(BUCKET, "v");
    let run = |args: &[&str]| {
        workspace
            .command(args)
            .envs(settings.iter().map(|(name, value)| (*name, value.as_str())))
            .output()
            .expect("formulary runs")
    };
    // Damage done around the application: other bytes under an address.
    let claimed = hex::encode(Sha256::digest(b"the file that was cached"));
    let key = format!(
        "/{BUCKET}/v/sha256/{}/{}/{claimed}",
        &claimed[..2],
        &claimed[2..4]
    );
    let (status, body) = moto.raw("PUT", &key, b"bit rot");
    assert_eq!(status, 200, "{body}");
    // A good blob beside it, copied in by `blobs migrate`.
    let folder = workspace.folder.path().join("good");
    let good = fill_folder(&folder, 1);
    let output = run(&[
        "blobs",
        "migrate",
        "--from",
        &folder.display().to_string(),
        "--to",
        &format!("s3://{BUCKET}/v"),
    ]);
    assert!(output.status.success(), "{}", text(&output.stdout));

    let output = run(&["cache", "verify"]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    let said = text(&output.stdout);
    assert!(
        said.contains("Verified 2 blobs")
            && said.contains(&format!("quarantined sha256:{claimed}"))
            && said.contains("moved to quarantine/"),
        "{said}"
    );
    assert_eq!(moto.keys(BUCKET, "v/quarantine/").len(), 1);
    let keys = moto.keys(BUCKET, "v/sha256/");
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(keys[0].ends_with(&good[0].0));
    let output = run(&["cache", "verify"]);
    assert!(output.status.success(), "{}", text(&output.stdout));
}
