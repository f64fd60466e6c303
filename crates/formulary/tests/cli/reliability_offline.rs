//! `formulary serve` starts with the database down and serves what it holds, from the sealed
//! local copy it keeps next to its data: real pip, uv and R install cached packages with the
//! upstreams hung too, the policy the copy records is enforced, everything else answers 503,
//! and the server takes the database back without a restart (the download ledger replayed
//! once). A tampered copy is refused. Also: a CRAN index build against a hung upstream waits
//! at most the patience for archived versions' DESCRIPTIONs.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use sqlx::Connection;

use crate::cluster::Cluster;
use crate::formulary_cli::{text, Running, Workspace};
use crate::gateway_cran::{r, repository_folder};
use crate::gateway_pypi::{pip, uv, venv};
use crate::reliability::serve;
use crate::reliability_upstream::{wheels, Fault, FaultyUpstream};

/// Stops a server with SIGTERM (it writes its local copy and ledger) and waits for it.
pub(crate) fn stop_gracefully(mut server: Running) {
    let status = Command::new("kill")
        .args(["-TERM", &server.0.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let _ = server.0.wait();
}

/// GETs a URL: status, JSON body (or null) and how long it took.
async fn timed(client: &reqwest::Client, url: &str) -> (u16, Value, Duration) {
    let started = Instant::now();
    let response = client.get(url).send().await.expect("answer");
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body, started.elapsed())
}

pub(crate) async fn ledger_rows(url: &str) -> i64 {
    let mut connection = sqlx::AnyConnection::connect(url).await.expect("connects");
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM downloads")
        .fetch_one(&mut connection)
        .await
        .expect("count");
    connection.close().await.expect("closes");
    count
}

pub(crate) fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// `/livez` and `/readyz` five times each: all within 100 ms; readiness 503 naming the local
/// copy. Returns the readiness answer.
async fn health_while_offline(client: &reqwest::Client, base: &str) -> Value {
    // One request first: the connection is made and the freshly started process warms up.
    let (status, _, took) = timed(client, &format!("{base}/livez")).await;
    assert_eq!(status, 200);
    eprintln!("first /livez after the start: {took:?}");
    let (mut slowest_live, mut slowest_ready) = (Duration::ZERO, Duration::ZERO);
    let mut ready = Value::Null;
    for _ in 0..5 {
        let (status, _, took) = timed(client, &format!("{base}/livez")).await;
        assert_eq!(status, 200);
        slowest_live = slowest_live.max(took);
        let (status, body, took) = timed(client, &format!("{base}/readyz")).await;
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["database"]["status"], "failed", "{body}");
        let detail = body["database"]["detail"].as_str().unwrap_or_default();
        assert!(
            detail.contains("serves only what it holds")
                && detail.contains("local copy written at"),
            "{body}"
        );
        slowest_ready = slowest_ready.max(took);
        ready = body;
    }
    eprintln!("database down at start: slowest /livez {slowest_live:?}, /readyz {slowest_ready:?}");
    assert!(
        slowest_live < Duration::from_millis(100),
        "{slowest_live:?}"
    );
    assert!(
        slowest_ready < Duration::from_millis(100),
        "{slowest_ready:?}"
    );
    ready
}

/// What needs the database answers 503 problem+json at once, never 500.
async fn changes_wait_for_the_database(client: &reqwest::Client, base: &str) {
    let started = Instant::now();
    let answer = client
        .post(format!("{base}/api/v1/session/token"))
        .json(&serde_json::json!({ "username": "ana", "password": "whatever-it-is" }))
        .send()
        .await
        .expect("answer");
    assert_eq!(answer.status(), 503);
    assert_eq!(answer.headers()["content-type"], "application/problem+json");
    let problem: Value = answer.json().await.expect("problem");
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|detail| detail.contains("only serves what it already holds")),
        "{problem}"
    );
    let page = client
        .get(format!("{base}/sign-in"))
        .header("Accept", "text/html")
        .send()
        .await
        .expect("answer");
    assert_eq!(page.status(), 503, "a page that needs the database");
    assert!(page
        .text()
        .await
        .expect("page")
        .contains("Database unavailable"));
    // Something the local copy does not hold.
    let (status, body, _) = timed(client, &format!("{base}/pypi/simple/never-cached/")).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["title"], "Database unavailable", "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

/// How many download lines wait in the journal, from `/readyz`.
pub(crate) async fn journal_lines(client: &reqwest::Client, base: &str) -> i64 {
    let (_, body, _) = timed(client, &format!("{base}/readyz")).await;
    body["ledger"]["detail"]
        .as_str()
        .and_then(|detail| detail.split_whitespace().next())
        .and_then(|first| first.parse().ok())
        .unwrap_or(0)
}

/// Waits until `/readyz` is 200 with the journal written; returns how long that took.
pub(crate) async fn wait_until_back(client: &reqwest::Client, base: &str, log: &Path) -> Duration {
    let started = Instant::now();
    loop {
        let (status, body, _) = timed(client, &format!("{base}/readyz")).await;
        if status == 200 && body["ledger"]["status"] == "ok" {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "not back a minute after the database returned: {body}\n{}",
            read(log)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_postgresql_down_at_start_the_server_serves_what_it_holds_then_takes_it_back() {
    let Some(cluster) = tokio::task::block_in_place(Cluster::start) else {
        return;
    };
    sqlx::any::install_default_drivers();
    let url = cluster.url();
    let workspace = Workspace::on_database(&url);
    let made = workspace.folder.path().join("made");
    let files = wheels(&made, "calm", &["1.0", "1.5"], 1000, Duration::ZERO);
    let pypi = FaultyUpstream::start(BTreeMap::from([("calm".to_owned(), files)]));
    let root = workspace.folder.path().join("cran-upstream");
    tokio::task::block_in_place(|| repository_folder(&root));
    let cran = FaultyUpstream::serving(&root);
    let owned = [
        (
            "FORMULARY_PYPI_UPSTREAMS",
            format!("[\"{}\"]", pypi.index()),
        ),
        (
            "FORMULARY_CRAN_UPSTREAMS",
            format!("[\"{}/\"]", cran.origin()),
        ),
        ("FORMULARY_DATABASE_START_TIMEOUT_SECONDS", "3".to_owned()),
    ];
    let settings: Vec<(&str, &str)> = owned.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let client = reqwest::Client::new();

    // Online: pip, uv and R cache through the gateway.
    let (server, base, _log) = tokio::task::block_in_place(|| serve(&workspace, &settings));
    let index = format!("{base}/pypi/simple/");
    let home = workspace.folder.path();
    let online = venv(home, "online");
    for requirement in ["calm==1.5", "calm==1.0"] {
        let output = tokio::task::block_in_place(|| pip(&online, &index, requirement));
        assert!(output.status.success(), "{}", text(&output.stderr));
    }
    let install_cellar = |base: &str, library: &str| {
        let library = home.join(library);
        std::fs::create_dir_all(&library).expect("library");
        let started = Instant::now();
        let output = r(&format!(
            "install.packages('cellar', repos = '{base}/cran', lib = '{lib}', quiet = TRUE); cat(as.character(packageVersion('cellar', lib.loc = '{lib}')))",
            lib = library.display()
        ));
        (output, started.elapsed())
    };
    let (output, _) = tokio::task::block_in_place(|| install_cellar(&base, "online-library"));
    assert_eq!(text(&output.stdout), "1.0.0", "{}", text(&output.stderr));
    // A prohibition recorded while it runs reaches the local copy too.
    workspace.ok(&[
        "entry",
        "add",
        "pkg:pypi/calm",
        "--range",
        "==1.5",
        "--status",
        "prohibited",
        "--reason",
        "withdrawn after a security review",
    ]);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let page: Value = client
            .get(format!("{index}calm/"))
            .header("Accept", "application/vnd.pypi.simple.v1+json")
            .send()
            .await
            .expect("page")
            .json()
            .await
            .expect("JSON");
        let yanked = page["files"].as_array().is_some_and(|files| {
            files.iter().any(|file| {
                file["filename"]
                    .as_str()
                    .is_some_and(|name| name.contains("1.5"))
                    && file["yanked"].is_string()
            })
        });
        if yanked {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the prohibition did not reach the server: {page}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::task::block_in_place(|| stop_gracefully(server));
    let rows_before = ledger_rows(&url).await;

    // The database and both upstreams go away; the server starts anyway.
    tokio::task::block_in_place(|| cluster.stop());
    pypi.set(Fault::Hang);
    cran.set(Fault::Hang);
    let started = Instant::now();
    let (_server, base, log) = tokio::task::block_in_place(|| serve(&workspace, &settings));
    eprintln!(
        "listening {:?} after the start with the database down",
        started.elapsed()
    );
    let index = format!("{base}/pypi/simple/");
    health_while_offline(&client, &base).await;
    let logged = read(&log);
    assert_eq!(
        logged
            .matches("the database cannot be reached: serving only what this server holds")
            .count(),
        1,
        "said once: {logged}"
    );

    let offline = venv(home, "offline");
    let started = Instant::now();
    let output = tokio::task::block_in_place(|| pip(&offline, &index, "calm"));
    assert!(
        output.status.success(),
        "{}\n{}",
        text(&output.stderr),
        read(&log)
    );
    assert!(
        text(&output.stdout).contains("calm-1.0"),
        "the prohibited 1.5 is skipped: {}",
        text(&output.stdout)
    );
    eprintln!(
        "pip install calm with the database and the upstream down: {:?}",
        started.elapsed()
    );
    let output = tokio::task::block_in_place(|| pip(&offline, &index, "calm==1.5"));
    assert!(
        !output.status.success(),
        "the prohibition holds without the database"
    );
    assert!(
        text(&output.stderr).contains("Blocked by Formulary"),
        "{}",
        text(&output.stderr)
    );
    let uv_environment = venv(home, "offline-uv");
    let started = Instant::now();
    let output = tokio::task::block_in_place(|| uv(&uv_environment, &index, "calm==1.0"));
    assert!(
        output.status.success(),
        "{}\n{}",
        text(&output.stderr),
        read(&log)
    );
    eprintln!("uv pip install calm==1.0 offline: {:?}", started.elapsed());
    let (output, took) = tokio::task::block_in_place(|| install_cellar(&base, "offline-library"));
    assert_eq!(
        text(&output.stdout),
        "1.0.0",
        "{}\n{}",
        text(&output.stderr),
        read(&log)
    );
    eprintln!("R install.packages('cellar') offline: {took:?}");
    assert!(took < Duration::from_secs(60), "{took:?}");
    changes_wait_for_the_database(&client, &base).await;

    // Each download waits in the journal.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut waiting = journal_lines(&client, &base).await;
    while waiting < 3 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        waiting = journal_lines(&client, &base).await;
    }
    assert!(
        waiting >= 3,
        "pip, uv and R downloads are journalled: {waiting}"
    );

    // The database returns: the server takes it back without a restart.
    tokio::task::block_in_place(|| cluster.resume());
    let took = wait_until_back(&client, &base, &log).await;
    eprintln!("back to normal {took:?} after the database returned");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        ledger_rows(&url).await,
        rows_before + waiting,
        "each offline download recorded once: {}",
        read(&log)
    );
    assert!(
        read(&log).contains("the database answers again"),
        "{}",
        read(&log)
    );
    let answer = client
        .post(format!("{base}/api/v1/session/token"))
        .json(&serde_json::json!({ "username": "nobody", "password": "wrong-password" }))
        .send()
        .await
        .expect("answer");
    assert_eq!(
        answer.status(),
        401,
        "sign-in is answered by the database again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_file_that_cannot_be_opened_serves_the_local_copy_unless_it_was_tampered_with() {
    sqlx::any::install_default_drivers();
    let workspace = Workspace::new();
    let made = workspace.folder.path().join("made");
    let files = wheels(&made, "calm", &["1.0"], 1000, Duration::ZERO);
    let pypi = FaultyUpstream::start(BTreeMap::from([("calm".to_owned(), files)]));
    let owned = [
        (
            "FORMULARY_PYPI_UPSTREAMS",
            format!("[\"{}\"]", pypi.index()),
        ),
        ("FORMULARY_DATABASE_START_TIMEOUT_SECONDS", "3".to_owned()),
    ];
    let settings: Vec<(&str, &str)> = owned.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let client = reqwest::Client::new();
    let home = workspace.folder.path();
    let (server, base, _log) = tokio::task::block_in_place(|| serve(&workspace, &settings));
    let output = tokio::task::block_in_place(|| {
        pip(
            &venv(home, "online"),
            &format!("{base}/pypi/simple/"),
            "calm",
        )
    });
    assert!(output.status.success(), "{}", text(&output.stderr));
    tokio::task::block_in_place(|| stop_gracefully(server));
    let data = home.join("data");
    let url = format!("sqlite://{}", data.join("formulary.db").display());
    let rows_before = ledger_rows(&url).await;

    // The database file cannot be opened (a folder stands in its place; permissions do not
    // stop root), and the upstream is gone.
    std::fs::rename(data.join("formulary.db"), data.join("formulary.db.away")).expect("move");
    std::fs::create_dir(data.join("formulary.db")).expect("folder");
    pypi.set(Fault::Hang);

    // A local copy changed on disk is refused, and the server does not start.
    let manifest = data.join("local-copy/manifest.json");
    let sealed = std::fs::read_to_string(&manifest).expect("manifest");
    assert!(
        sealed.contains("\"counter\":"),
        "{}",
        &sealed[..200.min(sealed.len())]
    );
    std::fs::write(
        &manifest,
        sealed.replacen("\"counter\":", "\"counter\": ", 1),
    )
    .expect("write");
    let refused = tokio::task::block_in_place(|| {
        workspace
            .command(&["serve", "--listen", "127.0.0.1:0"])
            .envs(settings.iter().copied())
            .env("FORMULARY_CRAN_UPSTREAMS", "[]")
            .stdin(Stdio::null())
            .output()
            .expect("runs")
    });
    assert!(!refused.status.success());
    let said = text(&refused.stderr);
    assert!(said.contains("fails its seal check"), "{said}");
    assert!(said.contains("cannot be used instead"), "{said}");
    std::fs::write(&manifest, &sealed).expect("restore");

    // The sound copy is served.
    let (_server, base, log) = tokio::task::block_in_place(|| serve(&workspace, &settings));
    health_while_offline(&client, &base).await;
    let offline = venv(home, "offline");
    let started = Instant::now();
    let output =
        tokio::task::block_in_place(|| pip(&offline, &format!("{base}/pypi/simple/"), "calm"));
    assert!(
        output.status.success(),
        "{}\n{}",
        text(&output.stderr),
        read(&log)
    );
    eprintln!(
        "SQLite unreadable: pip install calm {:?}",
        started.elapsed()
    );
    changes_wait_for_the_database(&client, &base).await;

    // The file is put right: the server takes it back.
    std::fs::remove_dir(data.join("formulary.db")).expect("remove folder");
    std::fs::rename(data.join("formulary.db.away"), data.join("formulary.db")).expect("move back");
    let took = wait_until_back(&client, &base, &log).await;
    eprintln!("SQLite back {took:?} after the file was restored");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(ledger_rows(&url).await, rows_before + 1, "{}", read(&log));
}

/// A CRAN index build after a prohibition, with the upstream hung, waits at most the patience
/// for the archived version's DESCRIPTION (before: one upstream budget per such package), and
/// uses it once it arrives.
#[test]
fn a_cran_index_build_against_a_hung_upstream_waits_at_most_the_patience_for_archived_versions() {
    use crate::gateway_cran::{gateway, get};
    let workspace = Workspace::new();
    let root = workspace.folder.path().join("upstream");
    repository_folder(&root);
    let upstream = FaultyUpstream::serving(&root);
    // Budget 5 s, patience 1.5 s.
    let (_server, base) = gateway(&workspace, &format!("[\"{}/\"]", upstream.origin()));
    let packages = format!("{base}/cran/src/contrib/PACKAGES");
    let (status, body) = get(&packages);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Package: readxl\nVersion: 1.4.1\n"), "{body}");

    upstream.set(Fault::Hang);
    // The cached tree and archive.rds are served stale within the patience once.
    let started = Instant::now();
    let (status, _) = get(&packages);
    assert_eq!(status, 200);
    eprintln!("PACKAGES as the hang began: {:?}", started.elapsed());
    workspace.ok(&[
        "entry",
        "add",
        "pkg:cran/readxl",
        "--range",
        "==1.4.1",
        "--status",
        "prohibited",
        "--reason",
        "a test prohibition",
    ]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut slowest = Duration::ZERO;
    loop {
        let started = Instant::now();
        let (status, body) = get(&packages);
        let took = started.elapsed();
        slowest = slowest.max(took);
        assert_eq!(status, 200, "{body}");
        assert!(
            took < Duration::from_millis(3000),
            "a build waited {took:?} for the hung upstream (its budget is 5 s, the patience 1.5 s)"
        );
        if body.contains("Formulary-Refused") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the prohibition never applied: {body}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    eprintln!("PACKAGES rebuilt after a prohibition with the upstream hung: slowest {slowest:?}");

    // The upstream answers again: the archived 1.4.0 stands in for the prohibited 1.4.1.
    upstream.set(Fault::None);
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let (_, body) = get(&packages);
        if body.contains("Package: readxl\nVersion: 1.4.0\n") {
            break;
        }
        assert!(Instant::now() < deadline, "no archived substitute: {body}");
        std::thread::sleep(Duration::from_millis(500));
    }
}
