//! The reference deployment (`deploy/local/run`): nginx in front of three replicas on a
//! PostgreSQL cluster the script creates and one blob store. pip and uv install through the load
//! balancer while the replicas are restarted one by one, and while one is killed with kill -9,
//! with no failed install. Needs nginx (scripts/test installs it) and PostgreSQL's server
//! programs; skipped when nginx is missing outside CI.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::formulary_cli::{free_port, repo_root, text};
use crate::gateway_pypi::{pip, static_upstream, uv, venv};

/// The deployment under test, stopped (and its state removed) when dropped.
struct Deployment {
    state: tempfile::TempDir,
    env: Vec<(&'static str, String)>,
}

impl Deployment {
    fn run(&self, args: &[&str]) -> Output {
        Command::new(repo_root().join("deploy/local/run"))
            .args(args)
            .envs(self.env.iter().map(|(name, value)| (*name, value.as_str())))
            .env("DEPLOY_DIR", self.state.path())
            .output()
            .expect("deploy/local/run runs")
    }

    fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "deploy/local/run {args:?} failed: {}{}\n{}",
            text(&output.stdout),
            text(&output.stderr),
            self.logs()
        );
        text(&output.stdout) + &text(&output.stderr)
    }

    fn logs(&self) -> String {
        let mut logs = String::new();
        for replica in 1..=3 {
            let path = self
                .state
                .path()
                .join(format!("replica{replica}/serve.log"));
            let content = std::fs::read_to_string(&path).unwrap_or_default();
            let tail: Vec<&str> = content.lines().rev().take(15).collect();
            logs.push_str(&format!("--- replica {replica}\n"));
            for line in tail.iter().rev() {
                logs.push_str(line);
                logs.push('\n');
            }
        }
        logs
    }
}

impl Drop for Deployment {
    fn drop(&mut self) {
        let _ = self.run(&["down"]);
    }
}

fn nginx_available() -> bool {
    Command::new("sh")
        .args(["-c", "command -v nginx || test -x /usr/sbin/nginx"])
        .output()
        .is_ok_and(|output| output.status.success())
}

/// Installs `requirement` with pip and uv in turns until `stop`, counting attempts and failures.
fn install_loop(
    root: &Path,
    index: String,
    stop: Arc<AtomicBool>,
    attempts: Arc<AtomicUsize>,
    failures: Arc<std::sync::Mutex<Vec<String>>>,
) -> std::thread::JoinHandle<()> {
    let environment = venv(root, "installs");
    std::thread::spawn(move || {
        let mut round = 0;
        while !stop.load(Ordering::SeqCst) {
            let output = if round % 2 == 0 {
                pip(&environment, &index, "requests==2.32.3")
            } else {
                uv(&environment, &index, "requests==2.32.3")
            };
            attempts.fetch_add(1, Ordering::SeqCst);
            if !output.status.success() {
                failures
                    .lock()
                    .expect("failures")
                    .push(text(&output.stderr));
            }
            // Reinstall next time.
            let _ = Command::new(environment.join("bin/python"))
                .args(["-m", "pip", "uninstall", "-y", "-q", "requests"])
                .output();
            round += 1;
        }
    })
}

#[test]
fn pip_and_uv_install_through_nginx_while_replicas_restart_one_by_one_or_die() {
    if !nginx_available() {
        assert!(
            std::env::var("FORMULARY_TEST_REQUIRE_POSTGRES").as_deref() != Ok("1"),
            "nginx is missing: scripts/test installs it (apt-get install nginx)"
        );
        eprintln!("skipping: nginx is not installed");
        return;
    }
    let root = tempfile::tempdir().expect("root");
    let (_upstream, upstream) = static_upstream(&root.path().join("upstream"));
    let lb_port = free_port();
    let deployment = Deployment {
        state: tempfile::Builder::new()
            .prefix("formulary-deploy-")
            .tempdir()
            .expect("state"),
        env: vec![
            ("FORMULARY_BIN", env!("CARGO_BIN_EXE_formulary").to_owned()),
            ("LB_PORT", lb_port.to_string()),
            (
                "REPLICA_PORTS",
                format!("{} {} {}", free_port(), free_port(), free_port()),
            ),
            ("PG_PORT", free_port().to_string()),
            ("S3_PORT", free_port().to_string()),
            ("PYPI_UPSTREAMS", format!("[\"{upstream}\"]")),
        ],
    };
    // PostgreSQL runs as the postgres user when the tests run as root: let it in.
    let _ = Command::new("chmod")
        .arg("755")
        .arg(deployment.state.path())
        .status();
    deployment.ok(&["up"]);
    let status = deployment.ok(&["status"]);
    assert_eq!(
        status.matches("livez 200, readyz 200").count(),
        3,
        "three replicas live and ready: {status}"
    );
    let index = format!("http://127.0.0.1:{lb_port}/pypi/simple/");
    let first = venv(root.path(), "first");
    let output = pip(&first, &index, "requests==2.32.3");
    assert!(
        output.status.success(),
        "pip through nginx: {}\n{}",
        text(&output.stderr),
        deployment.logs()
    );

    let stop = Arc::new(AtomicBool::new(false));
    let attempts = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(std::sync::Mutex::new(Vec::new()));
    let installs = install_loop(
        root.path(),
        index.clone(),
        Arc::clone(&stop),
        Arc::clone(&attempts),
        Arc::clone(&failures),
    );
    let restart = deployment.ok(&["restart"]);
    // A replica killed outright: nginx sends its share to the others.
    deployment.ok(&["kill", "2"]);
    std::thread::sleep(Duration::from_secs(3));
    deployment.ok(&["start", "2"]);
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::SeqCst);
    installs.join().expect("install loop");
    let attempts = attempts.load(Ordering::SeqCst);
    let failures = failures.lock().expect("failures").clone();
    eprintln!("{restart}\n{attempts} pip/uv installs during the rolling restart and the kill -9");
    assert!(attempts >= 4, "the installs ran throughout: {attempts}");
    assert!(
        failures.is_empty(),
        "no install failed: {failures:?}\n{}",
        deployment.logs()
    );
    let status = deployment.ok(&["status"]);
    assert_eq!(
        status.matches("livez 200, readyz 200").count(),
        3,
        "{status}"
    );
}
