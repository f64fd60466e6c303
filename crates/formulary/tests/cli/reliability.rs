//! Faults outside the package gateway, injected for real: a PostgreSQL cluster stopped under a
//! running server (and kill -9 while it is down), slow and stalled clients, too many
//! connections, and SIGTERM with a download stalled mid-body.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use sqlx::Connection;

use crate::cluster::Cluster;
use crate::formulary_cli::{text, Running, Workspace};

/// Writes a wheel with a METADATA file and `payload` random (incompressible) bytes, stored.
fn make_wheel(folder: &Path, project: &str, payload: usize) -> PathBuf {
    let path = folder.join(format!("{project}-1.0-py3-none-any.whl"));
    let script = "import os, sys, zipfile\n\
        path, project, size = sys.argv[1], sys.argv[2], int(sys.argv[3])\n\
        with zipfile.ZipFile(path, 'w', zipfile.ZIP_STORED) as wheel:\n\
        \x20   wheel.writestr(f'{project}/__init__.py', b'')\n\
        \x20   wheel.writestr(f'{project}/payload.bin', os.urandom(size))\n\
        \x20   wheel.writestr(f'{project}-1.0.dist-info/METADATA', f'Metadata-Version: 2.1\\nName: {project}\\nVersion: 1.0\\nLicense: MIT\\n')\n\
        \x20   wheel.writestr(f'{project}-1.0.dist-info/WHEEL', 'Wheel-Version: 1.0\\nGenerator: test\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n')\n";
    let output = Command::new("python3")
        .args(["-c", script])
        .arg(&path)
        .args([project, &payload.to_string()])
        .output()
        .expect("python3 runs");
    assert!(output.status.success(), "{}", text(&output.stderr));
    path
}

/// Imports wheels for an air-gapped gateway (nothing upstream), so every file is cached.
fn import_wheels(workspace: &Workspace, wheels: &[(&str, usize)]) {
    let folder = workspace.folder.path().join("wheels");
    std::fs::create_dir_all(&folder).expect("wheel folder");
    for (project, size) in wheels {
        make_wheel(&folder, project, *size);
    }
    let imported = workspace.ok(&["mirror", "import", "pypi", &folder.display().to_string()]);
    assert!(
        imported.contains(&format!("Imported {} files", wheels.len())),
        "{imported}"
    );
}

/// Starts `formulary serve` with no upstreams and the given settings, its log in `serve.log`.
pub(crate) fn serve(
    workspace: &Workspace,
    settings: &[(&str, &str)],
) -> (Running, String, PathBuf) {
    use std::io::BufRead;
    let log = workspace.folder.path().join("serve.log");
    let mut child = workspace
        .command(&["serve", "--listen", "127.0.0.1:0"])
        .env("FORMULARY_PYPI_UPSTREAMS", "[]")
        .env("FORMULARY_CRAN_UPSTREAMS", "[]")
        .env("FORMULARY_LOG", "info")
        .envs(settings.iter().copied())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("formulary serve starts");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("address line");
    let base = line
        .split_whitespace()
        .find(|word| word.starts_with("http://"))
        .unwrap_or_else(|| panic!("no address in {line:?}: {}", read(&log)))
        .trim_end_matches('/')
        .to_owned();
    (Running(child), base, log)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// The URL of a project's only file, from its JSON index page.
async fn file_url(client: &reqwest::Client, base: &str, project: &str) -> String {
    let page = format!("{base}/pypi/simple/{project}/");
    let answer: Value = client
        .get(&page)
        .header("Accept", "application/vnd.pypi.simple.v1+json")
        .send()
        .await
        .expect("index page")
        .json()
        .await
        .expect("JSON");
    let relative = answer["files"][0]["url"]
        .as_str()
        .unwrap_or_else(|| panic!("no file in {answer}"));
    url::Url::parse(&page)
        .and_then(|page| page.join(relative))
        .expect("file URL")
        .to_string()
}

/// GETs a path, returning the status, the JSON body and how long it took.
async fn timed(client: &reqwest::Client, url: &str) -> (u16, Value, Duration) {
    let started = Instant::now();
    let response = client.get(url).send().await.expect("answer");
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body, started.elapsed())
}

/// Downloads `url` `count` times, eight at a time; each must be 200 with the whole file.
async fn download_many(client: &reqwest::Client, url: &str, count: usize, size: u64) {
    let mut pending = futures_util::stream::iter((0..count).map(|_| {
        let (client, url) = (client.clone(), url.to_owned());
        async move {
            let response = client.get(&url).send().await.expect("download answered");
            let status = response.status();
            let body = response.bytes().await.expect("body");
            (status, body.len() as u64)
        }
    }))
    .buffer_unordered(8);
    use futures_util::StreamExt;
    while let Some((status, length)) = pending.next().await {
        assert_eq!(
            status, 200,
            "a cached file is served while the database is down"
        );
        assert!(length >= size, "the whole file: {length}");
    }
}

/// Waits until the ledger holds `expected` rows (the writer may still be emptying its queue),
/// then checks that it stays there: nothing lost, nothing twice.
async fn wait_for_ledger_rows(url: &str, expected: i64, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut rows = ledger_rows(url).await;
    while rows < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        rows = ledger_rows(url).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        ledger_rows(url).await,
        expected,
        "nothing lost, nothing twice: {}",
        read(log)
    );
}

async fn ledger_rows(url: &str) -> i64 {
    let mut connection = sqlx::AnyConnection::connect(url).await.expect("connects");
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM downloads")
        .fetch_one(&mut connection)
        .await
        .expect("count");
    connection.close().await.expect("closes");
    count
}

/// Waits until `/readyz` is 200 with nothing left in the ledger's journal.
async fn wait_until_ready_and_replayed(client: &reqwest::Client, base: &str, log: &Path) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body, _) = timed(client, &format!("{base}/readyz")).await;
        if status == 200 && body["ledger"]["status"] == "ok" {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "not ready a minute after the database came back: {body}\n{}",
            read(log)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// More downloads than the old ledger queue held (4,096), with PostgreSQL stopped.
const DOWNLOADS_WHILE_DOWN: usize = 4200;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_postgresql_stopped_cached_files_are_served_livez_stays_up_and_the_ledger_catches_up()
{
    let Some(cluster) = tokio::task::block_in_place(Cluster::start) else {
        return;
    };
    sqlx::any::install_default_drivers();
    let url = cluster.url();
    let workspace = Workspace::on_database(&url);
    tokio::task::block_in_place(|| import_wheels(&workspace, &[("tiny", 2048)]));
    let (server, base, log) = tokio::task::block_in_place(|| serve(&workspace, &[]));
    let client = reqwest::Client::new();
    let file = file_url(&client, &base, "tiny").await;
    download_many(&client, &file, 1, 2048).await;
    let (status, ready, _) = timed(&client, &format!("{base}/readyz")).await;
    assert_eq!(status, 200, "{ready}");

    tokio::task::block_in_place(|| cluster.stop());
    // Health: liveness from memory, readiness says what is wrong, both fast.
    let mut slowest_live = Duration::ZERO;
    let mut slowest_ready = Duration::ZERO;
    for _ in 0..5 {
        let (status, _, took) = timed(&client, &format!("{base}/livez")).await;
        assert_eq!(status, 200, "liveness does not depend on the database");
        slowest_live = slowest_live.max(took);
        let (status, body, took) = timed(&client, &format!("{base}/readyz")).await;
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["database"]["status"], "failed", "{body}");
        assert_eq!(body["blobs"]["status"], "ok", "{body}");
        slowest_ready = slowest_ready.max(took);
    }
    eprintln!(
        "database stopped: slowest /livez {slowest_live:?}, slowest /readyz {slowest_ready:?}"
    );
    assert!(
        slowest_live < Duration::from_millis(100),
        "{slowest_live:?}"
    );
    assert!(
        slowest_ready < Duration::from_millis(100),
        "{slowest_ready:?}"
    );
    let (status, _, _) = timed(&client, &format!("{base}/healthz")).await;
    assert_eq!(status, 503, "/healthz is /readyz");

    // Downloads go on; the ledger keeps their lines in its journal.
    let started = Instant::now();
    download_many(&client, &file, DOWNLOADS_WHILE_DOWN, 2048).await;
    eprintln!(
        "{DOWNLOADS_WHILE_DOWN} downloads with the database stopped in {:?}",
        started.elapsed()
    );
    let (_, body, _) = timed(&client, &format!("{base}/readyz")).await;
    assert_eq!(body["ledger"]["status"], "degraded", "{body}");
    assert!(
        body["ledger"]["detail"]
            .as_str()
            .is_some_and(|detail| detail.contains("wait in the local journal")),
        "{body}"
    );

    // The database comes back: the journal is replayed, each line once.
    tokio::task::block_in_place(|| cluster.resume());
    let started = Instant::now();
    wait_until_ready_and_replayed(&client, &base, &log).await;
    eprintln!(
        "journal replayed {:?} after the database came back",
        started.elapsed()
    );
    wait_for_ledger_rows(&url, 1 + DOWNLOADS_WHILE_DOWN as i64, &log).await;

    // Down again, and the server is killed with its lines in the journal: the next start
    // replays them.
    tokio::task::block_in_place(|| cluster.stop());
    download_many(&client, &file, 300, 2048).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, body, _) = timed(&client, &format!("{base}/readyz")).await;
        if body["ledger"]["detail"]
            .as_str()
            .is_some_and(|detail| detail.starts_with("300 download lines"))
        {
            break;
        }
        assert!(Instant::now() < deadline, "{body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The journal is fsynced after each batch it takes.
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(server); // SIGKILL
    tokio::task::block_in_place(|| cluster.resume());
    let (_server, base, log) = tokio::task::block_in_place(|| serve(&workspace, &[]));
    wait_until_ready_and_replayed(&client, &base, &log).await;
    wait_for_ledger_rows(&url, 1 + DOWNLOADS_WHILE_DOWN as i64 + 300, &log).await;
    assert!(
        read(&log).contains("holds lines from an earlier run"),
        "{}",
        read(&log)
    );
}

/// Sends `bytes` and reads until the server closes the connection; returns how long that took.
fn until_closed(stream: &mut TcpStream, limit: Duration) -> Duration {
    let started = Instant::now();
    stream.set_read_timeout(Some(limit)).expect("read timeout");
    let mut buffer = [0u8; 1024];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => return started.elapsed(),
            Ok(_) => {}
            Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => {
                return started.elapsed()
            }
            Err(error) => {
                panic!("the server did not close the connection within {limit:?}: {error}")
            }
        }
    }
}

#[test]
fn slow_and_idle_clients_are_disconnected_and_excess_connections_get_a_clear_503() {
    let workspace = Workspace::new();
    let (_server, base, log) = serve(
        &workspace,
        &[
            ("FORMULARY_HEADER_READ_TIMEOUT_SECONDS", "1"),
            ("FORMULARY_IDLE_TIMEOUT_SECONDS", "2"),
            ("FORMULARY_MAX_CONNECTIONS", "8"),
        ],
    );
    let address = base.trim_start_matches("http://").to_owned();

    // Slowloris: a header line every 300 ms, never finishing.
    let mut slow = TcpStream::connect(&address).expect("connects");
    slow.write_all(b"GET /livez HTTP/1.1\r\nHost: x\r\n")
        .expect("writes");
    let started = Instant::now();
    let dripping = std::thread::spawn({
        let mut slow = slow.try_clone().expect("clone");
        move || {
            while slow.write_all(b"X-Slow: 1\r\n").is_ok() {
                std::thread::sleep(Duration::from_millis(300));
            }
        }
    });
    let took = until_closed(&mut slow, Duration::from_secs(5));
    let took = took.max(started.elapsed());
    dripping.join().expect("the dripping thread ends");
    eprintln!("slowloris connection closed after {took:?}");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_millis(2500),
        "closed within the 1 s header timeout (and its check interval): {took:?}"
    );
    assert!(
        read(&log).contains("request headers did not arrive in time"),
        "{}",
        read(&log)
    );

    // A connection that sends nothing at all is closed by the same timeout.
    let mut silent = TcpStream::connect(&address).expect("connects");
    let took = until_closed(&mut silent, Duration::from_secs(5));
    assert!(took < Duration::from_millis(2500), "{took:?}");

    // A kept-alive connection: answered, then closed after the idle timeout.
    let mut kept = TcpStream::connect(&address).expect("connects");
    kept.write_all(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("writes");
    let mut answer = [0u8; 512];
    let read_bytes = kept.read(&mut answer).expect("answer");
    assert!(answer[..read_bytes].starts_with(b"HTTP/1.1 200"));
    let took = until_closed(&mut kept, Duration::from_secs(6));
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_millis(3500),
        "idle keep-alive closed after about 2 s: {took:?}"
    );

    // Eight connections hold every place; the ninth is told why, in problem+json.
    let holders: Vec<TcpStream> = (0..8)
        .map(|_| {
            let mut holder = TcpStream::connect(&address).expect("connects");
            holder
                .write_all(b"GET /livez HTTP/1.1\r\n")
                .expect("writes");
            holder
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut extra = TcpStream::connect(&address).expect("connects");
    extra
        .write_all(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("writes");
    extra
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut refusal = String::new();
    extra.read_to_string(&mut refusal).expect("the refusal");
    assert!(refusal.starts_with("HTTP/1.1 503"), "{refusal}");
    assert!(refusal.contains("application/problem+json"), "{refusal}");
    assert!(refusal.contains("max_connections"), "{refusal}");
    drop(holders);
    // Places free up once the holders are gone.
    std::thread::sleep(Duration::from_millis(1500));
    let mut after = TcpStream::connect(&address).expect("connects");
    after
        .write_all(b"GET /livez HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("writes");
    let mut answer = String::new();
    after.read_to_string(&mut answer).expect("answer");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[test]
fn sigterm_with_a_stalled_download_exits_within_the_shutdown_deadline() {
    let workspace = Workspace::new();
    // Larger than any socket buffers, so a client that stops reading stalls the transfer.
    const SIZE: usize = 48 * 1024 * 1024;
    import_wheels(&workspace, &[("stalled", SIZE)]);
    let (mut server, base, log) =
        serve(&workspace, &[("FORMULARY_SHUTDOWN_DEADLINE_SECONDS", "2")]);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let file = runtime.block_on(file_url(&reqwest::Client::new(), &base, "stalled"));
    let path = file.trim_start_matches(&base).to_owned();
    let address = base.trim_start_matches("http://").to_owned();
    let mut stalled = TcpStream::connect(&address).expect("connects");
    stalled
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .expect("writes");
    // Read the head and a little of the body, then stop reading.
    let mut start = [0u8; 4096];
    let got = stalled.read(&mut start).expect("the download starts");
    assert!(
        start[..got].starts_with(b"HTTP/1.1 200"),
        "{}",
        text(&start[..got])
    );
    std::thread::sleep(Duration::from_millis(500));

    let pid = server.0.id().to_string();
    let started = Instant::now();
    let status = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let exit = loop {
        if let Some(exit) = server.0.try_wait().expect("wait") {
            break exit;
        }
        assert!(
            Instant::now() < deadline,
            "still running 10 s after SIGTERM: {}",
            read(&log)
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let took = started.elapsed();
    eprintln!("exited {took:?} after SIGTERM with a stalled download");
    assert!(exit.success(), "{exit:?}: {}", read(&log));
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_millis(4500),
        "the 2 s deadline, then a prompt exit: {took:?}"
    );
    let log = read(&log);
    assert!(
        log.contains("cut a connection at the shutdown deadline"),
        "{log}"
    );
    assert!(log.contains("doing=\"sending a response\""), "{log}");
    drop(stalled);
}
