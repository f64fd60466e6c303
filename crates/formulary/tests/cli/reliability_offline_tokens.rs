//! A deployment that asks for a Formulary token on every gateway request
//! (`gateway_access = "token"`) keeps serving its people while the database is down: the
//! server checks tokens against its sealed local copy. Real pip and uv install a cached package
//! with a token in the index URL; a token revoked before the copy was written, and no token,
//! get a 401 that says so; once the database returns, the download ledger names the person for
//! the downloads made offline. On PostgreSQL (a throwaway cluster, stopped) and on SQLite (a
//! database file that cannot be opened).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::cluster::Cluster;
use crate::formulary_cli::{text, Workspace};
use crate::gateway_auth::{gateway_token, ledger_actors, PASSWORD};
use crate::gateway_pypi::{pip, uv, venv};
use crate::reliability::serve;
use crate::reliability_offline::{
    journal_lines, ledger_rows, read, stop_gracefully, wait_until_back,
};
use crate::reliability_upstream::{wheels, Fault, FaultyUpstream};

/// The database the server runs on, and how it goes away and comes back.
enum Down {
    /// A throwaway PostgreSQL cluster, stopped and started again.
    Postgres(Cluster),
    /// SQLite in the data folder; a folder stands in for the file while it is "down".
    Sqlite,
}

impl Down {
    fn workspace(&self) -> Workspace {
        match self {
            Down::Postgres(cluster) => Workspace::on_database(&cluster.url()),
            Down::Sqlite => Workspace::new(),
        }
    }

    fn url(&self, workspace: &Workspace) -> String {
        match self {
            Down::Postgres(cluster) => cluster.url(),
            Down::Sqlite => format!(
                "sqlite://{}",
                workspace.folder.path().join("data/formulary.db").display()
            ),
        }
    }

    fn stop(&self, workspace: &Workspace) {
        match self {
            Down::Postgres(cluster) => cluster.stop(),
            Down::Sqlite => {
                let data = workspace.folder.path().join("data");
                std::fs::rename(data.join("formulary.db"), data.join("formulary.db.away"))
                    .expect("move");
                std::fs::create_dir(data.join("formulary.db")).expect("folder");
            }
        }
    }

    fn resume(&self, workspace: &Workspace) {
        match self {
            Down::Postgres(cluster) => cluster.resume(),
            Down::Sqlite => {
                let data = workspace.folder.path().join("data");
                std::fs::remove_dir(data.join("formulary.db")).expect("remove folder");
                std::fs::rename(data.join("formulary.db.away"), data.join("formulary.db"))
                    .expect("move back");
            }
        }
    }
}

fn with_token(url: &str, token: &str) -> String {
    url.replacen("http://", &format!("http://jane:{token}@"), 1)
}

/// A gateway GET with HTTP Basic (`None`: no credentials): status and problem+json.
async fn gateway_get(client: &reqwest::Client, url: &str, token: Option<&str>) -> (u16, Value) {
    let mut request = client.get(url);
    if let Some(token) = token {
        request = request.basic_auth("jane", Some(token));
    }
    let answer = request.send().await.expect("answer");
    let status = answer.status().as_u16();
    (status, answer.json().await.unwrap_or(Value::Null))
}

async fn revoke(client: &reqwest::Client, base: &str, token_id: &str) {
    let login: Value = client
        .post(format!("{base}/api/v1/session/token"))
        .json(&json!({ "username": "jane", "password": PASSWORD }))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("JSON");
    let api_token = login["token"].as_str().expect("token");
    let revoked = client
        .delete(format!("{base}/api/v1/me/tokens/{token_id}"))
        .bearer_auth(api_token)
        .send()
        .await
        .expect("DELETE");
    assert_eq!(revoked.status(), 204);
}

/// The SHA-256 of a token's secret, as the database and the local copy keep it.
fn hashed(secret: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(secret.as_bytes()))
}

/// Waits until the server's local copy on disk has caught up with the database: the policy as
/// of the database's newest audit row (a copy behind the audit checkpoint is refused), `valid`
/// among its tokens and `revoked` not; it never holds a secret.
async fn wait_for_the_copy(home: &Path, url: &str, valid: &str, revoked: &str) {
    let database = formulary_store::Database::open(url)
        .await
        .expect("database");
    let newest = database.change_counter().await.expect("counter");
    let path = home.join("data/local-copy/manifest.json");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let manifest = read(&path);
        let body: Value = manifest
            .split_once('\n')
            .and_then(|(_, body)| serde_json::from_str(body).ok())
            .unwrap_or(Value::Null);
        let tokens = &body["tokens"];
        if body["policy"]["counter"].as_i64() >= Some(newest)
            && tokens.get(hashed(valid)).is_some()
            && tokens.get(hashed(revoked)).is_none()
        {
            assert_eq!(tokens[hashed(valid)]["actor"], "user:jane", "{tokens}");
            assert!(
                !manifest.contains(&valid[4..]) && !manifest.contains(&revoked[4..]),
                "the copy never holds a token's secret"
            );
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the local copy did not catch up with audit row {newest}: {tokens}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn assert_refused(status: u16, problem: &Value, title: &str, says: &str) {
    assert_eq!(status, 401, "{problem}");
    assert_eq!(problem["title"], title, "{problem}");
    let detail = problem["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains(says) && detail.contains("/account"),
        "says why and how to get a token: {problem}"
    );
}

async fn tokens_are_checked_from_the_local_copy(down: Down) {
    sqlx::any::install_default_drivers();
    let workspace = down.workspace();
    let home = workspace.folder.path();
    workspace.add_user("jane", "Jane Analyst", &["NATIONAL:requester"], PASSWORD);
    let files = wheels(&home.join("made"), "calm", &["1.0"], 1000, Duration::ZERO);
    let pypi = FaultyUpstream::start(BTreeMap::from([("calm".to_owned(), files)]));
    let owned = [
        (
            "FORMULARY_PYPI_UPSTREAMS",
            format!("[\"{}\"]", pypi.index()),
        ),
        ("FORMULARY_DATABASE_START_TIMEOUT_SECONDS", "3".to_owned()),
        ("FORMULARY_GATEWAY_ACCESS", "token".to_owned()),
    ];
    let settings: Vec<(&str, &str)> = owned.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let client = reqwest::Client::new();

    // Online: jane holds two tokens; pip caches calm with one; the other is revoked.
    let (server, base, _log) = tokio::task::block_in_place(|| serve(&workspace, &settings));
    let (token, _) = gateway_token(&client, &base, "jane").await;
    let (revoked, revoked_id) = gateway_token(&client, &base, "jane").await;
    let index = format!("{base}/pypi/simple/");
    let output = tokio::task::block_in_place(|| {
        pip(
            &venv(home, "online"),
            &with_token(&index, &token),
            "calm==1.0",
        )
    });
    assert!(output.status.success(), "{}", text(&output.stderr));
    let (status, _) = gateway_get(&client, &format!("{index}calm/"), Some(&revoked)).await;
    assert_eq!(status, 200, "the second token works before it is revoked");
    revoke(&client, &base, &revoked_id).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, _) = gateway_get(&client, &format!("{index}calm/"), Some(&revoked)).await;
        if status == 401 {
            break;
        }
        assert!(Instant::now() < deadline, "the revocation never applied");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let url = down.url(&workspace);
    wait_for_the_copy(home, &url, &token, &revoked).await;
    // Shut down: the local copy and the ledger are written.
    tokio::task::block_in_place(|| stop_gracefully(server));
    let rows_before = ledger_rows(&url).await;

    // The database and the upstream go away; the server starts from its local copy.
    tokio::task::block_in_place(|| down.stop(&workspace));
    pypi.set(Fault::Hang);
    let (_server, base, log) = tokio::task::block_in_place(|| serve(&workspace, &settings));
    let index = format!("{base}/pypi/simple/");
    let (status, _) = gateway_get(&client, &format!("{base}/readyz"), None).await;
    assert_eq!(status, 503, "offline: {}", read(&log));

    // A token checked against the copy: the cached page at once.
    let started = Instant::now();
    let (status, _) = gateway_get(&client, &format!("{index}calm/"), Some(&token)).await;
    assert_eq!(status, 200, "{}", read(&log));
    eprintln!(
        "index page with a token, database down: {:?}",
        started.elapsed()
    );

    // The token installs the cached package with pip and uv.
    let environment = venv(home, "offline");
    let started = Instant::now();
    let output =
        tokio::task::block_in_place(|| pip(&environment, &with_token(&index, &token), "calm==1.0"));
    assert!(
        output.status.success(),
        "{}\n{}",
        text(&output.stderr),
        read(&log)
    );
    eprintln!(
        "pip install with a token, database down: {:?}",
        started.elapsed()
    );
    let environment = venv(home, "offline-uv");
    let started = Instant::now();
    let output =
        tokio::task::block_in_place(|| uv(&environment, &with_token(&index, &token), "calm==1.0"));
    assert!(
        output.status.success(),
        "{}\n{}",
        text(&output.stderr),
        read(&log)
    );
    eprintln!(
        "uv pip install with a token, database down: {:?}",
        started.elapsed()
    );

    // The revoked token and a made-up one are refused, saying so; no token is refused too.
    let page = format!("{index}calm/");
    let (status, problem) = gateway_get(&client, &page, Some(&revoked)).await;
    assert_refused(
        status,
        &problem,
        "Invalid token",
        "checked against the server's local copy",
    );
    let (status, problem) = gateway_get(&client, &page, Some("frm_made-up")).await;
    assert_refused(status, &problem, "Invalid token", "unknown");
    let (status, problem) = gateway_get(&client, &page, None).await;
    assert_refused(
        status,
        &problem,
        "Token required",
        "needs a Formulary token",
    );
    let output = tokio::task::block_in_place(|| {
        pip(
            &venv(home, "offline-revoked"),
            &with_token(&index, &revoked),
            "calm==1.0",
        )
    });
    assert!(!output.status.success(), "pip with the revoked token fails");

    // The downloads wait in the journal, with the person.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut waiting = journal_lines(&client, &base).await;
    while waiting < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        waiting = journal_lines(&client, &base).await;
    }
    assert!(
        waiting >= 2,
        "pip's and uv's downloads are journalled: {waiting}"
    );

    // The database returns: the ledger names jane for the offline downloads.
    tokio::task::block_in_place(|| down.resume(&workspace));
    let took = wait_until_back(&client, &base, &log).await;
    eprintln!("back {took:?} after the database returned");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        ledger_rows(&url).await,
        rows_before + waiting,
        "each offline download recorded once: {}",
        read(&log)
    );
    let actors = ledger_actors(&workspace, "pkg:pypi/calm", 3).await;
    assert!(
        actors.iter().all(|actor| actor == "user:jane"),
        "{actors:?}"
    );
    assert!(!read(&log).contains(&token[4..]), "a token reached the log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_postgresql_down_gateway_tokens_are_checked_from_the_local_copy() {
    let Some(cluster) = tokio::task::block_in_place(Cluster::start) else {
        return;
    };
    tokens_are_checked_from_the_local_copy(Down::Postgres(cluster)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_sqlite_unreadable_gateway_tokens_are_checked_from_the_local_copy() {
    tokens_are_checked_from_the_local_copy(Down::Sqlite).await;
}
