//! The reference deployment (`deploy/local/run`): nginx in front of three replicas on a
//! PostgreSQL cluster the script creates and one blob store. pip, uv and R install through the
//! load balancer while the replicas are restarted one by one, and while one is killed with
//! kill -9, with no failed install. Then a backup is taken, a prohibition is added after it, and
//! the backup is restored: the prohibition is gone, the cached files are served, and the audit
//! check says exactly what the restore did. Needs nginx (scripts/test installs it) and
//! PostgreSQL's server programs; skipped when nginx is missing outside CI.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::formulary_cli::{free_port, repo_root, static_server, text};
use crate::gateway_cran::{r, repository_folder};
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

    /// The formulary CLI with replica `replica`'s settings (`deploy/local/run cli`).
    fn cli(&self, replica: usize, args: &[&str]) -> Output {
        Command::new(repo_root().join("deploy/local/run"))
            .arg("cli")
            .args(args)
            .envs(self.env.iter().map(|(name, value)| (*name, value.as_str())))
            .env("DEPLOY_DIR", self.state.path())
            .env("REPLICA", replica.to_string())
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

/// Installs requests with pip and uv and readxl with R, in turns, until `stop`, counting
/// attempts and failures.
fn install_loop(
    root: &Path,
    base: String,
    stop: Arc<AtomicBool>,
    attempts: Arc<AtomicUsize>,
    failures: Arc<std::sync::Mutex<Vec<String>>>,
) -> std::thread::JoinHandle<()> {
    let environment = venv(root, "installs");
    let libraries = root.join("r-libraries");
    std::thread::spawn(move || {
        let index = format!("{base}/pypi/simple/");
        let mut round = 0;
        while !stop.load(Ordering::SeqCst) {
            let output = match round % 3 {
                0 => pip(&environment, &index, "requests==2.32.3"),
                1 => uv(&environment, &index, "requests==2.32.3"),
                _ => r_install(&base, &libraries.join(round.to_string())),
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

/// `install.packages("readxl")` from the gateway's CRAN view into a new library; fails unless
/// readxl and its dependency load from it (R only warns when a package is unavailable).
fn r_install(base: &str, library: &Path) -> Output {
    std::fs::create_dir_all(library).expect("library");
    r(&format!(
        "options(repos = c(CRAN = '{base}/cran')); install.packages('readxl', lib = '{lib}', quiet = TRUE); \
         library(readxl, lib.loc = '{lib}'); stopifnot(readxl_version() == '1.4.1')",
        lib = library.display()
    ))
}

#[test]
fn pip_uv_and_r_install_through_nginx_while_replicas_restart_and_a_backup_restores() {
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
    repository_folder(&root.path().join("cran"));
    let (_cran, cran) = static_server(&root.path().join("cran"));
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
            ("CRAN_UPSTREAMS", format!("[\"{cran}\"]")),
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
    let base = format!("http://127.0.0.1:{lb_port}");
    let index = format!("{base}/pypi/simple/");
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
    let output = r_install(&base, &root.path().join("first-library"));
    assert!(
        output.status.success(),
        "R through nginx: {}\n{}",
        text(&output.stderr),
        deployment.logs()
    );
    let installs = install_loop(
        root.path(),
        base.clone(),
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
    eprintln!("{restart}\n{attempts} pip/uv/R installs during the rolling restart and the kill -9");
    assert!(
        attempts >= 3,
        "pip, uv and R each installed during the restarts: {attempts} installs"
    );
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

    backup_and_restore(&deployment, root.path(), &index);
}

/// A backup, a prohibition made after it, and a restore of the backup: the prohibition is gone,
/// the cached files install, `audit verify` says the checkpoints are ahead of the restored chain
/// until the key holder acknowledges the restore, and then reports the restore.
fn backup_and_restore(deployment: &Deployment, root: &Path, index: &str) {
    let backup = root.join("backup");
    deployment.ok(&["backup", &backup.display().to_string()]);
    let output = deployment.cli(
        1,
        &[
            "entry",
            "add",
            "pkg:pypi/requests",
            "--range",
            "==2.32.3",
            "--status",
            "prohibited",
            "--reason",
            "A prohibition made after the backup",
        ],
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    let refused = (0..20).any(|attempt| {
        let environment = venv(root, &format!("prohibited-{attempt}"));
        let refused = !pip(&environment, index, "requests==2.32.3")
            .status
            .success();
        if !refused {
            std::thread::sleep(Duration::from_millis(250));
        }
        refused
    });
    assert!(refused, "the prohibition is enforced through nginx");

    for replica in ["1", "2", "3"] {
        deployment.ok(&["stop", replica]);
    }
    deployment.ok(&["restore", &backup.display().to_string()]);
    for replica in ["1", "2", "3"] {
        deployment.ok(&["start", replica]);
    }
    let environment = venv(root, "restored");
    let output = pip(&environment, index, "requests==2.32.3");
    assert!(
        output.status.success(),
        "the restored database has no prohibition and the blobs are there: {}\n{}",
        text(&output.stderr),
        deployment.logs()
    );

    let verify = deployment.cli(1, &["audit", "verify"]);
    assert_eq!(verify.status.code(), Some(1), "{}", text(&verify.stdout));
    assert!(
        text(&verify.stdout).contains("acknowledge-restore"),
        "the check names the way out: {}",
        text(&verify.stdout)
    );
    for replica in 1..=3 {
        let output = deployment.cli(
            replica,
            &[
                "audit",
                "acknowledge-restore",
                "--reason",
                "restored the backup taken before the test's prohibition",
            ],
        );
        assert!(
            output.status.success(),
            "replica {replica}: {}{}",
            text(&output.stdout),
            text(&output.stderr)
        );
    }
    let verify = deployment.cli(1, &["audit", "verify"]);
    let said = text(&verify.stdout);
    assert!(verify.status.success(), "{said}{}", text(&verify.stderr));
    assert!(
        said.contains("restored from a backup") && said.contains("taken before the test"),
        "{said}"
    );
    let cache = deployment.cli(1, &["cache", "verify"]);
    assert!(
        cache.status.success(),
        "{}{}",
        text(&cache.stdout),
        text(&cache.stderr)
    );
}
