//! Several `formulary serve` processes (replicas) on one PostgreSQL database and one blob store:
//! a change made through one replica (or the CLI) is enforced by the others within a second,
//! also after a database restart; two replicas asked at once for an uncached file fetch it from
//! upstream at most twice and store one copy; pip installs through one replica what another
//! cached while that other is restarted; background jobs run on one replica at a time.
//! PostgreSQL only: replicas need a database server (SQLite keeps polling, tested elsewhere).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::cluster::Cluster;
use crate::databases::{self, PostgresDatabase};
use crate::formulary_cli::{text, Running, Workspace};
use crate::gateway_pypi::{pip, static_upstream, venv, wheel};
use crate::surveillance::wait_until;

/// One replica: its own data folder (journal, checkpoints), the shared database and blob folder.
struct Replica {
    workspace: Workspace,
    process: Option<Running>,
    base: String,
    settings: Vec<(&'static str, String)>,
}

impl Replica {
    fn new(database_url: &str, blobs: &Path, extra: &[(&'static str, String)]) -> Replica {
        let mut settings = vec![
            ("FORMULARY_BLOB_DIR", blobs.display().to_string()),
            ("FORMULARY_INDEX_REVALIDATE_SECONDS", "0".to_owned()),
            ("FORMULARY_UPSTREAM_TIMEOUT_SECONDS", "5".to_owned()),
            ("FORMULARY_SHUTDOWN_DEADLINE_SECONDS", "5".to_owned()),
        ];
        settings.extend(extra.iter().cloned());
        let mut replica = Replica {
            workspace: Workspace::on_database(database_url),
            process: None,
            base: String::new(),
            settings,
        };
        replica.start();
        replica
    }

    /// Starts (or restarts) the process; its log goes to `serve.log` in its folder.
    fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("log file");
        let mut child = self
            .workspace
            .command(&["serve", "--listen", "127.0.0.1:0"])
            .envs(
                self.settings
                    .iter()
                    .map(|(name, value)| (*name, value.as_str())),
            )
            .env("RUST_LOG", "info,formulary_server=debug")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("formulary serve starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("address line");
        self.base = line
            .split_whitespace()
            .find(|word| word.starts_with("http://"))
            .unwrap_or_else(|| panic!("no address in {line:?}; log: {}", self.log()))
            .trim_end_matches('/')
            .to_owned();
        self.process = Some(Running(child));
    }

    /// Stops the process with SIGTERM (a graceful shutdown) and waits for it.
    fn stop(&mut self) {
        if let Some(mut running) = self.process.take() {
            let pid = running.0.id().to_string();
            let _ = Command::new("kill").args(["-TERM", &pid]).status();
            let _ = running.0.wait();
        }
    }

    /// Kills the process with SIGKILL.
    fn kill(&mut self) {
        self.process = None;
    }

    fn pid(&self) -> u32 {
        self.process.as_ref().map_or(0, |running| running.0.id())
    }

    fn log_path(&self) -> PathBuf {
        self.workspace.folder.path().join("serve.log")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }
}

/// A fresh database on the test server, or `None` (skip) when PostgreSQL is not configured.
fn database() -> Option<PostgresDatabase> {
    databases::admin_url().map(|admin| PostgresDatabase::create(&admin))
}

async fn allowed(client: &reqwest::Client, base: &str, purl: &str) -> Option<bool> {
    let response = client
        .get(format!(
            "{base}/api/v1/policy/check?purl={purl}&organisation=NATIONAL"
        ))
        .send()
        .await
        .ok()?;
    let body: Value = response.json().await.ok()?;
    body["allowed"].as_bool()
}

/// Waits until `base` decides `purl` as `expected`; returns how long that took.
async fn until_decided(
    client: &reqwest::Client,
    base: &str,
    purl: &str,
    expected: bool,
    limit: Duration,
) -> Duration {
    let started = Instant::now();
    loop {
        if allowed(client, base, purl).await == Some(expected) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < limit,
            "{base} still decides {purl} as {} after {limit:?}",
            !expected
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn national_curator_token(replica: &Replica) -> String {
    replica
        .workspace
        .ok(&[
            "token",
            "create",
            "--name",
            "replica test",
            "--role",
            "national-curator",
            "--org",
            "NATIONAL",
        ])
        .trim()
        .to_owned()
}

/// Prohibits `component` nationally through replica `via`'s API.
async fn prohibit(client: &reqwest::Client, via: &Replica, token: &str, component: &str) {
    let response = client
        .post(format!("{}/api/v1/entries", via.base))
        .bearer_auth(token)
        .json(&json!({"component": component, "status": "prohibited", "reason": "replica test"}))
        .send()
        .await
        .expect("post");
    assert!(
        response.status().is_success(),
        "{}: {}",
        response.status(),
        response.text().await.unwrap_or_default()
    );
}

fn percentile(sorted: &[Duration], share: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * share).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_made_through_one_replica_is_enforced_by_another_within_a_second() {
    let Some(database) = database() else { return };
    let blobs = tempfile::tempdir().expect("blob folder");
    let a = Replica::new(&database.url, blobs.path(), &[]);
    let b = Replica::new(&database.url, blobs.path(), &[]);
    let client = reqwest::Client::new();
    let token = national_curator_token(&a);

    // Through A's API, enforced by B. Twenty changes: with only the 2-second poll, the chance
    // that all twenty land within a second would be about one in a million.
    let mut delays = Vec::new();
    for round in 0..20 {
        let purl = format!("pkg:pypi/replica-probe-{round}@1.0");
        until_decided(&client, &b.base, &purl, true, Duration::from_secs(5)).await;
        prohibit(
            &client,
            &a,
            &token,
            &format!("pkg:pypi/replica-probe-{round}"),
        )
        .await;
        delays.push(until_decided(&client, &b.base, &purl, false, Duration::from_secs(5)).await);
    }
    // Through the CLI (another process altogether), enforced by both.
    until_decided(
        &client,
        &a.base,
        "pkg:pypi/cli-probe@1.0",
        true,
        Duration::from_secs(5),
    )
    .await;
    let started = Instant::now();
    a.workspace.ok(&[
        "entry",
        "add",
        "pkg:pypi/cli-probe",
        "--status",
        "prohibited",
        "--reason",
        "replica test",
    ]);
    let written = started.elapsed();
    let on_a = until_decided(
        &client,
        &a.base,
        "pkg:pypi/cli-probe@1.0",
        false,
        Duration::from_secs(5),
    )
    .await;
    let on_b = until_decided(
        &client,
        &b.base,
        "pkg:pypi/cli-probe@1.0",
        false,
        Duration::from_secs(5),
    )
    .await;
    delays.sort();
    let median = percentile(&delays, 0.5);
    let worst = *delays.last().expect("delays");
    eprintln!(
        "policy change through replica A, enforced by replica B: median {median:?}, p95 {:?}, max {worst:?} over {} changes; through the CLI: A {on_a:?}, B {on_b:?} after the command returned (the command itself took {written:?})",
        percentile(&delays, 0.95),
        delays.len()
    );
    assert!(
        worst < Duration::from_secs(1),
        "every change reaches replica B within a second: {delays:?}\nB's log:\n{}",
        b.log()
    );
    assert!(on_a < Duration::from_secs(1) && on_b < Duration::from_secs(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_listen_again_after_the_database_restarts() {
    let Some(cluster) = tokio::task::block_in_place(Cluster::start) else {
        return;
    };
    let url = cluster.url();
    let blobs = tempfile::tempdir().expect("blob folder");
    let a = Replica::new(&url, blobs.path(), &[]);
    let b = Replica::new(&url, blobs.path(), &[]);
    let client = reqwest::Client::new();
    let token = national_curator_token(&a);
    let listening = |client: reqwest::Client, base: String| async move {
        let ready: serde_json::Value = client
            .get(format!("{base}/readyz"))
            .send()
            .await
            .expect("readyz answers")
            .json()
            .await
            .expect("JSON");
        ready["changes"].clone()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let changes = listening(client.clone(), b.base.clone()).await;
        if changes["status"] == "ok"
            && changes["detail"]
                .as_str()
                .is_some_and(|detail| detail.starts_with("listening for changes"))
        {
            break;
        }
        assert!(Instant::now() < deadline, "B says it listens: {changes}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::task::block_in_place(|| {
        cluster.stop();
        std::thread::sleep(Duration::from_secs(1));
        cluster.resume();
    });
    // The pool and the listener reconnect (the listener within its longest pause, 5 s).
    let deadline = Instant::now() + Duration::from_secs(20);
    while allowed(&client, &a.base, "pkg:pypi/after-restart@1.0").await != Some(true) {
        assert!(
            Instant::now() < deadline,
            "A never answered again:\n{}",
            a.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(6)).await;
    let mut delays = Vec::new();
    for round in 0..5 {
        let purl = format!("pkg:pypi/after-restart-{round}@1.0");
        until_decided(&client, &b.base, &purl, true, Duration::from_secs(5)).await;
        prohibit(
            &client,
            &a,
            &token,
            &format!("pkg:pypi/after-restart-{round}"),
        )
        .await;
        delays.push(until_decided(&client, &b.base, &purl, false, Duration::from_secs(5)).await);
    }
    eprintln!("after a database restart, changes reached replica B in {delays:?}");
    let changes = listening(client.clone(), b.base.clone()).await;
    assert!(
        changes["detail"]
            .as_str()
            .is_some_and(|detail| detail.starts_with("listening for changes")),
        "B says it listens again: {changes}"
    );
    assert!(
        delays.iter().all(|delay| *delay < Duration::from_secs(1)),
        "B listens again after the restart: {delays:?}\nB's log:\n{}",
        b.log()
    );
}

/// A PEP 503 upstream with one slowly served wheel, counting how often the wheel is fetched.
fn counting_upstream(fetches: Arc<AtomicUsize>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    let payload: Vec<u8> = (0..300_000u32).map(|index| (index % 241) as u8).collect();
    let file = Arc::new(wheel("counted", "1.0", &payload));
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (file, fetches) = (Arc::clone(&file), Arc::clone(&fetches));
            std::thread::spawn(move || {
                let mut stream = stream;
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let mut request_line = String::new();
                let _ = reader.read_line(&mut request_line);
                loop {
                    let mut header = String::new();
                    if reader.read_line(&mut header).map_or(true, |read| read == 0)
                        || header == "\r\n"
                    {
                        break;
                    }
                }
                let path = request_line.split_whitespace().nth(1).unwrap_or("/");
                if path.starts_with("/simple/counted") {
                    let digest = hex::encode(Sha256::digest(file.as_slice()));
                    let body = format!("<a href=\"/files/counted-1.0-py3-none-any.whl#sha256={digest}\">counted-1.0-py3-none-any.whl</a>\n");
                    let _ = write!(stream, "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
                } else if path.ends_with("counted-1.0-py3-none-any.whl") {
                    fetches.fetch_add(1, Ordering::SeqCst);
                    let _ = write!(
                        stream,
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        file.len()
                    );
                    // Slowly, so that the replicas' requests overlap with the fetch.
                    for chunk in file.chunks(file.len() / 10) {
                        let _ = stream.write_all(chunk);
                        std::thread::sleep(Duration::from_millis(40));
                    }
                } else {
                    let _ = write!(
                        stream,
                        "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    );
                }
            });
        }
    });
    format!("http://127.0.0.1:{port}/simple/")
}

fn files_under(folder: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for item in std::fs::read_dir(folder).into_iter().flatten().flatten() {
        let path = item.path();
        if path.is_dir() {
            found.extend(files_under(&path));
        } else {
            found.push(path);
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_asked_at_once_for_an_uncached_file_fetch_it_at_most_twice_and_store_one_copy()
{
    let Some(database) = database() else { return };
    let fetches = Arc::new(AtomicUsize::new(0));
    let upstream = counting_upstream(Arc::clone(&fetches));
    let blobs = tempfile::tempdir().expect("blob folder");
    let upstreams = ("FORMULARY_PYPI_UPSTREAMS", format!("[\"{upstream}\"]"));
    let a = Replica::new(
        &database.url,
        blobs.path(),
        std::slice::from_ref(&upstreams),
    );
    let b = Replica::new(
        &database.url,
        blobs.path(),
        std::slice::from_ref(&upstreams),
    );
    let client = reqwest::Client::new();
    for replica in [&a, &b] {
        let page = client
            .get(format!("{}/pypi/simple/counted/", replica.base))
            .send()
            .await
            .expect("index");
        assert!(page.status().is_success(), "{}", replica.log());
    }
    let expected = {
        let payload: Vec<u8> = (0..300_000u32).map(|index| (index % 241) as u8).collect();
        wheel("counted", "1.0", &payload)
    };
    let mut downloads = Vec::new();
    for index in 0..16 {
        let base = if index % 2 == 0 { &a.base } else { &b.base };
        let url = format!("{base}/pypi/files/counted/counted-1.0-py3-none-any.whl");
        let client = client.clone();
        downloads.push(tokio::spawn(async move {
            let response = client.get(url).send().await.expect("download");
            let status = response.status();
            (status, response.bytes().await.map(|bytes| bytes.to_vec()))
        }));
    }
    for download in downloads {
        let (status, body) = download.await.expect("task");
        assert!(
            status.is_success(),
            "{status}\nA:\n{}\nB:\n{}",
            a.log(),
            b.log()
        );
        assert!(
            body.expect("body") == expected,
            "every client gets the right bytes"
        );
    }
    let fetched = fetches.load(Ordering::SeqCst);
    eprintln!("16 concurrent requests over two replicas: {fetched} upstream fetches");
    assert!(
        (1..=2).contains(&fetched),
        "at most one fetch per replica: {fetched}"
    );
    let stored: Vec<PathBuf> = files_under(blobs.path())
        .into_iter()
        .filter(|path| {
            let mut bytes = Vec::new();
            std::fs::File::open(path)
                .and_then(|mut file| file.read_to_end(&mut bytes))
                .is_ok()
                && bytes == expected
        })
        .collect();
    assert_eq!(stored.len(), 1, "one copy in the blob store: {stored:?}");
    let leftovers: Vec<PathBuf> = files_under(blobs.path())
        .into_iter()
        .filter(|path| path.components().any(|part| part.as_os_str() == "incoming"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "no unfinished writes left: {leftovers:?}"
    );
    // Both replicas serve it from the cache with the upstream's count unchanged.
    for replica in [&a, &b] {
        let again = client
            .get(format!(
                "{}/pypi/files/counted/counted-1.0-py3-none-any.whl",
                replica.base
            ))
            .send()
            .await
            .expect("download");
        assert!(again.status().is_success());
    }
    assert_eq!(fetches.load(Ordering::SeqCst), fetched);
    let verify = a.workspace.run(&["cache", "verify"]);
    assert!(
        verify.status.success(),
        "{}{}",
        text(&verify.stdout),
        text(&verify.stderr)
    );
}

#[test]
fn pip_installs_through_one_replica_what_another_cached_while_that_one_restarts() {
    let Some(database) = database() else { return };
    let root = tempfile::tempdir().expect("root");
    let (upstream_server, upstream) = static_upstream(&root.path().join("upstream"));
    let blobs = tempfile::tempdir().expect("blob folder");
    let upstreams = ("FORMULARY_PYPI_UPSTREAMS", format!("[\"{upstream}\"]"));
    let mut a = Replica::new(
        &database.url,
        blobs.path(),
        std::slice::from_ref(&upstreams),
    );
    let b = Replica::new(
        &database.url,
        blobs.path(),
        std::slice::from_ref(&upstreams),
    );

    let first = venv(root.path(), "through-a");
    let output = pip(
        &first,
        &format!("{}/pypi/simple/", a.base),
        "requests==2.32.3",
    );
    assert!(
        output.status.success(),
        "pip through A: {}\n{}",
        text(&output.stderr),
        a.log()
    );
    // From now on only the cache can answer: the upstream is gone.
    drop(upstream_server);
    // A restarts while pip installs through B.
    a.stop();
    let second = venv(root.path(), "through-b");
    let output = pip(
        &second,
        &format!("{}/pypi/simple/", b.base),
        "requests==2.32.3",
    );
    assert!(
        output.status.success(),
        "pip through B with A down and the upstream gone: {}\n{}",
        text(&output.stderr),
        b.log()
    );
    a.start();
    let third = venv(root.path(), "through-restarted-a");
    let output = pip(
        &third,
        &format!("{}/pypi/simple/", a.base),
        "requests==2.32.3",
    );
    assert!(
        output.status.success(),
        "pip through the restarted A: {}\n{}",
        text(&output.stderr),
        a.log()
    );
}

/// The replica holding the lease `job` now (empty when nobody holds an unexpired one).
fn lease_holder(url: &str, job: &str) -> String {
    let (url, job) = (url.to_owned(), job.to_owned());
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            use sqlx::{Connection, Row};
            sqlx::any::install_default_drivers();
            let mut connection = sqlx::AnyConnection::connect(&url).await.expect("connect");
            let row = sqlx::query("SELECT holder, expires_at FROM leases WHERE name = $1")
                .bind(&job)
                .fetch_optional(&mut connection)
                .await
                .expect("query");
            let _ = connection.close().await;
            row.and_then(|row| {
                let holder: String = row.try_get("holder").ok()?;
                let expires: String = row.try_get("expires_at").ok()?;
                let expires = chrono::DateTime::parse_from_rfc3339(&expires).ok()?;
                (expires > chrono::Utc::now()).then_some(holder)
            })
            .unwrap_or_default()
        })
    })
    .join()
    .expect("lease query")
}

#[test]
fn each_background_job_runs_on_one_replica_and_moves_when_that_one_dies() {
    let Some(database) = database() else { return };
    let blobs = tempfile::tempdir().expect("blob folder");
    let mut a = Replica::new(&database.url, blobs.path(), &[]);
    let b = Replica::new(&database.url, blobs.path(), &[]);
    let url = database.url.clone();
    let holder_of = move |job: &str| -> String { lease_holder(&url, job) };
    let deadline = Instant::now() + Duration::from_secs(10);
    let first = loop {
        let holder = holder_of("dependency-admissions");
        if !holder.is_empty() {
            break holder;
        }
        assert!(Instant::now() < deadline, "no replica took the job");
        std::thread::sleep(Duration::from_millis(200));
    };
    let names = |holder: &str, pid: u32| holder.split('-').any(|part| part == pid.to_string());
    let (dead, survivor) = if names(&first, a.pid()) {
        (a.pid(), b.pid())
    } else {
        (b.pid(), a.pid())
    };
    assert!(names(&first, dead), "the holder names a replica: {first}");
    // Held by that one replica only, round after round.
    for _ in 0..5 {
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(holder_of("dependency-admissions"), first);
    }
    // kill -9 the holder (the test's replicas are A and B; stop the holder whichever it is).
    let killed = Instant::now();
    if dead == a.pid() {
        a.kill();
    } else {
        let _ = Command::new("kill")
            .args(["-KILL", &dead.to_string()])
            .status();
    }
    let deadline = Instant::now() + Duration::from_secs(45);
    let second = loop {
        let holder = holder_of("dependency-admissions");
        if !holder.is_empty() && holder != first {
            break holder;
        }
        assert!(
            Instant::now() < deadline,
            "the job never moved to the survivor"
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    eprintln!(
        "the job moved from {first} to {second} {:?} after kill -9 (lease {}s)",
        killed.elapsed(),
        formulary_server::jobs::JOB_LEASE.as_secs()
    );
    assert!(names(&second, survivor), "{second}");
    drop(b);
}

#[test]
fn a_replica_stopped_gracefully_hands_its_jobs_over_at_once() {
    let Some(database) = database() else { return };
    let blobs = tempfile::tempdir().expect("blob folder");
    let mut replicas = [
        Replica::new(&database.url, blobs.path(), &[]),
        Replica::new(&database.url, blobs.path(), &[]),
    ];
    let jobs = ["recalls", "dependency-admissions"];
    let names = |holder: &str, pid: u32| holder.split('-').any(|part| part == pid.to_string());
    let held = || jobs.map(|job| lease_holder(&database.url, job));
    wait_until(Duration::from_secs(10), "a replica taking the jobs", || {
        held().iter().all(|holder| !holder.is_empty())
    });
    let holders = held();
    // Stop the replica holding the recall job with SIGTERM; the other must take every job it
    // held well within the lease (30 s), at its next round (2 s), not when the lease expires.
    let holder = usize::from(!names(&holders[0], replicas[0].pid()));
    let (stopped_pid, survivor_pid) = (replicas[holder].pid(), replicas[1 - holder].pid());
    assert!(names(&holders[0], stopped_pid), "{holders:?}");
    let stopped = Instant::now();
    replicas[holder].stop();
    for job in jobs {
        assert!(
            !names(&lease_holder(&database.url, job), stopped_pid),
            "a stopped replica holds no lease"
        );
    }
    for job in jobs {
        let what = format!("{job} moving to the survivor after a graceful stop");
        let left = Duration::from_secs(10).saturating_sub(stopped.elapsed());
        wait_until(left, &what, || {
            names(&lease_holder(&database.url, job), survivor_pid)
        });
    }
    eprintln!(
        "after a graceful stop the jobs moved in {:?} (lease {}s)",
        stopped.elapsed(),
        formulary_server::jobs::JOB_LEASE.as_secs()
    );
}

async fn sign_in(client: &reqwest::Client, base: &str, password: &str) -> reqwest::Response {
    client
        .post(format!("{base}/api/v1/session/token"))
        .json(&json!({ "username": "jane", "password": password }))
        .send()
        .await
        .expect("sign-in request")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_throttling_and_tokens_hold_across_replicas() {
    let Some(database) = database() else { return };
    let blobs = tempfile::tempdir().expect("blob folder");
    let a = Replica::new(&database.url, blobs.path(), &[]);
    let b = Replica::new(&database.url, blobs.path(), &[]);
    a.workspace.add_user(
        "jane",
        "Jane Analyst",
        &["NATIONAL:requester"],
        "correct horse battery",
    );
    let client = reqwest::Client::new();

    // A token issued by A is good on B.
    let issued: Value = sign_in(&client, &a.base, "correct horse battery")
        .await
        .json()
        .await
        .expect("JSON");
    let token = issued["token"].as_str().expect("token").to_owned();
    let me = client
        .get(format!("{}/api/v1/me", b.base))
        .bearer_auth(&token)
        .send()
        .await
        .expect("me");
    assert_eq!(me.status(), reqwest::StatusCode::OK, "A's token works on B");

    // Five wrong passwords spread over both replicas: the sixth attempt is refused on either,
    // even with the right password (the failures are counted in the database, not per process).
    for attempt in 0..5 {
        let base = if attempt % 2 == 0 { &a.base } else { &b.base };
        let refused = sign_in(&client, base, "wrong").await;
        assert_eq!(refused.status(), reqwest::StatusCode::UNAUTHORIZED);
    }
    for base in [&a.base, &b.base] {
        let throttled = sign_in(&client, base, "correct horse battery").await;
        assert_eq!(
            throttled.status(),
            reqwest::StatusCode::TOO_MANY_REQUESTS,
            "guesses spread over replicas are throttled together"
        );
        assert!(throttled.headers().contains_key("retry-after"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_session_and_its_csrf_token_work_on_every_replica() {
    use crate::requests::{hidden_token, sign_in, Browser};
    use reqwest::StatusCode;
    let Some(database) = database() else { return };
    let blobs = tempfile::tempdir().expect("blob folder");
    let a = Replica::new(&database.url, blobs.path(), &[]);
    let b = Replica::new(&database.url, blobs.path(), &[]);
    a.workspace.add_user(
        "jane",
        "Jane Analyst",
        &["NATIONAL:requester"],
        "correct horse battery",
    );
    let mut on_a = Browser::new(&a.base);
    let (status, location) = sign_in(&mut on_a, "jane", "correct horse battery").await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{location}");
    // The same cookies, sent to B: the session and its CSRF token are in the database.
    let mut on_b = Browser::new(&b.base);
    on_b.cookies = on_a.cookies.clone();
    let (status, page) = on_b.get("/account").await;
    assert_eq!(status, StatusCode::OK, "A's session is valid on B");
    let token = hidden_token(&page);
    let (status, _) = on_b
        .post("/sign-out", &[("csrf_token", "forged")], None)
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "a wrong CSRF token is refused on B"
    );
    let (status, _) = on_b
        .post("/sign-out", &[("csrf_token", &token)], None)
        .await;
    assert_eq!(
        status,
        StatusCode::SEE_OTHER,
        "B accepts the session's CSRF token"
    );
    // Signed out through B: the session has ended on A as well.
    let (status, _) = on_a.get("/account").await;
    assert_eq!(
        status,
        StatusCode::SEE_OTHER,
        "the session ended everywhere"
    );
}
