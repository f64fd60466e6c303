//! Gateway authentication with the real clients: pip and uv (token in the index URL, and in
//! `~/.netrc`) and R (libcurl with `user:token@` in the repository URL), against a server that
//! asks for a token on every gateway request; the download ledger names the person; a missing
//! or revoked token gets a 401 that says how to get one; a token never reaches the server's log.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::{json, Value};

use crate::formulary_cli::{static_server, text, Running, Workspace};
use crate::gateway_pypi::{static_upstream, venv};

pub(crate) const PASSWORD: &str = "correct horse battery staple gateway";

/// A CRAN-like upstream and a PyPI upstream, both built from real package contents.
pub(crate) fn upstreams(root: &Path) -> (Running, String, Running, String) {
    let (pypi_server, pypi_url) = static_upstream(&root.join("pypi"));
    let cran_root = root.join("cran");
    crate::gateway_cran::repository_folder(&cran_root);
    let (cran_server, cran_url) = static_server(&cran_root);
    (pypi_server, pypi_url, cran_server, cran_url)
}

/// `formulary serve` with both gateways and the given access mode; its log (at `trace`) goes
/// to `log`.
pub(crate) fn serve(
    workspace: &Workspace,
    pypi: &str,
    cran: &str,
    access: &str,
    log: &Path,
) -> (Running, String) {
    serve_with(
        workspace,
        &[
            ("FORMULARY_PYPI_UPSTREAMS", format!("[\"{pypi}\"]")),
            ("FORMULARY_CRAN_UPSTREAMS", format!("[\"{cran}\"]")),
        ],
        access,
        log,
    )
}

/// `formulary serve` with these settings and the given access mode; its log (at `trace`) goes
/// to `log`.
pub(crate) fn serve_with(
    workspace: &Workspace,
    settings: &[(&str, String)],
    access: &str,
    log: &Path,
) -> (Running, String) {
    use std::io::BufRead;
    let mut command = workspace.command(&["serve", "--listen", "127.0.0.1:0"]);
    for (key, value) in settings {
        command.env(key, value);
    }
    let mut child = command
        .env("FORMULARY_INDEX_REVALIDATE_SECONDS", "0")
        .env("FORMULARY_UPSTREAM_TIMEOUT_SECONDS", "5")
        .env("FORMULARY_GATEWAY_ACCESS", access)
        .env("FORMULARY_LOG", "trace")
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(log).expect("log file"))
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

/// Signs in through the API and issues a token for package clients.
pub(crate) async fn gateway_token(
    client: &reqwest::Client,
    base: &str,
    username: &str,
) -> (String, String) {
    let login: Value = client
        .post(format!("{base}/api/v1/session/token"))
        .json(&json!({ "username": username, "password": PASSWORD }))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("JSON");
    let api_token = login["token"].as_str().expect("api token").to_owned();
    let issued: Value = client
        .post(format!("{base}/api/v1/me/tokens"))
        .bearer_auth(&api_token)
        .json(&json!({ "name": "laptop", "scope": "gateway" }))
        .send()
        .await
        .expect("issue")
        .json()
        .await
        .expect("JSON");
    (
        issued["token"]
            .as_str()
            .unwrap_or_else(|| panic!("{issued}"))
            .to_owned(),
        issued["id"].as_str().expect("id").to_owned(),
    )
}

fn with_token(base: &str, user: &str, token: &str) -> String {
    base.replacen("http://", &format!("http://{user}:{token}@"), 1)
}

fn pip(venv: &Path, index: &str, requirement: &str, home: &Path) -> Output {
    Command::new(venv.join("bin/pip"))
        .args([
            "install",
            "--disable-pip-version-check",
            "--no-cache-dir",
            "--no-input",
            "--index-url",
            index,
            requirement,
        ])
        .env("PIP_CONFIG_FILE", "/dev/null")
        .env("HOME", home)
        .env_remove("PIP_FIND_LINKS")
        .env_remove("NETRC")
        .output()
        .expect("pip runs")
}

fn uv(venv: &Path, index: &str, requirement: &str, home: &Path) -> Output {
    Command::new("uv")
        .args(["pip", "install", "--no-cache", "--python"])
        .arg(venv.join("bin/python"))
        .args(["--index-url", index, requirement])
        .env("UV_NO_CONFIG", "1")
        .env("HOME", home)
        .env_remove("PIP_FIND_LINKS")
        .env_remove("NETRC")
        .env_remove("UV_KEYRING_PROVIDER")
        .output()
        .expect("uv runs (scripts/test installs it)")
}

fn r_install(repository: &str, library: &Path) -> Output {
    crate::gateway_cran::r(&format!(
        "options(repos = c(CRAN = '{repository}')); install.packages('cellar', lib = '{lib}', quiet = TRUE); cat(as.character(packageVersion('cellar', lib.loc = '{lib}')))",
        lib = library.display()
    ))
}

/// The ledger's actors for a component, waiting for the batching writer.
pub(crate) async fn ledger_actors(
    workspace: &Workspace,
    purl: &str,
    at_least: usize,
) -> Vec<String> {
    let url = workspace.database_url().map_or_else(
        || {
            format!(
                "sqlite://{}",
                workspace.folder.path().join("data/formulary.db").display()
            )
        },
        str::to_owned,
    );
    let database = formulary_store::Database::open(&url)
        .await
        .expect("database");
    let component: formulary_core::Component = purl.parse().expect("purl");
    for _ in 0..40 {
        let lines = database.downloads_of(&component).await.expect("ledger");
        if lines.len() >= at_least {
            return lines
                .into_iter()
                .map(|line| line.actor.unwrap_or_else(|| "-".to_owned()))
                .collect();
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("the ledger never held {at_least} lines for {purl}");
}

crate::on_both_databases!(async fn pip_uv_and_r_need_a_token_and_the_ledger_names_the_person);
async fn pip_uv_and_r_need_a_token_and_the_ledger_names_the_person() {
    let workspace = Workspace::new();
    let root = workspace.folder.path().to_path_buf();
    workspace.add_user("jane", "Jane Analyst", &["NATIONAL:requester"], PASSWORD);
    let (_pypi, pypi_url, _cran, cran_url) = upstreams(&root.join("upstreams"));
    let log = root.join("server.log");
    let (server, base) = serve(&workspace, &pypi_url, &cran_url, "token", &log);
    let client = reqwest::Client::new();
    let (token, token_id) = gateway_token(&client, &base, "jane").await;
    assert!(token.starts_with("frm_"));
    let home = root.join("home");
    std::fs::create_dir_all(&home).expect("home");
    let environment = venv(&root, "venv");

    // No token: a 401 that says how to get one, with a Basic challenge, for every ecosystem.
    for path in [
        "/pypi/simple/requests/",
        "/cran/src/contrib/PACKAGES.gz",
        "/o/NATIONAL/pypi/simple/",
    ] {
        let answer = client
            .get(format!("{base}{path}"))
            .send()
            .await
            .expect("GET");
        assert_eq!(answer.status(), 401, "{path}");
        let challenge = answer.headers().get("www-authenticate").expect("challenge");
        assert!(challenge
            .to_str()
            .expect("text")
            .starts_with("Basic realm="));
        let problem: Value = answer.json().await.expect("problem+json");
        assert!(
            problem["detail"]
                .as_str()
                .expect("detail")
                .contains(&format!("{base}/account")),
            "{problem}"
        );
    }
    let refused = Command::new(environment.join("bin/pip"))
        .args([
            "install",
            "-vv",
            "--disable-pip-version-check",
            "--no-cache-dir",
            "--no-input",
            "--index-url",
        ])
        .arg(format!("{base}/pypi/simple/"))
        .arg("requests==2.32.3")
        .env("PIP_CONFIG_FILE", "/dev/null")
        .env("HOME", &home)
        .output()
        .expect("pip runs");
    assert!(!refused.status.success());
    // pip says why only with -vv (it logs an index's HTTP errors at debug level).
    assert!(
        text(&refused.stdout).contains("this gateway needs a Formulary token"),
        "pip -vv shows why: {}",
        text(&refused.stdout)
    );

    // The token in the index URL: pip and uv install.
    let index = with_token(&format!("{base}/pypi/simple/"), "jane", &token);
    let output = pip(&environment, &index, "requests==2.32.3", &home);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let uv_environment = venv(&root, "uv-venv");
    let output = uv(&uv_environment, &index, "idna==3.7", &home);
    assert!(output.status.success(), "{}", text(&output.stderr));

    // The token in ~/.netrc, and a plain index URL: pip and uv install.
    std::fs::write(
        home.join(".netrc"),
        format!("machine 127.0.0.1\nlogin jane\npassword {token}\n"),
    )
    .expect("netrc");
    let plain = format!("{base}/pypi/simple/");
    let netrc_environment = venv(&root, "netrc-venv");
    let output = pip(&netrc_environment, &plain, "six==1.16.0", &home);
    assert!(
        output.status.success(),
        "pip with netrc: {}",
        text(&output.stderr)
    );
    let output = uv(&netrc_environment, &plain, "certifi==2024.7.4", &home);
    assert!(
        output.status.success(),
        "uv with netrc: {}",
        text(&output.stderr)
    );
    std::fs::remove_file(home.join(".netrc")).expect("netrc removed");

    // R: libcurl sends user:token@ from the repository URL; without it, R is refused.
    let library = root.join("library");
    std::fs::create_dir_all(&library).expect("library");
    let output = r_install(&format!("{base}/cran"), &library);
    assert_ne!(
        text(&output.stdout),
        "1.0.0",
        "R without a token is refused"
    );
    let output = r_install(
        &with_token(&format!("{base}/cran"), "jane", &token),
        &library,
    );
    assert_eq!(text(&output.stdout), "1.0.0", "{}", text(&output.stderr));

    // The ledger names the person for every client.
    for (purl, at_least) in [
        ("pkg:pypi/requests", 1),
        ("pkg:pypi/idna", 1),
        ("pkg:pypi/six", 1),
        ("pkg:pypi/certifi", 1),
        ("pkg:cran/cellar", 1),
    ] {
        let actors = ledger_actors(&workspace, purl, at_least).await;
        assert!(
            actors.iter().all(|actor| actor == "user:jane"),
            "{purl}: {actors:?}"
        );
    }

    // A gateway token cannot act on the API; it may only ask who it belongs to.
    let answer = client
        .get(format!("{base}/api/v1/me/tokens"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("GET");
    assert_eq!(answer.status(), 403);
    let me: Value = client
        .get(format!("{base}/api/v1/me"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("JSON");
    assert_eq!(me["username"], "jane", "{me}");

    // A bearer token (npm's `_authToken`) works too; a service token made on the server's
    // machine reads the gateway as well.
    let answer = client
        .get(format!("{base}/pypi/simple/requests/"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("GET");
    assert_eq!(answer.status(), 200);
    let service = workspace.ok(&[
        "token",
        "create",
        "--name",
        "build server",
        "--scope",
        "gateway",
    ]);
    let answer = client
        .get(format!("{base}/cran/src/contrib/PACKAGES"))
        .basic_auth("ci", Some(service.trim()))
        .send()
        .await
        .expect("GET");
    assert_eq!(answer.status(), 200);

    // Revoked: refused within the time a checked token is remembered, saying so.
    let login: Value = client
        .post(format!("{base}/api/v1/session/token"))
        .json(&json!({ "username": "jane", "password": PASSWORD }))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("JSON");
    let api_token = login["token"].as_str().expect("token");
    let revoked = client
        .delete(format!("{base}/api/v1/me/tokens/{token_id}"))
        .bearer_auth(api_token)
        .send()
        .await
        .expect("DELETE");
    assert_eq!(revoked.status(), 204);
    tokio::time::sleep(Duration::from_secs(11)).await;
    let answer = client
        .get(format!("{base}/pypi/simple/requests/"))
        .basic_auth("jane", Some(&token))
        .send()
        .await
        .expect("GET");
    assert_eq!(answer.status(), 401);
    let problem: Value = answer.json().await.expect("problem");
    assert_eq!(problem["title"], "Invalid token", "{problem}");
    let output = pip(&venv(&root, "late"), &index, "six==1.16.0", &home);
    assert!(!output.status.success());

    // Nothing the clients sent put a token in the log, even at `trace`.
    drop(server);
    let logged = std::fs::read_to_string(&log).expect("log");
    assert!(
        logged.len() > 1000,
        "the log was written: {} bytes",
        logged.len()
    );
    assert!(!logged.contains("frm_"), "a token reached the log");
    assert!(!logged.contains(&token[4..]), "a token reached the log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_reads_still_work_and_a_sent_token_is_checked_and_recorded() {
    let workspace = Workspace::new();
    let root = workspace.folder.path().to_path_buf();
    workspace.add_user("jane", "Jane Analyst", &["NATIONAL:requester"], PASSWORD);
    let (_pypi, pypi_url, _cran, cran_url) = upstreams(&root.join("upstreams"));
    let (_server, base) = serve(
        &workspace,
        &pypi_url,
        &cran_url,
        "anonymous",
        &root.join("log"),
    );
    let client = reqwest::Client::new();
    let (token, _) = gateway_token(&client, &base, "jane").await;
    let home = root.join("home");
    std::fs::create_dir_all(&home).expect("home");

    let environment = venv(&root, "venv");
    let output = pip(
        &environment,
        &format!("{base}/pypi/simple/"),
        "six==1.16.0",
        &home,
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    let index = with_token(&format!("{base}/pypi/simple/"), "jane", &token);
    let output = pip(&environment, &index, "idna==3.7", &home);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(ledger_actors(&workspace, "pkg:pypi/six", 1).await, ["-"]);
    assert_eq!(
        ledger_actors(&workspace, "pkg:pypi/idna", 1).await,
        ["user:jane"]
    );

    // A wrong token is refused even where none is needed, so a mistake is noticed.
    let answer = client
        .get(format!("{base}/pypi/simple/six/"))
        .basic_auth("jane", Some("frm_0000"))
        .send()
        .await
        .expect("GET");
    assert_eq!(answer.status(), 401);
}
