//! A throwaway PostgreSQL cluster that a test can stop and start again: a real database outage,
//! without touching the shared server. Built with `initdb` and `pg_ctl` from
//! `/usr/lib/postgresql/*/bin` (or `PATH`), in a temporary folder, on a free port, run as the
//! `postgres` user when the tests run as root (PostgreSQL refuses to run as root).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::formulary_cli::{free_port, text};

/// A running (or stopped) cluster, removed when dropped.
pub struct Cluster {
    folder: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    owner: Option<&'static str>,
}

/// The newest folder holding `initdb`, `pg_ctl` and `postgres`.
fn server_binaries() -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path().join("bin"))
        .collect();
    candidates.sort_by_key(|path| {
        path.parent()
            .and_then(Path::file_name)
            .and_then(|name| name.to_str())
            .and_then(|name| name.parse::<u32>().ok())
            .unwrap_or(0)
    });
    candidates.reverse();
    if let Ok(found) = which("pg_ctl") {
        if let Some(folder) = found.parent() {
            candidates.push(folder.to_owned());
        }
    }
    candidates.into_iter().find(|folder| {
        ["initdb", "pg_ctl", "postgres"]
            .iter()
            .all(|name| folder.join(name).is_file())
    })
}

fn which(name: &str) -> Result<PathBuf, ()> {
    let output = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .map_err(|_| ())?;
    let path = text(&output.stdout).trim().to_owned();
    if output.status.success() && !path.is_empty() {
        Ok(PathBuf::from(path))
    } else {
        Err(())
    }
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|output| text(&output.stdout).trim() == "0")
}

impl Cluster {
    /// Creates and starts a cluster; `None` (skip) when PostgreSQL's server programs are not
    /// installed, unless `FORMULARY_TEST_REQUIRE_POSTGRES=1`, which fails instead.
    pub fn start() -> Option<Cluster> {
        let Some(bin) = server_binaries() else {
            assert!(
                std::env::var("FORMULARY_TEST_REQUIRE_POSTGRES").as_deref() != Ok("1"),
                "PostgreSQL's server programs (initdb, pg_ctl) are not installed but PostgreSQL is required; install postgresql"
            );
            eprintln!("skipping: initdb and pg_ctl are not installed");
            return None;
        };
        let folder = tempfile::Builder::new()
            .prefix("formulary-pg-")
            .tempdir()
            .expect("temporary folder");
        let owner = running_as_root().then_some("postgres");
        if let Some(owner) = owner {
            let status = Command::new("chown")
                .args(["-R", owner])
                .arg(folder.path())
                .status()
                .expect("chown runs");
            assert!(status.success(), "chown {owner} failed");
        }
        let cluster = Cluster {
            folder,
            bin,
            port: free_port(),
            owner,
        };
        let data = cluster.data();
        cluster.run(
            "initdb",
            &[
                "-D",
                &data,
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            ],
        );
        cluster.resume();
        Some(cluster)
    }

    fn data(&self) -> String {
        self.folder.path().join("data").display().to_string()
    }

    fn run(&self, program: &str, args: &[&str]) {
        let program = self.bin.join(program);
        let mut command = match self.owner {
            Some(owner) => {
                let mut command = Command::new("runuser");
                command.args(["-u", owner, "--"]).arg(&program);
                command
            }
            None => Command::new(&program),
        };
        let output = command
            .args(args)
            .current_dir(self.folder.path())
            .output()
            .unwrap_or_else(|error| panic!("{} runs: {error}", program.display()));
        assert!(
            output.status.success(),
            "{} {args:?} failed: {}{}",
            program.display(),
            text(&output.stdout),
            text(&output.stderr)
        );
    }

    /// The URL of the `postgres` database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops the server at once (`pg_ctl -m immediate`: like a crash, open connections are cut).
    pub fn stop(&self) {
        self.run(
            "pg_ctl",
            &["-D", &self.data(), "-m", "immediate", "-w", "stop"],
        );
    }

    /// Starts the server (again) and waits until it accepts connections.
    pub fn resume(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=60",
            self.port,
            self.folder.path().display()
        );
        let log = self.folder.path().join("server.log").display().to_string();
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-l",
                &log,
                "-o",
                &options,
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let program = self.bin.join("pg_ctl");
        let data = self.data();
        let args = ["-D", data.as_str(), "-m", "immediate", "-w", "stop"];
        let _ = match self.owner {
            Some(owner) => Command::new("runuser")
                .args(["-u", owner, "--"])
                .arg(&program)
                .args(args)
                .output(),
            None => Command::new(&program).args(args).output(),
        };
    }
}
