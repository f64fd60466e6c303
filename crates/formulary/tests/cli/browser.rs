//! The web UI in a real browser: headless Debian chromium driven by `playwright-core`
//! (tests/browser/*.js) against `formulary serve` on a real socket, with the real pip before and
//! after. Screenshots of every step are kept in `target/browser-screenshots/<case>/`.
//!
//! Needs `node` and Debian's `chromium` (`apt-get install nodejs npm chromium`; `scripts/test`
//! installs chromium when it runs as root); `npm ci` runs in tests/browser when its
//! node_modules is missing. Set `CHROMIUM` to use another chromium binary.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

use crate::formulary_cli::{repo_root, text, Running, Workspace};
use crate::gateway_pypi::{pip, static_upstream, venv};

/// Every account's password (the browser scripts read it from `FORMULARY_TEST_PASSWORD`).
pub(crate) const PASSWORD: &str = "correct horse battery staple";

/// The people the scripts sign in as: username, name shown, role. The scripts check the names.
const PEOPLE: [(&str, &str, &str); 3] = [
    ("ana", "Ana Analyst", "RJ1:requester"),
    ("rob", "Rob Reviewer", "RJ1:reviewer"),
    ("aisha", "Aisha Approver", "RJ1:approver"),
];

/// A trust whose PyPI view is curated (nothing unapproved is served), its requester, reviewer
/// and approver, and the server pulling from a local upstream of real wheels (six 1.16.0 among
/// them). Returns the workspace, the upstream, the server and its base URL.
fn setup() -> (Workspace, Running, Running, String) {
    let workspace = Workspace::new();
    workspace.ok(&["org", "add", "RJ1", "--name", "Browser Test Trust"]);
    workspace.ok(&[
        "org",
        "settings",
        "RJ1",
        "--ecosystem",
        "pypi",
        "--stance",
        "curated",
    ]);
    for (username, name, role) in PEOPLE {
        workspace.add_user(username, name, &[role], PASSWORD);
    }
    let (upstream, upstream_url) = static_upstream(&workspace.folder.path().join("upstream"));
    let (server, base) = workspace.serve(&[
        ("FORMULARY_PYPI_UPSTREAMS", format!("[\"{upstream_url}\"]")),
        ("FORMULARY_INDEX_REVALIDATE_SECONDS", "0".to_owned()),
        ("FORMULARY_UPSTREAM_TIMEOUT_SECONDS", "5".to_owned()),
    ]);
    (workspace, upstream, server, base)
}

/// The chromium the scripts drive; panics with how to install it when it is missing.
fn chromium() -> String {
    let path = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
    assert!(
        Path::new(&path).exists(),
        "the browser tests need Debian's chromium at {path}: run `apt-get install chromium` \
         (scripts/test does when run as root), or set CHROMIUM to a chromium binary"
    );
    path
}

/// tests/browser with its node_modules: runs `npm ci` there when they are missing, once even
/// when several test processes start together.
fn browser_tests() -> PathBuf {
    node_folder("tests/browser", "playwright-core")
}

/// A folder of Node.js scripts (relative to the repository) with its node_modules: runs
/// `npm ci` there when `package` is missing, once even when several test processes start
/// together.
pub(crate) fn node_folder(relative: &str, package: &str) -> PathBuf {
    let folder = repo_root().join(relative);
    let installed = folder.join(format!("node_modules/{package}/package.json"));
    let node = Command::new("node").arg("--version").output();
    assert!(
        node.is_ok_and(|output| output.status.success()),
        "the browser tests need Node.js: run `apt-get install nodejs npm`"
    );
    let lock = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("{}-npm-ci.lock", relative.replace('/', "-")));
    let deadline = Instant::now() + Duration::from_secs(300);
    while !installed.exists() {
        assert!(
            Instant::now() < deadline,
            "npm ci in {} did not finish in 5 minutes",
            folder.display()
        );
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&lock)
        {
            Ok(_) => {
                let output = if installed.exists() {
                    None
                } else {
                    Some(
                        Command::new("npm")
                            .args(["ci", "--no-audit", "--no-fund"])
                            .current_dir(&folder)
                            .output(),
                    )
                };
                let _ = std::fs::remove_file(&lock);
                if let Some(output) = output {
                    let output = output.expect(
                        "the Node.js tests need npm to install their packages: run `apt-get install npm`",
                    );
                    assert!(
                        output.status.success(),
                        "npm ci in {} failed (it needs the npm registry once): {}{}",
                        folder.display(),
                        text(&output.stdout),
                        text(&output.stderr)
                    );
                }
            }
            Err(_) => {
                // Another test process is installing; a lock older than 5 minutes is stale.
                let stale = std::fs::metadata(&lock)
                    .and_then(|metadata| metadata.modified())
                    .is_ok_and(|modified| {
                        SystemTime::now()
                            .duration_since(modified)
                            .is_ok_and(|age| age > Duration::from_secs(300))
                    });
                if stale {
                    let _ = std::fs::remove_file(&lock);
                }
                std::thread::sleep(Duration::from_millis(250));
            }
        }
    }
    folder
}

/// Where one case's screenshots go: `target/browser-screenshots/<case>`.
fn screenshot_folder(case: &str) -> PathBuf {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the target folder")
        .to_path_buf();
    target.join("browser-screenshots").join(case)
}

/// Runs `node tests/browser/<case>.js` against `base` and insists that it passes.
fn run_case(case: &str, base: &str) {
    run_script(case, case, base, &[], 5);
}

/// Runs `node tests/browser/<script>.js` against `base` with extra environment, keeping its
/// screenshots in `target/browser-screenshots/<case>`, and insists that it passes and leaves
/// at least `least_shots` screenshots.
pub(crate) fn run_script(
    script: &str,
    case: &str,
    base: &str,
    environment: &[(&str, String)],
    least_shots: usize,
) {
    let chromium = chromium();
    let folder = browser_tests();
    let screenshots = screenshot_folder(case);
    let started = Instant::now();
    let output = Command::new("node")
        .arg(folder.join(format!("{script}.js")))
        .current_dir(repo_root())
        .env("BASE_URL", base)
        .env("SCREENSHOT_DIR", &screenshots)
        .env("FORMULARY_TEST_PASSWORD", PASSWORD)
        .env("CHROMIUM", chromium)
        .envs(
            environment
                .iter()
                .map(|(name, value)| (*name, value.as_str())),
        )
        .output()
        .expect("node runs");
    assert!(
        output.status.success(),
        "the browser case {case} failed after {:.1} s (screenshots in {}):\n{}{}",
        started.elapsed().as_secs_f64(),
        screenshots.display(),
        text(&output.stdout),
        text(&output.stderr)
    );
    let shots = std::fs::read_dir(&screenshots)
        .map(|items| items.count())
        .unwrap_or(0);
    assert!(
        shots >= least_shots,
        "the browser case {case} should leave a screenshot per step in {}; found {shots}",
        screenshots.display()
    );
}

/// `GET url`: the status and the body.
fn get(url: &str) -> (u16, String) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let answer = reqwest::get(url).await.expect("GET answers");
        let status = answer.status().as_u16();
        (status, answer.text().await.expect("a body"))
    })
}

fn get_json(url: &str) -> Value {
    let (status, body) = get(url);
    assert_eq!(status, 200, "GET {url}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|error| panic!("GET {url}: {error}: {body}"))
}

#[test]
fn journey_from_request_to_install_in_a_real_browser() {
    let (workspace, _upstream, _server, base) = setup();
    let index = format!("{base}/o/RJ1/pypi/simple/");

    // Before: RJ1 is curated and nobody approved six, so pip cannot have it.
    let before = venv(workspace.folder.path(), "before");
    let refused = pip(&before, &index, "six");
    // pip reaches the refused download of the newest version and prints why, with the link.
    assert!(
        !refused.status.success()
            && text(&refused.stderr)
                .contains("Blocked by Formulary: six is not in RJ1's formulary")
            && text(&refused.stderr).contains("/requests/new?component=pkg:pypi/six"),
        "six must not install from RJ1's curated view before it is approved: {}{}",
        text(&refused.stdout),
        text(&refused.stderr)
    );

    run_case("journey", &base);

    // After: the approval reached the gateway, the public log, the metrics and the audit log.
    let after = venv(workspace.folder.path(), "after");
    let installed = pip(&after, &index, "six");
    assert!(
        installed.status.success(),
        "six should install from RJ1's view once approved: {}{}",
        text(&installed.stdout),
        text(&installed.stderr)
    );
    assert!(
        text(&installed.stdout).contains("Successfully installed six-1.16.0"),
        "{}",
        text(&installed.stdout)
    );
    let verified = workspace.run(&["audit", "verify"]);
    assert!(
        verified.status.success(),
        "formulary audit verify: {}{}",
        text(&verified.stdout),
        text(&verified.stderr)
    );
    let decisions = get_json(&format!("{base}/api/v1/decisions?q=six"));
    let rows = decisions.as_array().expect("a list of decisions");
    assert!(
        rows.iter().any(|row| row["decision"] == "approved"
            && row["organisation"] == "RJ1"
            && row["component"].to_string().contains("six")),
        "the decision log should hold six approved for RJ1: {decisions}"
    );
    let metrics = get_json(&format!("{base}/api/v1/metrics"));
    assert_eq!(
        metrics["requests_by_state"]["approved"], 1,
        "the metrics should count one approved request: {metrics}"
    );
}

#[test]
fn conda_components_are_requested_and_listed_in_a_real_browser() {
    let (_workspace, _upstream, _server, base) = setup();
    run_case("conda", &base);
}

#[test]
fn upstream_evidence_on_the_component_page_in_a_real_browser() {
    let (_workspace, _upstream, _server, base) = setup();
    run_case("evidence", &base);
}

#[test]
fn forms_show_accessible_error_summaries_in_a_real_browser() {
    let (_workspace, _upstream, _server, base) = setup();
    run_case("errors", &base);
}

#[test]
fn an_organisation_admin_manages_people_and_settings_in_a_real_browser() {
    let (workspace, _upstream, _server, base) = setup();
    workspace.ok(&["org", "add", "RQM", "--name", "Another Trust"]);
    workspace.add_user("olu", "Olu Admin", &["RJ1:organisation-admin"], PASSWORD);
    run_case("admin", &base);

    // What the pages did is in the records: the account, its roles, the settings, the
    // exception, the revoked token, the review policy; and the audit chain still verifies.
    let users = workspace.ok(&["admin", "user", "list"]);
    assert!(
        users.contains("nina.k") && users.contains("RJ1:reviewer"),
        "the account added in the browser should exist with its granted role: {users}"
    );
    // Nina signs in with the password she chose through the link.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let status = runtime.block_on(async {
        reqwest::Client::new()
            .post(format!("{base}/api/v1/session/token"))
            .json(&serde_json::json!({ "username": "nina.k", "password": "lantern orchard copper meadow" }))
            .send()
            .await
            .expect("login answers")
            .status()
            .as_u16()
    });
    assert_eq!(
        status, 201,
        "nina.k should sign in with the password chosen in the browser"
    );
    let settings = get_json(&format!("{base}/api/v1/organisations/RJ1/settings"));
    assert_eq!(
        settings["pypi"]["severity_threshold"], "medium",
        "{settings}"
    );
    assert_eq!(settings["pypi"]["cooldown_days"], 14, "{settings}");
    let entries = get_json(&format!("{base}/api/v1/entries?organisation=RJ1"));
    assert!(
        entries
            .as_array()
            .is_some_and(|entries| entries.iter().any(|entry| {
                entry["expires"] == "2099-06-30"
                    && entry["waives"].to_string().contains("PYSEC-2018-28")
            })),
        "the exception should be recorded with its expiry: {entries}"
    );
    let verified = workspace.run(&["audit", "verify"]);
    assert!(
        verified.status.success(),
        "formulary audit verify: {}{}",
        text(&verified.stdout),
        text(&verified.stderr)
    );
}

#[test]
fn surveillance_metrics_who_has_and_recall_pages_in_a_real_browser() {
    let (workspace, _upstream, _server, base) = setup();
    workspace.add_user("audrey", "Audrey Auditor", &["NATIONAL:auditor"], PASSWORD);
    // RJ1's CI reports an environment holding requests 2.19.1; a curator recalls that version
    // by hand (a national cyber alert).
    let secret = crate::surveillance::token(&workspace, "ci", "requester", "RJ1");
    let lock = workspace.folder.path().join("requirements.txt");
    std::fs::write(&lock, "requests==2.19.1\n").expect("lockfile");
    let reported = crate::surveillance::as_client(
        &workspace,
        &base,
        &secret,
        &[
            "report",
            &lock.display().to_string(),
            "--org",
            "RJ1",
            "--environment",
            "analysis-laptop",
            "--kind",
            "machine",
        ],
    );
    assert!(reported.status.success(), "{}", text(&reported.stderr));
    let opened = workspace.ok(&[
        "recall",
        "open",
        "pkg:pypi/requests",
        "--version",
        "2.19.1",
        "--reason",
        "National cyber alert CC-4321: upgrade requests",
        "--move-to",
        "2.32.3",
    ]);
    let id = opened
        .split_whitespace()
        .find(|word| word.starts_with("rc-"))
        .unwrap_or_else(|| panic!("a recall id in {opened}"))
        .to_owned();
    run_script(
        "surveillance",
        "surveillance",
        &base,
        &[("RECALL_ID", id)],
        4,
    );
}
