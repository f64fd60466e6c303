//! `formulary setup` for real on Linux: run in an empty home folder with a token, then pip, uv
//! and R install through the gateway with no flags; a second run changes nothing; `--dry-run`
//! prints the exact change and changes nothing; `--undo` puts every file back.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::formulary_cli::{text, Workspace};
use crate::gateway_auth::{gateway_token, serve, upstreams, PASSWORD};
use crate::gateway_pypi::venv;

/// A command with the person's environment: their home, their PATH, no test overrides.
fn person(program: impl AsRef<std::ffi::OsStr>, home: &Path, path: &str) -> Command {
    let mut command = Command::new(program);
    command
        .env("HOME", home)
        .env("PATH", path)
        .env_remove("PIP_CONFIG_FILE")
        .env_remove("PIP_FIND_LINKS")
        .env_remove("PIP_INDEX_URL")
        .env_remove("UV_NO_CONFIG")
        .env_remove("UV_INDEX_URL")
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("NETRC")
        .env_remove("R_PROFILE_USER")
        .env_remove("NPM_CONFIG_USERCONFIG")
        .env_remove("CONDARC")
        .env_remove("FORMULARY_CONFIG_DIR")
        .env_remove("FORMULARY_SERVER");
    command
}

fn setup(workspace: &Workspace, home: &Path, path: &str, args: &[&str], token: &str) -> Output {
    use std::io::Write;
    let mut command = person(env!("CARGO_BIN_EXE_formulary"), home, path);
    let mut child = command
        .current_dir(workspace.folder.path())
        .arg("setup")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("setup starts");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{token}\n").as_bytes())
        .expect("token written");
    child.wait_with_output().expect("setup ends")
}

fn read(path: PathBuf) -> String {
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

crate::on_both_databases!(async fn setup_leaves_pip_uv_and_r_installing_with_no_flags);
async fn setup_leaves_pip_uv_and_r_installing_with_no_flags() {
    let workspace = Workspace::new();
    let root = workspace.folder.path().to_path_buf();
    workspace.ok(&["org", "add", "RJ1", "--name", "A trust"]);
    workspace.add_user("jane", "Jane Analyst", &["RJ1:requester"], PASSWORD);
    let (_pypi, pypi_url, _cran, cran_url) = upstreams(&root.join("upstreams"));
    let (_server, base) = serve(&workspace, &pypi_url, &cran_url, "token", &root.join("log"));
    let client = reqwest::Client::new();
    let (token, _) = gateway_token(&client, &base, "jane").await;

    let home = root.join("home");
    std::fs::create_dir_all(&home).expect("home");
    std::fs::write(home.join(".Rprofile"), "options(digits = 4)\n").expect("Rprofile");
    let environment = venv(&root, "venv");
    let path = format!(
        "{}:{}",
        environment.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let server = format!("{base}/");

    // Setup writes each client's user settings, the token only in files readable by the person.
    let output = setup(
        &workspace,
        &home,
        &path,
        &["--server", &server, "--token-stdin"],
        &token,
    );
    let report = text(&output.stdout);
    assert!(
        output.status.success(),
        "{report}\n{}",
        text(&output.stderr)
    );
    assert!(report.contains("with RJ1 at"), "{report}");
    for (file, content) in [
        (
            ".config/pip/pip.conf",
            format!("index-url = {base}/o/RJ1/pypi/simple/"),
        ),
        (
            ".config/uv/uv.toml",
            format!("url = \"{base}/o/RJ1/pypi/simple/\""),
        ),
        (".Rprofile", format!("CRAN = \"{base}/o/RJ1/cran\"")),
        (".netrc", format!("password {token}")),
    ] {
        let written = read(home.join(file));
        assert!(written.contains(&content), "{file}: {written}");
        if file != ".netrc" {
            assert!(!written.contains(&token), "{file} holds no token");
        }
    }
    assert!(
        read(home.join(".Rprofile")).starts_with("options(digits = 4)\n"),
        "existing settings are kept"
    );
    {
        use std::os::unix::fs::PermissionsExt;
        for secret in [
            ".netrc",
            ".config/formulary/gateway.json",
            ".config/formulary/setup-undo.json",
        ] {
            let mode = std::fs::metadata(home.join(secret))
                .expect("file")
                .permissions()
                .mode()
                & 0o777;
            assert_eq!(mode, 0o600, "{secret}");
        }
    }

    // pip, uv and R install through the gateway with no flags.
    let output = person(environment.join("bin/pip"), &home, &path)
        .args([
            "install",
            "--disable-pip-version-check",
            "--no-cache-dir",
            "--no-input",
            "six==1.16.0",
        ])
        .output()
        .expect("pip");
    assert!(
        output.status.success(),
        "pip: {}{}",
        text(&output.stdout),
        text(&output.stderr)
    );
    assert!(
        text(&output.stdout).contains(&format!("{base}/o/RJ1/pypi/simple/")),
        "{}",
        text(&output.stdout)
    );
    let output = person("uv", &home, &path)
        .args(["pip", "install", "--no-cache", "--python"])
        .arg(environment.join("bin/python"))
        .arg("idna==3.7")
        .output()
        .expect("uv");
    assert!(output.status.success(), "uv: {}", text(&output.stderr));
    let library = root.join("library");
    std::fs::create_dir_all(&library).expect("library");
    let output = person("Rscript", &home, &path)
        .arg("-e")
        .arg(format!(
            "install.packages('cellar', lib = '{lib}', quiet = TRUE); cat(as.character(packageVersion('cellar', lib.loc = '{lib}')))",
            lib = library.display()
        ))
        .output()
        .expect("Rscript");
    assert_eq!(text(&output.stdout), "1.0.0", "R: {}", text(&output.stderr));
    assert!(!text(&output.stderr).contains(&token), "R prints no token");

    // The ledger says who, in which organisation's view.
    let url = workspace.database_url().map_or_else(
        || format!("sqlite://{}", root.join("data/formulary.db").display()),
        str::to_owned,
    );
    let database = formulary_store::Database::open(&url)
        .await
        .expect("database");
    for purl in ["pkg:pypi/six", "pkg:pypi/idna", "pkg:cran/cellar"] {
        let component: formulary_core::Component = purl.parse().expect("purl");
        let mut lines = Vec::new();
        for _ in 0..40 {
            lines = database.downloads_of(&component).await.expect("ledger");
            if !lines.is_empty() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
        assert!(!lines.is_empty(), "{purl} is in the ledger");
        for line in lines {
            assert_eq!(line.actor.as_deref(), Some("user:jane"), "{purl}");
            assert_eq!(line.organisation.as_str(), "RJ1", "{purl}");
        }
    }

    // The doctor checks each client end to end and says what to fix.
    let doctor = |extra: &[(&str, &str)]| {
        let mut command = person(env!("CARGO_BIN_EXE_formulary"), &home, &path);
        command.current_dir(workspace.folder.path()).arg("doctor");
        for (name, value) in extra {
            command.env(name, value);
        }
        command.output().expect("doctor")
    };
    let output = doctor(&[]);
    let report = text(&output.stdout);
    assert!(output.status.success(), "{report}{}", text(&output.stderr));
    for line in [
        "ok   token    belongs to Jane Analyst",
        "ok   pip      uses",
        "ok   uv ",
        "ok   R        installs from",
        "ok   netrc",
    ] {
        assert!(report.contains(line), "{line}: {report}");
    }
    let output = doctor(&[("PIP_INDEX_URL", "https://pypi.org/simple/")]);
    let report = text(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{report}");
    assert!(
        report.contains("FIX  pip      PIP_INDEX_URL is set"),
        "{report}"
    );

    // Idempotent: a second run changes nothing.
    let before = read(home.join(".config/uv/uv.toml"));
    let output = setup(
        &workspace,
        &home,
        &path,
        &["--server", &server, "--token-stdin"],
        &token,
    );
    assert!(
        text(&output.stdout).contains("Everything was already set up"),
        "{}",
        text(&output.stdout)
    );
    assert_eq!(read(home.join(".config/uv/uv.toml")), before);

    // --dry-run prints the exact change, with the token masked, and changes nothing.
    let output = setup(
        &workspace,
        &home,
        &path,
        &[
            "--server",
            &server,
            "--token-stdin",
            "--org",
            "NATIONAL",
            "--dry-run",
        ],
        &token,
    );
    let printed = text(&output.stdout);
    assert!(output.status.success(), "{printed}{}", text(&output.stderr));
    assert!(
        printed.contains(&format!("-index-url = {base}/o/RJ1/pypi/simple/")),
        "{printed}"
    );
    assert!(
        printed.contains(&format!("+index-url = {base}/o/NATIONAL/pypi/simple/")),
        "{printed}"
    );
    assert!(!printed.contains(&token), "the token is masked");
    assert!(
        read(home.join(".config/pip/pip.conf")).contains("/o/RJ1/"),
        "nothing changed"
    );

    // --undo puts every file back: created ones removed, the existing .Rprofile as it was.
    let output = setup(&workspace, &home, &path, &["--undo"], "");
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(read(home.join(".Rprofile")), "options(digits = 4)\n");
    for gone in [
        ".config/pip/pip.conf",
        ".config/uv/uv.toml",
        ".netrc",
        ".config/formulary/gateway.json",
    ] {
        assert!(!home.join(gone).exists(), "{gone} removed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_after_login_needs_no_pasted_token_and_doctor_notices_a_revoked_one() {
    use std::io::Write;
    let workspace = Workspace::new();
    let root = workspace.folder.path().to_path_buf();
    workspace.ok(&["org", "add", "RJ1", "--name", "A trust"]);
    workspace.add_user("jane", "Jane Analyst", &["RJ1:requester"], PASSWORD);
    let (_pypi, pypi_url, _cran, cran_url) = upstreams(&root.join("upstreams"));
    let (_server, base) = serve(&workspace, &pypi_url, &cran_url, "token", &root.join("log"));
    let home = root.join("home");
    std::fs::create_dir_all(&home).expect("home");
    let path = std::env::var("PATH").unwrap_or_default();

    let mut login = person(env!("CARGO_BIN_EXE_formulary"), &home, &path)
        .current_dir(&root)
        .args([
            "login",
            "--server",
            &base,
            "--username",
            "jane",
            "--password-stdin",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("login");
    login
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{PASSWORD}\n").as_bytes())
        .expect("password");
    let output = login.wait_with_output().expect("login ends");
    assert!(output.status.success(), "{}", text(&output.stderr));

    // No token pasted: setup makes one with the sign-in.
    let output = person(env!("CARGO_BIN_EXE_formulary"), &home, &path)
        .current_dir(&root)
        .args(["setup", "--server", &base, "--client", "pip"])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("setup");
    assert!(
        output.status.success(),
        "{}{}",
        text(&output.stdout),
        text(&output.stderr)
    );
    assert!(text(&output.stderr).contains("with your `formulary login` sign-in"));
    let netrc = read(home.join(".netrc"));
    let token = netrc
        .split_whitespace()
        .find(|word| word.starts_with("frm_"))
        .expect("a token in netrc")
        .to_owned();
    let client = reqwest::Client::new();
    let answer = client
        .get(format!("{base}/pypi/simple/six/"))
        .basic_auth("formulary", Some(&token))
        .send()
        .await
        .expect("GET");
    assert_eq!(answer.status(), 200);

    // Revoked on the account page (here, the API): the doctor says what to do.
    let saved: serde_json::Value =
        serde_json::from_str(&read(home.join(".config/formulary/credentials.json"))).expect("JSON");
    let api_token = saved["token"].as_str().expect("api token");
    let tokens: serde_json::Value = client
        .get(format!("{base}/api/v1/me/tokens"))
        .bearer_auth(api_token)
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("JSON");
    let gateway_id = tokens
        .as_array()
        .expect("list")
        .iter()
        .find(|token| token["scope"] == "gateway")
        .and_then(|token| token["id"].as_str())
        .expect("the gateway token is listed")
        .to_owned();
    let revoked = client
        .delete(format!("{base}/api/v1/me/tokens/{gateway_id}"))
        .bearer_auth(api_token)
        .send()
        .await
        .expect("DELETE");
    assert_eq!(revoked.status(), 204);
    let output = person(env!("CARGO_BIN_EXE_formulary"), &home, &path)
        .current_dir(&root)
        .arg("doctor")
        .output()
        .expect("doctor");
    let report = text(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{report}");
    assert!(
        report.contains("FIX  token    the server refuses the token"),
        "{report}"
    );
    assert!(report.contains(&format!("{base}/account")), "{report}");
}
