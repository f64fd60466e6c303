//! Running the binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::databases::{self, Backend, PostgresDatabase};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A data folder for one test and a way to run the binary against it. Records live in SQLite
/// in the data folder, or in a fresh PostgreSQL database when the test runs under
/// `on_both_databases!` (see `databases.rs`).
pub struct Workspace {
    pub folder: tempfile::TempDir,
    /// `--database-url` for every command, when records do not live in the data folder.
    database_url: Option<String>,
    /// The PostgreSQL database made for this workspace, dropped with it.
    _postgres: Option<PostgresDatabase>,
}

impl Workspace {
    /// A workspace on the database the running test chose (SQLite unless `on_both_databases!`
    /// runs it on PostgreSQL).
    pub fn new() -> Workspace {
        let postgres = match databases::current() {
            Backend::Sqlite => None,
            Backend::Postgres => Some(PostgresDatabase::create(
                &databases::admin_url()
                    .expect("the PostgreSQL run checked the server is configured"),
            )),
        };
        Workspace {
            folder: tempfile::tempdir().expect("temporary folder"),
            database_url: postgres.as_ref().map(|database| database.url.clone()),
            _postgres: postgres,
        }
    }

    /// A workspace whose records live in the given database (a cluster the test controls).
    pub fn on_database(url: &str) -> Workspace {
        Workspace {
            folder: tempfile::tempdir().expect("temporary folder"),
            database_url: Some(url.to_owned()),
            _postgres: None,
        }
    }

    /// The database URL given to every command, or `None` for SQLite in the data folder.
    pub fn database_url(&self) -> Option<&str> {
        self.database_url.as_deref()
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_formulary"));
        command
            .current_dir(self.folder.path())
            .env_remove("FORMULARY_DATABASE_URL")
            .env_remove("FORMULARY_DATA_DIR")
            .env("NO_COLOR", "1")
            // Servers under test do not sync the public OSV exports in the background (a test
            // that wants the scheduled sync sets its own sources and interval).
            .env("FORMULARY_ADVISORY_SYNC_INTERVAL_SECONDS", "0")
            .arg("--data-dir")
            .arg(self.folder.path().join("data"));
        if let Some(url) = self.database_url() {
            command.arg("--database-url").arg(url);
        }
        command.args(args);
        command
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("the binary runs")
    }

    /// Runs and insists on success, returning stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "formulary {args:?} failed: {}\n{}",
            text(&output.stdout),
            text(&output.stderr)
        );
        text(&output.stdout)
    }
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A process killed when dropped.
pub struct Running(pub std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A port nothing listens on yet.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("address")
        .port()
}

/// Waits until `child` (named `what` in messages) listens on `port`. A loaded CI machine can
/// take a minute to start Node or Python, so the wait is long, but it ends at once if the
/// child exits instead.
pub fn wait_for_service(child: &mut std::process::Child, port: u16, what: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited ({status}) before it listened on port {port}");
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what} did not listen on port {port} within 120 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Serves a folder with Python's static HTTP server; returns it and its base URL (ending in `/`).
pub fn static_server(root: &Path) -> (Running, String) {
    let port = free_port();
    let child = Command::new("python3")
        .args([
            "-m",
            "http.server",
            "--bind",
            "127.0.0.1",
            &port.to_string(),
            "--directory",
        ])
        .arg(root)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("python3 -m http.server starts");
    let mut running = Running(child);
    wait_for_service(&mut running.0, port, "python3 -m http.server");
    (running, format!("http://127.0.0.1:{port}/"))
}

impl Workspace {
    /// Creates an account with `formulary admin user add`, giving the password on stdin.
    pub fn add_user(&self, username: &str, name: &str, roles: &[&str], password: &str) {
        use std::io::Write;
        let mut arguments = vec!["admin", "user", "add", username, "--name", name];
        for role in roles {
            arguments.extend(["--role", role]);
        }
        let mut child = self
            .command(&arguments)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("admin user add starts");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(format!("{password}\n").as_bytes())
            .expect("password written");
        let output = child.wait_with_output().expect("admin user add ends");
        assert!(
            output.status.success(),
            "admin user add {username}: {}",
            text(&output.stderr)
        );
    }

    /// Starts `formulary serve` on a free port with the given settings; returns it and its base URL.
    pub fn serve(&self, settings: &[(&str, String)]) -> (Running, String) {
        self.serve_with(&["serve", "--listen", "127.0.0.1:0"], settings)
    }

    /// Starts `formulary serve --demo` (the demo formulary, people and requests) on a free port.
    pub fn serve_demo(&self) -> (Running, String) {
        self.serve_with(&["serve", "--demo", "--listen", "127.0.0.1:0"], &[])
    }

    /// Starts the server with these arguments; returns it and its base URL.
    fn serve_with(&self, arguments: &[&str], settings: &[(&str, String)]) -> (Running, String) {
        use std::io::BufRead;
        let mut child = self
            .command(arguments)
            .envs(settings.iter().map(|(name, value)| (*name, value.as_str())))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("formulary serve starts");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("address line");
        let base = line
            .split_whitespace()
            .find(|word| word.starts_with("http://"))
            .expect("address")
            .trim_end_matches('/')
            .to_owned();
        (Running(child), base)
    }
}
