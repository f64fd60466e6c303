//! Faults of the upstream, injected for real with a fault-injecting PEP 503 upstream in front of
//! the gateway, and met by the real pip and uv: an upstream that accepts and never answers (with
//! packages cached and not), 500s, an empty or truncated 200 index, and a large file the index
//! gives no size for. Each test asserts what the client sees, how long it waited, and what the
//! cache holds afterwards.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::formulary_cli::{text, Workspace};
use crate::gateway_pypi::{pip, venv};
use crate::reliability::serve;

/// What the upstream does with the requests that arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Fault {
    /// Answers properly.
    None = 0,
    /// Accepts the connection, reads the request, never answers.
    Hang = 1,
    /// 500 to everything.
    ServerError = 2,
    /// 200 with an index page that lists nothing.
    Empty = 3,
    /// 200 with an index page that lists only the first file.
    Truncated = 4,
}

/// A PEP 503 upstream whose behaviour the test switches.
pub(crate) struct FaultyUpstream {
    /// `http://127.0.0.1:PORT`.
    origin: String,
    fault: Arc<AtomicU8>,
}

/// A file the upstream serves: its bytes, and how long to pause between 256 KiB chunks.
pub(crate) type Files = BTreeMap<String, (Vec<u8>, Duration)>;

impl FaultyUpstream {
    pub(crate) fn start(projects: BTreeMap<String, Files>) -> FaultyUpstream {
        FaultyUpstream::start_with(projects, None)
    }

    /// An upstream that serves the files under `root` as they are (a CRAN repository).
    pub(crate) fn serving(root: &Path) -> FaultyUpstream {
        FaultyUpstream::start_with(BTreeMap::new(), Some(root.to_path_buf()))
    }

    fn start_with(projects: BTreeMap<String, Files>, root: Option<PathBuf>) -> FaultyUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let origin = format!("http://{}", listener.local_addr().expect("address"));
        let fault = Arc::new(AtomicU8::new(Fault::None as u8));
        let projects = Arc::new(projects);
        let root = Arc::new(root);
        let shared = Arc::clone(&fault);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (fault, projects, root) = (
                    Arc::clone(&shared),
                    Arc::clone(&projects),
                    Arc::clone(&root),
                );
                std::thread::spawn(move || answer(stream, &fault, &projects, root.as_deref()));
            }
        });
        FaultyUpstream { origin, fault }
    }

    pub(crate) fn set(&self, fault: Fault) {
        self.fault.store(fault as u8, Ordering::SeqCst);
    }

    pub(crate) fn index(&self) -> String {
        format!("{}/simple/", self.origin)
    }

    /// `http://127.0.0.1:PORT`.
    pub(crate) fn origin(&self) -> &str {
        &self.origin
    }
}

fn answer(
    mut stream: TcpStream,
    fault: &AtomicU8,
    projects: &BTreeMap<String, Files>,
    root: Option<&Path>,
) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut request_line = String::new();
    let _ = reader.read_line(&mut request_line);
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).map_or(true, |read| read == 0) || header == "\r\n" {
            break;
        }
    }
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .to_owned();
    let now = fault.load(Ordering::SeqCst);
    if now == Fault::Hang as u8 {
        // Hold the connection open without a byte until the fault is lifted (or two minutes).
        let started = Instant::now();
        while fault.load(Ordering::SeqCst) == Fault::Hang as u8
            && started.elapsed() < Duration::from_secs(120)
        {
            std::thread::sleep(Duration::from_millis(50));
        }
        return;
    }
    if now == Fault::ServerError as u8 {
        let _ = write!(
            stream,
            "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        return;
    }
    if let Some(root) = root {
        let relative = path.trim_start_matches('/');
        let file = root.join(relative);
        match std::fs::read(&file) {
            Ok(body) if !relative.contains("..") && file.is_file() => {
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(&body);
            }
            _ => {
                let _ = write!(
                    stream,
                    "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
            }
        }
        return;
    }
    if let Some(project) = path
        .strip_prefix("/simple/")
        .map(|rest| rest.trim_end_matches('/'))
    {
        let Some(files) = projects.get(project) else {
            let _ = write!(
                stream,
                "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            return;
        };
        let listed = match now {
            x if x == Fault::Empty as u8 => 0,
            x if x == Fault::Truncated as u8 => 1,
            _ => files.len(),
        };
        let links: String = files
            .iter()
            .take(listed)
            .map(|(name, (bytes, _))| {
                format!(
                    "<a href=\"/files/{name}#sha256={}\">{name}</a><br>\n",
                    hex::encode(Sha256::digest(bytes))
                )
            })
            .collect();
        let body = format!("<!DOCTYPE html><html><body>\n{links}</body></html>\n");
        let _ = write!(stream, "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
        return;
    }
    let found = path
        .strip_prefix("/files/")
        .and_then(|name| projects.values().find_map(|files| files.get(name)));
    let Some((bytes, pause)) = found else {
        let _ = write!(
            stream,
            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        return;
    };
    let _ = write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        bytes.len()
    );
    for chunk in bytes.chunks(256 * 1024) {
        if stream.write_all(chunk).is_err() {
            return;
        }
        std::thread::sleep(*pause);
    }
}

/// Wheels of `project` at `versions`, each with `payload` random bytes, as upstream files.
pub(crate) fn wheels(
    folder: &Path,
    project: &str,
    versions: &[&str],
    payload: usize,
    pause: Duration,
) -> Files {
    let script = "import os, sys, zipfile\n\
        folder, project, size = sys.argv[1], sys.argv[2], int(sys.argv[3])\n\
        for version in sys.argv[4:]:\n\
        \x20   path = os.path.join(folder, f'{project}-{version}-py3-none-any.whl')\n\
        \x20   with zipfile.ZipFile(path, 'w', zipfile.ZIP_STORED) as wheel:\n\
        \x20       wheel.writestr(f'{project}/__init__.py', b'')\n\
        \x20       wheel.writestr(f'{project}/payload.bin', os.urandom(size))\n\
        \x20       wheel.writestr(f'{project}-{version}.dist-info/METADATA', f'Metadata-Version: 2.1\\nName: {project}\\nVersion: {version}\\nLicense: MIT\\n')\n\
        \x20       wheel.writestr(f'{project}-{version}.dist-info/WHEEL', 'Wheel-Version: 1.0\\nGenerator: test\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n')\n\
        \x20       wheel.writestr(f'{project}-{version}.dist-info/RECORD', '')\n";
    std::fs::create_dir_all(folder).expect("folder");
    let output = Command::new("python3")
        .args(["-c", script])
        .arg(folder)
        .args([project, &payload.to_string()])
        .args(versions)
        .output()
        .expect("python3 runs");
    assert!(output.status.success(), "{}", text(&output.stderr));
    versions
        .iter()
        .map(|version| {
            let name = format!("{project}-{version}-py3-none-any.whl");
            let bytes = std::fs::read(folder.join(&name)).expect("wheel");
            (name, (bytes, pause))
        })
        .collect()
}

fn uv(venv: &Path, index: &str, requirement: &str) -> Output {
    Command::new("uv")
        .args(["pip", "install", "--no-cache", "--python"])
        .arg(venv.join("bin/python"))
        .args(["--index-url", index, requirement])
        .env("UV_NO_CONFIG", "1")
        .env_remove("PIP_FIND_LINKS")
        .output()
        .expect("uv runs (scripts/test installs it)")
}

/// GETs `url` (JSON index pages when asked), returning status, headers, body and wait.
async fn get(
    client: &reqwest::Client,
    url: &str,
) -> (u16, reqwest::header::HeaderMap, Vec<u8>, Duration) {
    let started = Instant::now();
    let response = client
        .get(url)
        .header("Accept", "application/vnd.pypi.simple.v1+json")
        .send()
        .await
        .expect("an answer");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.bytes().await.expect("body").to_vec();
    (status, headers, body, started.elapsed())
}

fn json(body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap_or(Value::Null)
}

/// The state of the gateway's one upstream server, from `/api/v1/upstreams`.
async fn upstream_state(client: &reqwest::Client, base: &str) -> Value {
    let (_, _, body, _) = get(client, &format!("{base}/api/v1/upstreams")).await;
    json(&body)
        .as_array()
        .and_then(|gateways| {
            gateways
                .iter()
                .find(|gateway| gateway["ecosystem"] == "pypi")
        })
        .cloned()
        .unwrap_or(Value::Null)
}

fn count(log: &Path, needle: &str) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .matches(needle)
        .count()
}

/// The patience of a request with a cached copy is 1.5 s; "within 2 s" leaves room for a
/// loaded 2-core machine.
const CACHED_WITHIN: Duration = Duration::from_secs(2);

crate::on_both_databases!(async fn a_hung_upstream_never_delays_cached_packages_and_uncached_ones_get_a_clear_504);
async fn a_hung_upstream_never_delays_cached_packages_and_uncached_ones_get_a_clear_504() {
    let workspace = Workspace::new();
    let folder = workspace.folder.path().join("made");
    let mut projects = BTreeMap::new();
    projects.insert(
        "calm".to_owned(),
        wheels(&folder, "calm", &["1.0", "1.5"], 1000, Duration::ZERO),
    );
    projects.insert(
        "fresh".to_owned(),
        wheels(&folder, "fresh", &["1.0"], 1000, Duration::ZERO),
    );
    let upstream = FaultyUpstream::start(projects);
    let upstreams = format!("[\"{}\"]", upstream.index());
    let (_server, base, log) = serve(
        &workspace,
        &[
            ("FORMULARY_PYPI_UPSTREAMS", upstreams.as_str()),
            ("FORMULARY_INDEX_REVALIDATE_SECONDS", "0"),
            ("FORMULARY_UPSTREAM_TIMEOUT_SECONDS", "5"),
        ],
    );
    let index = format!("{base}/pypi/simple/");
    let client = reqwest::Client::new();

    // Cached through the gateway while the upstream answers.
    let first = venv(workspace.folder.path(), "first");
    let output = pip(&first, &index, "calm");
    assert!(output.status.success(), "{}", text(&output.stderr));

    // The upstream hangs: the cached page and file come within the patience, marked stale.
    // Twenty clients at once, while the first revalidation waits on the hung upstream.
    upstream.set(Fault::Hang);
    let page_url = format!("{index}calm/");
    let answers = futures_util::future::join_all((0..20).map(|_| get(&client, &page_url))).await;
    let slowest = answers
        .iter()
        .map(|answer| answer.3)
        .max()
        .unwrap_or_default();
    for (status, headers, body, _) in &answers {
        assert_eq!(*status, 200, "{}", String::from_utf8_lossy(body));
        assert!(headers.contains_key("x-formulary-stale"));
    }
    assert!(
        slowest < CACHED_WITHIN,
        "slowest of 20 concurrent clients: {slowest:?}"
    );
    eprintln!("upstream hung: 20 concurrent clients served the cached page, the slowest after {slowest:?}");
    let (status, headers, body, waited) = get(&client, &page_url).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert!(waited < CACHED_WITHIN, "cached page after {waited:?}");
    eprintln!("upstream hung: cached page (next request) after {waited:?}");
    assert!(headers.contains_key("x-formulary-stale"));
    let page = json(&body);
    let file = page["files"]
        .as_array()
        .and_then(|files| {
            files
                .iter()
                .find(|file| file["filename"] == "calm-1.5-py3-none-any.whl")
        })
        .and_then(|file| file["url"].as_str())
        .expect("calm 1.5 listed")
        .to_owned();
    let file_url = url::Url::parse(&format!("{index}calm/"))
        .and_then(|page| page.join(&file))
        .expect("file URL")
        .to_string();
    let (status, _, body, waited) = get(&client, &file_url).await;
    assert_eq!(status, 200);
    assert!(waited < CACHED_WITHIN, "cached file after {waited:?}");
    assert!(body.len() > 1000);
    eprintln!("upstream hung: cached file after {waited:?}");

    // The real clients install the cached package well within their timeouts.
    for (tool, target) in [("pip", "pip-hung"), ("uv", "uv-hung")] {
        let environment = venv(workspace.folder.path(), target);
        let started = Instant::now();
        let output = if tool == "pip" {
            pip(&environment, &index, "calm==1.5")
        } else {
            uv(&environment, &index, "calm==1.5")
        };
        let took = started.elapsed();
        assert!(
            output.status.success(),
            "{tool} with the upstream hung: {}",
            text(&output.stderr)
        );
        assert!(took < Duration::from_secs(10), "{tool} took {took:?}");
        eprintln!("{tool} installed a cached package with the upstream hung in {took:?}");
    }

    // Nothing cached: a 504 problem+json naming the upstream, within the 5 s budget.
    let (status, headers, body, waited) = get(&client, &format!("{index}fresh/")).await;
    assert_eq!(status, 504, "{}", String::from_utf8_lossy(&body));
    assert_eq!(
        headers
            .get("content-type")
            .and_then(|value| value.to_str().ok()),
        Some("application/problem+json")
    );
    let problem = json(&body);
    let host = upstream.origin.trim_start_matches("http://");
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|detail| detail.contains(host)),
        "{problem}"
    );
    assert!(waited < Duration::from_secs(7), "504 after {waited:?}");
    eprintln!("upstream hung, nothing cached: 504 after {waited:?}");

    // Failures in a row take the upstream down: uncached requests then fail at once.
    let deadline = Instant::now() + Duration::from_secs(30);
    while upstream_state(&client, &base).await["upstreams"][0]["state"] != "down" {
        assert!(
            Instant::now() < deadline,
            "never down: {}",
            upstream_state(&client, &base).await
        );
        let _ = get(&client, &format!("{index}fresh/")).await;
    }
    let (status, _, body, waited) = get(&client, &format!("{index}fresh/")).await;
    assert_eq!(status, 504);
    let problem = json(&body);
    assert_eq!(problem["title"], "Upstream is down", "{problem}");
    assert!(
        waited < Duration::from_millis(500),
        "fails fast while down: {waited:?}"
    );
    eprintln!("upstream down, nothing cached: 504 after {waited:?}");
    let (status, _, body, waited) = get(&client, &format!("{index}calm/")).await;
    assert_eq!(status, 200);
    assert!(
        waited < Duration::from_millis(500),
        "cached at once while down: {waited:?}"
    );
    eprintln!("upstream down: cached page after {waited:?}");
    drop(body);
    let (status, _, body, _) = get(&client, &format!("{base}/readyz")).await;
    let ready = json(&body);
    assert_eq!(
        (status, &ready["upstreams"]["status"]),
        (200, &Value::from("degraded")),
        "{ready}"
    );
    let (_, _, body, _) = get(&client, &format!("{base}/status")).await;
    let page = String::from_utf8_lossy(&body);
    assert!(page.contains("Down") && page.contains(host), "{page}");

    // The upstream recovers: the background probe notices, and uncached packages come again.
    upstream.set(Fault::None);
    let recovering = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(30);
    while upstream_state(&client, &base).await["upstreams"][0]["state"] != "healthy" {
        assert!(
            Instant::now() < deadline,
            "never healthy again: {}",
            upstream_state(&client, &base).await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "upstream healthy again {:?} after the fault was lifted",
        recovering.elapsed()
    );
    let (status, _, _, _) = get(&client, &format!("{index}fresh/")).await;
    assert_eq!(status, 200);
    // Each transition is logged once.
    assert_eq!(
        count(&log, "upstream is down"),
        1,
        "{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert_eq!(count(&log, "upstream is back"), 1);
}

/// An upstream with six versions of the project `calm`, whose faults the test sets.
fn calm_upstream(workspace: &Workspace) -> FaultyUpstream {
    let folder = workspace.folder.path().join("made");
    let versions = ["1.0", "1.1", "1.2", "1.3", "1.4", "1.5"];
    let mut projects = BTreeMap::new();
    projects.insert(
        "calm".to_owned(),
        wheels(&folder, "calm", &versions, 100, Duration::ZERO),
    );
    FaultyUpstream::start(projects)
}

/// Files listed by a PEP 691 page.
fn listed(body: &[u8]) -> usize {
    json(body)["files"].as_array().map_or(0, Vec::len)
}

crate::on_both_databases!(async fn a_wrong_upstream_index_never_silently_replaces_a_good_one);
async fn a_wrong_upstream_index_never_silently_replaces_a_good_one() {
    let workspace = Workspace::new();
    let upstream = calm_upstream(&workspace);
    let upstreams = format!("[\"{}\"]", upstream.index());
    let (_server, base, log) = serve(
        &workspace,
        &[
            ("FORMULARY_PYPI_UPSTREAMS", upstreams.as_str()),
            ("FORMULARY_INDEX_REVALIDATE_SECONDS", "0"),
            ("FORMULARY_UPSTREAM_TIMEOUT_SECONDS", "5"),
        ],
    );
    let page = format!("{base}/pypi/simple/calm/");
    let client = reqwest::Client::new();
    let (status, _, body, _) = get(&client, &page).await;
    assert_eq!((status, listed(&body)), (200, 6));

    // A truncated page: held back, the cached page stays whole.
    upstream.set(Fault::Truncated);
    let (status, _, body, _) = get(&client, &page).await;
    assert_eq!(
        (status, listed(&body)),
        (200, 6),
        "a truncated page is held back"
    );
    let held = upstream_state(&client, &base).await;
    assert_eq!(held["held_back"][0]["document"], "calm", "{held}");
    assert_eq!(held["held_back"][0]["new_entries"], 1, "{held}");
    let (_, _, body, _) = get(&client, &format!("{base}/status")).await;
    assert!(String::from_utf8_lossy(&body).contains("most are gone"));

    // An empty "maintenance" page: held back too (a different document from the truncated one).
    upstream.set(Fault::Empty);
    let (_, _, body, _) = get(&client, &page).await;
    assert_eq!(listed(&body), 6, "an empty page is held back");
    // Seen a second time at the next revalidation, it is believed: projects do shrink.
    let (_, _, body, _) = get(&client, &page).await;
    assert_eq!(
        listed(&body),
        0,
        "the same empty page seen twice replaces the cached one"
    );
    assert!(count(&log, "held back until it is seen again") >= 2);
    assert_eq!(count(&log, "seen a second time"), 1);

    // The upstream recovers: the page is whole again and nothing is held back.
    upstream.set(Fault::None);
    let (_, _, body, _) = get(&client, &page).await;
    assert_eq!(listed(&body), 6);
    assert_eq!(
        upstream_state(&client, &base).await["held_back"],
        Value::Array(Vec::new())
    );

    // A 500: the cached page, marked stale.
    upstream.set(Fault::ServerError);
    let (status, headers, body, _) = get(&client, &page).await;
    assert_eq!((status, listed(&body)), (200, 6));
    assert!(headers.contains_key("x-formulary-stale"));
}

crate::on_both_databases!(async fn a_national_curator_accepts_a_held_back_index_at_once);
async fn a_national_curator_accepts_a_held_back_index_at_once() {
    let workspace = Workspace::new();
    let upstream = calm_upstream(&workspace);
    let upstreams = format!("[\"{}\"]", upstream.index());
    let token = |role: &str, organisation: &str| {
        workspace
            .ok(&[
                "token",
                "create",
                "--name",
                role,
                "--role",
                role,
                "--org",
                organisation,
            ])
            .trim()
            .to_owned()
    };
    let (curator, reviewer) = (
        token("national-curator", "NATIONAL"),
        token("reviewer", "NATIONAL"),
    );
    let (_server, base, log) = serve(
        &workspace,
        &[
            ("FORMULARY_PYPI_UPSTREAMS", upstreams.as_str()),
            // Revalidated every 2 s: the acceptance must not wait for the next revalidation.
            ("FORMULARY_INDEX_REVALIDATE_SECONDS", "2"),
            ("FORMULARY_UPSTREAM_TIMEOUT_SECONDS", "5"),
        ],
    );
    let page = format!("{base}/pypi/simple/calm/");
    let client = reqwest::Client::new();
    assert_eq!(listed(&get(&client, &page).await.2), 6);
    upstream.set(Fault::Truncated);
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    assert_eq!(listed(&get(&client, &page).await.2), 6, "held back");
    let held_at = std::time::Instant::now();

    let accept = |token: String, document: &str| {
        client
            .post(format!("{base}/api/v1/upstreams/held-back/accept"))
            .bearer_auth(token)
            .json(&serde_json::json!({ "ecosystem": "pypi", "document": document }))
            .send()
    };
    let refused = accept(reviewer, "calm").await.expect("answer");
    assert_eq!(refused.status(), 403);
    let unknown = accept(curator.clone(), "other").await.expect("answer");
    assert_eq!(unknown.status(), 404);
    let accepted = accept(curator.clone(), "calm").await.expect("answer");
    assert_eq!(accepted.status(), 200);
    let accepted: Value = accepted.json().await.expect("JSON");
    assert_eq!(accepted["new_entries"], 1, "{accepted}");
    assert_eq!(
        upstream_state(&client, &base).await["held_back"],
        Value::Array(Vec::new())
    );
    // The next request (before the next revalidation was due) believes the upstream.
    assert_eq!(listed(&get(&client, &page).await.2), 1, "accepted");
    assert!(
        held_at.elapsed() < Duration::from_secs(2),
        "{:?}",
        held_at.elapsed()
    );
    assert_eq!(
        count(&log, "an administrator accepted this upstream document"),
        1
    );
    let audit: Value = client
        .get(format!("{base}/api/v1/audit?limit=10000"))
        .bearer_auth(&curator)
        .send()
        .await
        .expect("audit")
        .json()
        .await
        .expect("audit JSON");
    assert!(
        audit.as_array().is_some_and(|rows| rows
            .iter()
            .any(|row| row["action"] == "upstream.accept-held"
                && row["subject"] == "pypi/default/calm")),
        "audited: {audit}"
    );
    // Once: the next wrong page is held back again.
    upstream.set(Fault::Empty);
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    assert_eq!(listed(&get(&client, &page).await.2), 1, "held back again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_file_of_unknown_size_streams_at_once_and_is_cached_only_when_verified() {
    let workspace = Workspace::new();
    let folder = workspace.folder.path().join("made");
    // 8 MiB sent in 32 chunks a tenth of a second apart: about 3 s in all.
    let mut projects = BTreeMap::new();
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
    projects.insert("bulky".to_owned(), files);
    let upstream = FaultyUpstream::start(projects);
    let upstreams = format!("[\"{}\"]", upstream.index());
    let (_server, base, _log) = serve(
        &workspace,
        &[
            ("FORMULARY_PYPI_UPSTREAMS", upstreams.as_str()),
            ("FORMULARY_INDEX_REVALIDATE_SECONDS", "0"),
            ("FORMULARY_UPSTREAM_TIMEOUT_SECONDS", "5"),
        ],
    );
    let client = reqwest::Client::new();
    let (_, _, page, _) = get(&client, &format!("{base}/pypi/simple/bulky/")).await;
    assert!(
        json(&page)["files"][0]
            .get("size")
            .is_none_or(Value::is_null),
        "the HTML index gives no size"
    );
    let url = format!("{base}/pypi/files/bulky/{name}");
    let started = Instant::now();
    let mut response = client.get(&url).send().await.expect("answer");
    assert_eq!(response.status(), 200);
    let mut received = Vec::new();
    let mut first_byte = None;
    while let Some(chunk) = response.chunk().await.expect("chunk") {
        first_byte.get_or_insert(started.elapsed());
        received.extend_from_slice(&chunk);
    }
    let whole = started.elapsed();
    let first_byte = first_byte.expect("bytes");
    assert_eq!(
        Sha256::digest(&received),
        Sha256::digest(&bytes),
        "every byte, in order"
    );
    // The first byte comes while most of the file is still on its way (a debug build on a
    // loaded machine takes about a second to start the stream).
    assert!(
        first_byte < Duration::from_secs(2) && first_byte * 2 < whole,
        "first byte after {first_byte:?} of {whole:?}"
    );
    assert!(
        whole > Duration::from_secs(2),
        "the upstream took {whole:?}"
    );
    eprintln!("8 MiB of unknown size: first byte after {first_byte:?}, whole after {whole:?}");

    // Verified and cached: served with the upstream hung, and `cache verify` agrees.
    upstream.set(Fault::Hang);
    let (status, _, body, waited) = get(&client, &url).await;
    assert_eq!(status, 200);
    assert!(waited < CACHED_WITHIN, "cached after {waited:?}");
    assert_eq!(Sha256::digest(&body), Sha256::digest(&bytes));
    let verified = workspace.run(&["cache", "verify"]);
    assert!(
        verified.status.success(),
        "{}{}",
        text(&verified.stdout),
        text(&verified.stderr)
    );
    upstream.set(Fault::None);
}

#[test]
fn r_reads_a_crlf_packages_index_with_a_broken_entry_through_the_gateway() {
    use crate::gateway_cran::{gateway, r, repository_folder};
    let workspace = Workspace::new();
    let root = workspace.folder.path().join("upstream");
    repository_folder(&root);
    // The upstream's PACKAGES: CRLF line ends and one entry without Version (R reads both).
    let contrib = root.join("src/contrib");
    let packages = std::fs::read_to_string(contrib.join("PACKAGES")).expect("PACKAGES");
    let damaged = format!("{packages}\nPackage: broken\nLicense: MIT\n").replace('\n', "\r\n");
    std::fs::write(contrib.join("PACKAGES"), damaged).expect("PACKAGES");
    for compiled in ["PACKAGES.gz", "PACKAGES.rds"] {
        let _ = std::fs::remove_file(contrib.join(compiled));
    }
    let (_upstream, upstream_url) = crate::formulary_cli::static_server(&root);
    let (_server, base) = gateway(&workspace, &format!("[\"{upstream_url}\"]"));
    let listed = |repository: &str| {
        r(&format!(
            "a <- available.packages(repos = '{repository}'); cat(sort(paste(a[, 'Package'], a[, 'Version'])), sep = ',')"
        ))
    };
    let direct = listed(upstream_url.trim_end_matches('/'));
    eprintln!("R reading the upstream directly: {}", text(&direct.stdout));
    let through = listed(&format!("{base}/cran"));
    assert!(through.status.success(), "{}", text(&through.stderr));
    assert_eq!(
        text(&through.stdout),
        "cellar 1.0.0,readxl 1.4.1",
        "every readable entry, the broken one skipped: {}",
        text(&through.stderr)
    );
    let library = workspace.folder.path().join("library");
    std::fs::create_dir_all(&library).expect("library");
    let installed = r(&format!(
        "install.packages('cellar', repos = '{base}/cran', lib = '{lib}', quiet = TRUE); cat(as.character(packageVersion('cellar', lib.loc = '{lib}')))",
        lib = library.display()
    ));
    assert_eq!(
        text(&installed.stdout),
        "1.0.0",
        "{}",
        text(&installed.stderr)
    );
}

#[test]
fn r_installs_cached_packages_with_the_upstream_hung() {
    use crate::gateway_cran::{gateway, r, repository_folder};
    let workspace = Workspace::new();
    let root = workspace.folder.path().join("upstream");
    repository_folder(&root);
    let upstream = FaultyUpstream::serving(&root);
    let (_server, base) = gateway(&workspace, &format!("[\"{}/\"]", upstream.origin));
    let install = |library: &str| {
        let library = workspace.folder.path().join(library);
        std::fs::create_dir_all(&library).expect("library");
        let started = Instant::now();
        let output = r(&format!(
            "install.packages('cellar', repos = '{base}/cran', lib = '{lib}', quiet = TRUE); cat(as.character(packageVersion('cellar', lib.loc = '{lib}')))",
            lib = library.display()
        ));
        (output, started.elapsed())
    };
    let (output, _) = install("first");
    assert_eq!(text(&output.stdout), "1.0.0", "{}", text(&output.stderr));

    upstream.set(Fault::Hang);
    let (output, took) = install("hung");
    assert_eq!(
        text(&output.stdout),
        "1.0.0",
        "R with the upstream hung: {}",
        text(&output.stderr)
    );
    eprintln!("R installed a cached package with the upstream hung in {took:?}");
    assert!(
        took < Duration::from_secs(15),
        "R took {took:?} (its own timeout is 60 s)"
    );
    upstream.set(Fault::None);
}
