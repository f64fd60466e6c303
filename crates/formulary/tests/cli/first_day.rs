//! The analyst's first day (issue 13): a fresh account (`useradd -m`, its own empty home, no
//! sudo) with only a shell and curl runs the bootstrap against a running Formulary, then
//! installs uv's real binary with `formulary tools install`, an approved CPython with
//! `uv python install`, and Python (uv and pip), R and npm packages through the configured
//! clients with no flags. Nothing runs as root on the person's side; the ledger names them for every download.
//!
//! The files the "vendors" publish are served by a static upstream: the `formulary` client is
//! the binary under test; uv's archive is built from its wheel on PyPI, as astral publishes it;
//! the CPython build is this machine's own Python laid out as a python-build-standalone
//! `install_only` archive (GitHub, where real builds live, is not reachable from the build
//! machine). Skipped, with the reason printed, where accounts cannot be made (not root, or no
//! `useradd`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::formulary_cli::{static_server, text, Workspace};
use crate::gateway_auth::{gateway_token, ledger_actors, serve_with, upstreams, PASSWORD};
use crate::tools::{vendor_archive, TRIPLE};

/// A person's account, removed with its home folder when dropped.
struct Account {
    name: String,
    home: PathBuf,
}

impl Account {
    /// A new account with an empty home, or `None` (with the reason) where none can be made.
    fn create() -> Option<Account> {
        let name = format!("frmday{}", std::process::id());
        let made = Command::new("useradd")
            .args(["--create-home", "--shell", "/bin/sh", &name])
            .output();
        match made {
            Ok(output) if output.status.success() => {}
            Ok(output) => {
                eprintln!(
                    "skipped: useradd could not make an account (run the tests as root): {}",
                    text(&output.stderr)
                );
                return None;
            }
            Err(error) => {
                eprintln!("skipped: useradd is not available here: {error}");
                return None;
            }
        }
        let home = PathBuf::from(format!("/home/{name}"));
        Some(Account { name, home })
    }

    /// Runs a shell command as the person, with only their home and the system's programs.
    fn run(&self, script: &str, extra: &[(&str, &str)]) -> (Output, Duration) {
        let started = Instant::now();
        let mut command = Command::new("runuser");
        command
            .args(["-u", &self.name, "--", "env", "-i"])
            .arg(format!("HOME={}", self.home.display()))
            .arg(format!("USER={}", self.name))
            .arg(format!(
                "PATH={}/.local/bin:/usr/local/bin:/usr/bin:/bin",
                self.home.display()
            ))
            .arg("LANG=C.UTF-8");
        for (key, value) in extra {
            command.arg(format!("{key}={value}"));
        }
        let output = command
            .args(["sh", "-c", script])
            .current_dir("/")
            .output()
            .expect("runuser runs");
        (output, started.elapsed())
    }
}

impl Drop for Account {
    fn drop(&mut self) {
        let _ = Command::new("userdel")
            .args(["--remove", &self.name])
            .output();
    }
}

/// This machine's Python as a python-build-standalone `install_only` archive (`python/bin`,
/// `python/lib/pythonX.Y`; site packages, tests, caches and links outside the tree left out),
/// built once per target folder: (version, file bytes).
pub(crate) fn cpython_archive() -> &'static (String, PathBuf) {
    static ARCHIVE: OnceLock<(String, PathBuf)> = OnceLock::new();
    ARCHIVE.get_or_init(|| {
        // A Python whose program does not load a shared libpython from its build folder.
        let python = ["/usr/bin/python3", "python3"]
            .into_iter()
            .find(|candidate| {
                Command::new("ldd")
                    .arg(which(candidate))
                    .output()
                    .is_ok_and(|output| output.status.success() && !text(&output.stdout).contains("libpython"))
            })
            .expect("a Python on this machine whose program has libpython built in");
        let facts = Command::new(python)
            .args([
                "-c",
                "import os, platform, sys; print(platform.python_version()); print(sys.base_prefix); print(os.path.realpath(sys.executable))",
            ])
            .output()
            .expect("python runs");
        let facts = text(&facts.stdout);
        let mut lines = facts.lines();
        let (version, prefix, executable) = (
            lines.next().expect("version").to_owned(),
            PathBuf::from(lines.next().expect("prefix")),
            PathBuf::from(lines.next().expect("executable")),
        );
        let minor: String = version.split('.').take(2).collect::<Vec<_>>().join(".");
        let folder = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("test-cpython-{version}"));
        let archive = folder.join(format!(
            "cpython-{version}+local-{TRIPLE}-install_only.tar.gz"
        ));
        if archive.exists() {
            return (version, archive);
        }
        // Per process: the SQLite and PostgreSQL variants may build it at the same time.
        let staging = folder.join(format!("staging-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&staging);
        let (bin, lib) = (staging.join("python/bin"), staging.join("python/lib"));
        std::fs::create_dir_all(&bin).expect("bin");
        std::fs::create_dir_all(&lib).expect("lib");
        std::fs::copy(&executable, bin.join(format!("python{minor}"))).expect("python");
        std::os::unix::fs::symlink(format!("python{minor}"), bin.join("python3")).expect("link");
        let copied = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "tar -C '{}/lib' -cf - --exclude=__pycache__ --exclude='python{minor}/test' --exclude=site-packages --exclude=dist-packages --exclude=EXTERNALLY-MANAGED 'python{minor}' | tar -C '{}' -xf - && find '{}' -type l -lname '/*' -delete",
                prefix.display(),
                lib.display(),
                staging.display()
            ))
            .output()
            .expect("tar");
        assert!(copied.status.success(), "{}", text(&copied.stderr));
        let partial = folder.join(format!("archive.partial-{}", std::process::id()));
        let packed = Command::new("tar")
            .arg("-C")
            .arg(&staging)
            .arg("-czf")
            .arg(&partial)
            .arg("python")
            .output()
            .expect("tar");
        assert!(packed.status.success(), "{}", text(&packed.stderr));
        std::fs::rename(&partial, &archive).expect("archive");
        let _ = std::fs::remove_dir_all(&staging);
        (version, archive)
    })
}

fn which(program: &str) -> String {
    if program.starts_with('/') {
        return program.to_owned();
    }
    let output = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .expect("sh");
    text(&output.stdout).trim().to_owned()
}

/// The installed uv's version (its wheel on PyPI is the "vendor's" release).
fn uv_version() -> String {
    let output = Command::new("uv")
        .arg("--version")
        .output()
        .expect("uv runs");
    text(&output.stdout)
        .split_whitespace()
        .nth(1)
        .expect("uv X.Y.Z")
        .to_owned()
}

/// Puts a vendor's file in the static upstream's folder; returns (url, sha256, size).
pub(crate) fn publish(
    vendor: &Path,
    vendor_url: &str,
    path: &str,
    bytes: &[u8],
) -> (String, String, usize) {
    let target = vendor.join(path);
    std::fs::create_dir_all(target.parent().expect("folder")).expect("folder");
    std::fs::write(&target, bytes).expect("file");
    (
        format!("{vendor_url}{}", path.replace('+', "%2B")),
        hex::encode(Sha256::digest(bytes)),
        bytes.len(),
    )
}

/// The client under test, without its debugging symbols when `strip` is at hand (a release's
/// binary has none; the debug build is ~400 MB).
pub(crate) fn client_binary(into: &Path) -> Vec<u8> {
    let stripped = into.join("formulary-stripped");
    let done = Command::new("strip")
        .args(["--strip-debug", "-o"])
        .arg(&stripped)
        .arg(env!("CARGO_BIN_EXE_formulary"))
        .output()
        .is_ok_and(|output| output.status.success());
    std::fs::read(if done {
        stripped
    } else {
        PathBuf::from(env!("CARGO_BIN_EXE_formulary"))
    })
    .expect("the client")
}

pub(crate) fn add_manifest(
    workspace: &Workspace,
    root: &Path,
    name: &str,
    version: &str,
    file: &str,
) {
    let manifest = root.join(format!("{name}-{version}.toml"));
    std::fs::write(
        &manifest,
        format!("name = \"{name}\"\nversion = \"{version}\"\n\n[[file]]\nplatform = \"x86_64-linux\"\n{file}"),
    )
    .expect("manifest");
    workspace.ok(&["tools", "add", &manifest.display().to_string()]);
}

fn assert_ran(step: &str, output: &Output) {
    assert!(
        output.status.success(),
        "{step}: {}\n{}",
        text(&output.stdout),
        text(&output.stderr)
    );
}

crate::on_both_databases!(async fn a_fresh_account_sets_up_everything_without_admin_rights);
async fn a_fresh_account_sets_up_everything_without_admin_rights() {
    if std::env::consts::ARCH != "x86_64" || std::env::consts::OS != "linux" {
        eprintln!("skipped: the vendor files here are built for x86_64 Linux");
        return;
    }
    let Some(person) = Account::create() else {
        return;
    };
    let workspace = Workspace::new();
    let root = workspace.folder.path().to_path_buf();
    workspace.ok(&["org", "add", "RJ1", "--name", "A trust"]);
    workspace.add_user("jane", "Jane Analyst", &["RJ1:requester"], PASSWORD);
    let (_pypi, pypi_url, _cran, cran_url) = upstreams(&root.join("upstreams"));

    // What the vendors publish, and the national curator's manifests for it.
    let vendor = root.join("vendor");
    std::fs::create_dir_all(&vendor).expect("vendor");
    let (_vendor_server, vendor_url) = static_server(&vendor);
    let uv = uv_version();
    let (filename, bytes) = vendor_archive("uv", &uv, &["uv", "uvx"]);
    let (url, sha256, size) = publish(&vendor, &vendor_url, &format!("uv/{uv}/{filename}"), &bytes);
    add_manifest(&workspace, &root, "uv", &uv, &format!("url = \"{url}\"\nsha256 = \"{sha256}\"\nsize = {size}\nkind = \"archive\"\nbinaries = [\"uv-{TRIPLE}/uv\", \"uv-{TRIPLE}/uvx\"]\n"));
    let (python, archive) = cpython_archive();
    let bytes = std::fs::read(archive).expect("archive");
    let filename = archive
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    let (url, sha256, size) = publish(
        &vendor,
        &vendor_url,
        &format!("cpython/{python}/{filename}"),
        &bytes,
    );
    add_manifest(
        &workspace,
        &root,
        "cpython",
        python,
        &format!("url = \"{url}\"\nsha256 = \"{sha256}\"\nsize = {size}\nkind = \"archive\"\n"),
    );
    // A newer CPython the curator listed and the policy prohibits (it is never downloaded, so
    // the file stands in for a real build of that version).
    let (url, sha256, size) = publish(
        &vendor,
        &vendor_url,
        &format!("cpython/3.99.0/cpython-3.99.0+local-{TRIPLE}-install_only.tar.gz"),
        &bytes,
    );
    add_manifest(
        &workspace,
        &root,
        "cpython",
        "3.99.0",
        &format!("url = \"{url}\"\nsha256 = \"{sha256}\"\nsize = {size}\nkind = \"archive\"\n"),
    );
    workspace.ok(&[
        "entry",
        "add",
        "pkg:generic/cpython",
        "--range",
        ">= 3.99",
        "--status",
        "prohibited",
        "--reason",
        "Not yet validated with the trust's data platform",
    ]);

    // npm's upstream: real tarballs, with chalk 5.6.1 standing in for its malicious release.
    let (_npm, _, npm_url) = crate::gateway_npm::local_upstream(&workspace);
    crate::gateway_npm::import_advisories(&workspace);

    let (_server, base) = serve_with(
        &workspace,
        &[
            ("FORMULARY_PYPI_UPSTREAMS", format!("[\"{pypi_url}\"]")),
            ("FORMULARY_CRAN_UPSTREAMS", format!("[\"{cran_url}\"]")),
            ("FORMULARY_NPM_UPSTREAMS", format!("[\"{npm_url}\"]")),
        ],
        "token",
        &root.join("log"),
    );
    let (token, _) = gateway_token(&reqwest::Client::new(), &base, "jane").await;
    let home = person.home.display().to_string();
    let mut timings: Vec<(&str, Duration)> = Vec::new();

    // No client added yet: the bootstrap says so, and what to do.
    let (output, _) = person.run(
        &format!("curl -fsSL {base}/setup.sh | sh"),
        &[("FORMULARY_TOKEN", &token)],
    );
    assert!(!output.status.success());
    assert!(
        text(&output.stderr).contains(
            "offers no formulary client for x86_64-linux. Ask the people who run it to add one"
        ),
        "{}",
        text(&output.stderr)
    );

    // A release's client binary, added like any desktop tool.
    let client = client_binary(&root);
    let (url, sha256, size) = publish(
        &vendor,
        &vendor_url,
        &format!("formulary/1.0.0/formulary-{TRIPLE}"),
        &client,
    );
    add_manifest(
        &workspace,
        &root,
        "formulary",
        "1.0.0",
        &format!("url = \"{url}\"\nsha256 = \"{sha256}\"\nsize = {size}\nkind = \"binary\"\n"),
    );

    // A wrong token: the bootstrap stops with the server's reason and installs nothing.
    let (output, _) = person.run(
        &format!("curl -fsSL {base}/setup.sh | sh"),
        &[("FORMULARY_TOKEN", "frm_0000")],
    );
    assert!(!output.status.success());
    assert!(
        text(&output.stderr).contains("the server answered 401"),
        "{}",
        text(&output.stderr)
    );
    assert!(!person.home.join(".local/bin/formulary").exists());

    // 1. The bootstrap: the client, checked, in the person's profile; every client set up.
    let (output, took) = person.run(
        &format!("curl -fsSL {base}/setup.sh | sh"),
        &[("FORMULARY_TOKEN", &token)],
    );
    assert_ran("the bootstrap", &output);
    timings.push(("curl … /setup.sh | sh", took));
    let report = text(&output.stdout);
    assert!(report.contains("Installed formulary 1.0.0 in"), "{report}");
    assert!(report.contains("SHA-256 checked"), "{report}");
    assert!(report.contains("with RJ1 at"), "{report}");
    let uv_toml = std::fs::read_to_string(person.home.join(".config/uv/uv.toml")).expect("uv.toml");
    assert!(
        uv_toml.contains(&format!(
            "python-downloads-json-url = \"{base}/o/RJ1/python/download-metadata.json\""
        )),
        "{uv_toml}"
    );

    // 2. A desktop tool: uv's own binary, into the profile.
    let (output, took) = person.run("formulary tools install uv && uv --version", &[]);
    assert_ran("formulary tools install uv", &output);
    timings.push(("formulary tools install uv", took));
    assert!(
        text(&output.stdout).contains(&format!("uv {uv}")),
        "{}",
        text(&output.stdout)
    );

    // 3. An approved CPython through the gateway; a prohibited one is refused with the reason.
    let (output, took) = person.run(
        "uv python install 3.11 && python3.11 -c 'import sys, ssl, sqlite3; print(sys.prefix)'",
        &[],
    );
    assert_ran("uv python install", &output);
    timings.push(("uv python install", took));
    assert!(
        text(&output.stderr).contains(&format!("Installed Python {python}")),
        "{}",
        text(&output.stderr)
    );
    assert!(
        text(&output.stdout).starts_with(&format!("{home}/.local/share/uv/python/")),
        "{}",
        text(&output.stdout)
    );
    let (output, _) = person.run("uv python install 3.99", &[]);
    assert!(!output.status.success());
    assert!(
        text(&output.stderr).contains("403 Blocked by Formulary")
            && text(&output.stderr).contains("Not yet validated"),
        "{}",
        text(&output.stderr)
    );
    let (output, _) = person.run("formulary tools list", &[]);
    assert!(
        text(&output.stdout)
            .lines()
            .any(|line| line.contains("cpython")
                && line.contains("3.99.0")
                && line.contains("Not yet validated")),
        "{}",
        text(&output.stdout)
    );
    let refused = reqwest::Client::new()
        .get(format!("{base}/o/RJ1/tools/files/cpython/3.99.0/x86_64-linux/cpython-3.99.0%2Blocal-{TRIPLE}-install_only.tar.gz"))
        .basic_auth("formulary", Some(&token))
        .send()
        .await
        .expect("GET");
    assert_eq!(refused.status(), 403);
    assert!(refused
        .text()
        .await
        .expect("body")
        .contains("Not yet validated"));

    // 4. Python packages with uv, no flags: a project environment on the managed CPython.
    let (output, took) = person.run(
        "uv venv --quiet --managed-python --python 3.11 ~/analysis && uv pip install --python ~/analysis/bin/python requests==2.32.3 && ~/analysis/bin/python -c 'import requests; print(requests.__version__)'",
        &[],
    );
    assert_ran("uv pip install", &output);
    timings.push(("uv venv + uv pip install requests", took));
    assert_eq!(text(&output.stdout).trim(), "2.32.3");

    // 5. pip (the system's), no flags: it reads the user configuration setup wrote.
    let (output, took) = person.run(
        "python3 -m pip download --quiet --no-deps --dest ~/downloads requests==2.32.3 && ls ~/downloads",
        &[],
    );
    assert_ran("pip download", &output);
    timings.push(("pip download requests", took));
    assert!(
        text(&output.stdout).contains("requests-2.32.3-py3-none-any.whl"),
        "{}",
        text(&output.stdout)
    );

    // 6. npm, no flags: the malicious newest chalk is skipped for the newest allowed one.
    let (output, took) = person.run(
        "mkdir -p ~/dashboard && cd ~/dashboard && npm init --yes >/dev/null && npm install --no-fund chalk && node -p \"require('./node_modules/chalk/package.json').version\"",
        &[],
    );
    assert_ran("npm install", &output);
    timings.push(("npm install chalk", took));
    assert_eq!(
        text(&output.stdout).lines().last().unwrap_or_default(),
        "5.6.0",
        "{}",
        text(&output.stdout)
    );
    assert!(
        !text(&output.stderr).contains(&token),
        "npm prints no token"
    );

    // 7. An R package, no flags.
    let (output, took) = person.run(
        "Rscript -e \"lib <- file.path(Sys.getenv('HOME'), 'R', 'library'); dir.create(lib, recursive = TRUE); install.packages('cellar', lib = lib, quiet = TRUE); cat(as.character(packageVersion('cellar', lib.loc = lib)))\"",
        &[],
    );
    assert_ran("R", &output);
    timings.push(("R install.packages('cellar')", took));
    assert_eq!(text(&output.stdout), "1.0.0", "{}", text(&output.stderr));
    assert!(!text(&output.stderr).contains(&token), "R prints no token");

    // Everything the person got is theirs, in their home; the ledger names them.
    for program in [
        "formulary",
        "uv",
        &format!(
            "python{}",
            python.split('.').take(2).collect::<Vec<_>>().join(".")
        ),
    ] {
        let (output, _) = person.run(
            &format!("test -O \"$(readlink -f ~/.local/bin/{program})\""),
            &[],
        );
        assert!(
            output.status.success(),
            "~/.local/bin/{program} belongs to the person"
        );
    }
    for purl in [
        "pkg:generic/formulary",
        "pkg:generic/uv",
        "pkg:generic/cpython",
        "pkg:pypi/requests",
        "pkg:cran/cellar",
        "pkg:npm/chalk",
    ] {
        let actors = ledger_actors(&workspace, purl, 1).await;
        assert!(
            actors.iter().any(|actor| actor == "user:jane"),
            "{purl}: {actors:?}"
        );
    }
    let total: Duration = timings.iter().map(|(_, took)| *took).sum();
    eprintln!("first day, as {}:", person.name);
    for (step, took) in &timings {
        eprintln!("  {step:<40} {:>6.1} s", took.as_secs_f64());
    }
    eprintln!("  {:<40} {:>6.1} s", "total", total.as_secs_f64());
}
