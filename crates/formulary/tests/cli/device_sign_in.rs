//! Device sign-in for `formulary setup --device` (issue 13, RFC 8628 style), with the real CLI
//! and an HTTP client acting as the person's browser: setup prints the page and a short code;
//! the page needs a session and CSRF token, refuses a wrong code, and approves the right one
//! (audited); setup then receives a token for package clients and writes the clients' settings;
//! codes are single use, polls too fast are told to slow down, and one address is rate-limited.
//! The bootstrap (`setup.sh`), run in a terminal with no token set, offers the same browser
//! sign-in (Enter), and still takes a pasted token at the same prompt.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::formulary_cli::{text, Workspace};
use crate::gateway_auth::{serve, upstreams, PASSWORD};
use crate::requests::{hidden_token, sign_in, Browser};

async fn approve(browser: &mut Browser, code: &str) -> (StatusCode, String) {
    let (status, page) = browser.get(&format!("/device?code={code}")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let csrf = hidden_token(&page);
    browser
        .post("/device", &[("csrf_token", &csrf), ("code", code)], None)
        .await
}

crate::on_both_databases!(async fn setup_signs_in_with_the_browser_and_gets_a_token_once);
async fn setup_signs_in_with_the_browser_and_gets_a_token_once() {
    let workspace = Workspace::new();
    let root = workspace.folder.path().to_path_buf();
    workspace.ok(&["org", "add", "RJ1", "--name", "A trust"]);
    workspace.add_user("jane", "Jane Analyst", &["RJ1:requester"], PASSWORD);
    let (_pypi, pypi_url, _cran, cran_url) = upstreams(&root.join("upstreams"));
    let (_server, base) = serve(&workspace, &pypi_url, &cran_url, "token", &root.join("log"));
    let home = root.join("home");
    std::fs::create_dir_all(&home).expect("home");

    // Setup asks for a code and says where to approve it.
    let mut setup = Command::new(env!("CARGO_BIN_EXE_formulary"))
        .args(["setup", "--server", &base, "--device", "--client", "pip"])
        .current_dir(&home)
        .env("HOME", &home)
        .env("HOSTNAME", "LAPTOP-42")
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("FORMULARY_CONFIG_DIR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("setup");
    let (lines, said) = std::sync::mpsc::channel();
    let stderr = setup.stderr.take().expect("stderr");
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    let prompt = said
        .recv_timeout(Duration::from_secs(30))
        .expect("setup prints where to sign in");
    assert!(
        prompt.contains(&format!("open {base}/device?code="))
            && prompt.contains("approve the code"),
        "{prompt}"
    );
    let code = prompt
        .split("approve the code ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("a code")
        .to_owned();
    assert_eq!(code.len(), 9, "{code}");

    // The page needs a session; then a CSRF token; a wrong code is refused with what to do.
    let mut browser = Browser::new(&base);
    let (status, location) = browser.get(&format!("/device?code={code}")).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{location}");
    let (status, _) = sign_in(&mut browser, "jane", PASSWORD).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, page) = browser.get(&format!("/device?code={code}")).await;
    assert!(page.contains("formulary setup on LAPTOP-42"), "{page}");
    let (status, _) = browser.post("/device", &[("code", &code)], None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "no CSRF token, no approval");
    let (status, page) = approve(&mut browser, "ZZZZ-ZZZZ").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        page.contains("That code is not waiting for approval"),
        "{page}"
    );

    // Approved (typed in lower case): setup carries on and sets up pip with the new token.
    let (status, page) = approve(&mut browser, &code.to_lowercase()).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("Device approved"), "{page}");
    let output = tokio::task::spawn_blocking(move || setup.wait_with_output())
        .await
        .expect("join")
        .expect("setup ends");
    let mut printed = Vec::new();
    while let Ok(line) = said.recv_timeout(Duration::from_secs(1)) {
        printed.push(line);
    }
    let printed = printed.join("\n");
    assert!(output.status.success(), "{printed}{}", text(&output.stdout));
    assert!(printed.contains("Approved by jane"), "{printed}");
    let netrc = std::fs::read_to_string(home.join(".netrc")).expect("netrc");
    let token = netrc
        .split_whitespace()
        .find(|word| word.starts_with("frm_"))
        .expect("a token in .netrc")
        .to_owned();
    let client = reqwest::Client::new();
    let index = client
        .get(format!("{base}/o/RJ1/pypi/simple/"))
        .basic_auth("formulary", Some(&token))
        .send()
        .await
        .expect("GET");
    assert_eq!(index.status(), 200, "the issued token reads the gateway");
    let (status, _) = approve(&mut browser, &code).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "approved once");

    // The approval is audited under the person's name.
    let url = workspace.database_url().map_or_else(
        || format!("sqlite://{}", root.join("data/formulary.db").display()),
        str::to_owned,
    );
    let database = formulary_store::Database::open(&url)
        .await
        .expect("database");
    let audit = database
        .audit_for_subject(&format!("device:{code}"))
        .await
        .expect("audit");
    assert!(
        audit.len() == 1 && audit[0].action == "device.approve" && audit[0].actor == "user:jane",
        "{audit:?}"
    );

    // The protocol: pending, slow down, the token once, then nothing more.
    let started: Value = client
        .post(format!("{base}/api/v1/device/code"))
        .json(&json!({ "client_name": "a script" }))
        .send()
        .await
        .expect("POST")
        .json()
        .await
        .expect("json");
    let poll = || async {
        let response = client
            .post(format!("{base}/api/v1/device/token"))
            .json(&json!({ "device_code": started["device_code"] }))
            .send()
            .await
            .expect("POST");
        let status = response.status();
        (status, response.json::<Value>().await.expect("json"))
    };
    let (status, body) = poll().await;
    assert_eq!(
        (status.as_u16(), body["error"].as_str()),
        (400, Some("authorization_pending")),
        "{body}"
    );
    let (_, body) = poll().await;
    assert_eq!(body["error"], "slow_down", "{body}");
    let (status, _) = approve(&mut browser, started["user_code"].as_str().expect("code")).await;
    assert_eq!(status, StatusCode::OK);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (status, body) = poll().await;
    assert_eq!(status, 200, "{body}");
    assert!(body["token"]
        .as_str()
        .is_some_and(|token| token.starts_with("frm_")));
    let (_, body) = poll().await;
    assert_eq!(body["error"], "invalid_grant", "{body}");

    // One address asks for at most ten codes in ten minutes.
    let mut limited = None;
    for _ in 0..10 {
        let response = client
            .post(format!("{base}/api/v1/device/code"))
            .json(&json!({ "client_name": "a loop" }))
            .send()
            .await
            .expect("POST");
        if response.status() == 429 {
            limited = Some(response);
            break;
        }
    }
    let limited = limited.expect("a 429 after ten codes");
    assert!(limited.headers().contains_key("retry-after"));
    assert!(limited
        .text()
        .await
        .expect("body")
        .contains("sign-in codes were asked for from this address"));
}

/// `sh SCRIPT` in a terminal of its own (`script` gives it a pseudo-terminal, as a person's
/// shell has), with HOME set and no FORMULARY_TOKEN: what it prints arrives in `printed`.
struct Terminal {
    child: std::process::Child,
    input: std::process::ChildStdin,
    printed: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Terminal {
    fn run(script: &std::path::Path, home: &std::path::Path) -> Terminal {
        let mut child = Command::new("script")
            .args(["-qefc", &format!("sh {}", script.display()), "/dev/null"])
            .current_dir(home)
            .env("HOME", home)
            .env("PATH", "/usr/bin:/bin")
            .env_remove("FORMULARY_TOKEN")
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("FORMULARY_CONFIG_DIR")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("script runs");
        let input = child.stdin.take().expect("stdin");
        let mut output = child.stdout.take().expect("stdout");
        let printed = std::sync::Arc::<std::sync::Mutex<String>>::default();
        let shared = std::sync::Arc::clone(&printed);
        std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            while let Ok(read) = std::io::Read::read(&mut output, &mut buffer) {
                if read == 0 {
                    break;
                }
                shared
                    .lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buffer[..read]));
            }
        });
        Terminal {
            child,
            input,
            printed,
        }
    }

    /// Waits (up to a minute) until the terminal shows `expected`; everything shown so far.
    fn wait_for(&self, expected: &str) -> String {
        for _ in 0..600 {
            let printed = self.printed.lock().unwrap().clone();
            if printed.contains(expected) {
                return printed;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "the terminal never showed {expected:?}: {}",
            self.printed.lock().unwrap()
        );
    }

    /// Types a line, once the script has turned the terminal's echo off.
    fn type_line(&mut self, line: &str) {
        std::thread::sleep(Duration::from_millis(500));
        std::io::Write::write_all(&mut self.input, format!("{line}\n").as_bytes()).expect("type");
    }

    /// Waits for the script to end: its exit status and everything shown.
    async fn finish(self) -> (std::process::ExitStatus, String) {
        let Terminal {
            mut child,
            input,
            printed,
        } = self;
        let status = tokio::task::spawn_blocking(move || child.wait())
            .await
            .expect("join")
            .expect("script ends");
        drop(input);
        std::thread::sleep(Duration::from_millis(200));
        let shown = printed.lock().unwrap().replace('\r', "");
        (status, shown)
    }
}

crate::on_both_databases!(async fn the_bootstrap_offers_the_browser_sign_in_in_a_terminal);
async fn the_bootstrap_offers_the_browser_sign_in_in_a_terminal() {
    if std::env::consts::ARCH != "x86_64" || std::env::consts::OS != "linux" {
        eprintln!("skipped: the client offered here is built for x86_64 Linux");
        return;
    }
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipped: no `script` (util-linux) to give the bootstrap a terminal");
        return;
    }
    let workspace = Workspace::new();
    let root = workspace.folder.path().to_path_buf();
    workspace.ok(&["org", "add", "RJ1", "--name", "A trust"]);
    workspace.add_user("jane", "Jane Analyst", &["RJ1:requester"], PASSWORD);
    let (_pypi, pypi_url, _cran, cran_url) = upstreams(&root.join("upstreams"));
    let vendor = root.join("vendor");
    let (_vendor_server, vendor_url) = crate::formulary_cli::static_server(&{
        std::fs::create_dir_all(&vendor).expect("vendor");
        vendor.clone()
    });
    let client = crate::first_day::client_binary(&root);
    let (url, sha256, size) = crate::first_day::publish(
        &vendor,
        &vendor_url,
        "formulary/1.0.0/formulary-x86_64-unknown-linux-gnu",
        &client,
    );
    crate::first_day::add_manifest(
        &workspace,
        &root,
        "formulary",
        "1.0.0",
        &format!("url = \"{url}\"\nsha256 = \"{sha256}\"\nsize = {size}\nkind = \"binary\"\n"),
    );
    let (_server, base) = serve(&workspace, &pypi_url, &cran_url, "token", &root.join("log"));
    let script = root.join("setup.sh");
    let body = reqwest::get(format!("{base}/setup.sh"))
        .await
        .expect("GET")
        .text()
        .await
        .expect("script");
    std::fs::write(&script, body).expect("script");

    // No token set, a terminal: Enter signs in with the browser.
    let home = root.join("browser-home");
    std::fs::create_dir_all(&home).expect("home");
    let mut terminal = Terminal::run(&script, &home);
    terminal.wait_for("Sign in with your browser [Y/n], or paste a token for package clients");
    terminal.type_line("");
    let shown = terminal.wait_for("Waiting for approval");
    assert!(
        shown.contains(&format!("open {base}/device?code=")),
        "{shown}"
    );
    let code = shown
        .split("approve the code ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("a code")
        .to_owned();
    let mut browser = Browser::new(&base);
    let (status, _) = sign_in(&mut browser, "jane", PASSWORD).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, page) = browser.get(&format!("/device?code={code}")).await;
    assert!(page.contains("formulary bootstrap on"), "{page}");
    let (status, page) = approve(&mut browser, &code).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let (status, shown) = terminal.finish().await;
    assert!(status.success(), "{shown}");
    assert!(
        shown.contains("Approved by jane: a token for package clients was issued.")
            && shown.contains("Installed formulary 1.0.0 in")
            && shown.contains("(SHA-256 checked)"),
        "{shown}"
    );
    let netrc = std::fs::read_to_string(home.join(".netrc")).expect("netrc");
    let token = netrc
        .split_whitespace()
        .find(|word| word.starts_with("frm_"))
        .expect("a token in .netrc")
        .to_owned();
    assert!(!shown.contains(&token), "the token is never shown");
    assert!(home.join(".local/bin/formulary").exists());

    // The token path stays: pasted at the same prompt (hidden), it is used as before.
    let home = root.join("token-home");
    std::fs::create_dir_all(&home).expect("home");
    let mut terminal = Terminal::run(&script, &home);
    terminal.wait_for("Sign in with your browser [Y/n], or paste a token for package clients");
    terminal.type_line(&token);
    let (status, shown) = terminal.finish().await;
    assert!(status.success(), "{shown}");
    assert!(
        shown.contains("Installed formulary 1.0.0 in") && !shown.contains("Waiting for approval"),
        "{shown}"
    );
    assert!(
        !shown.contains(&token),
        "a pasted token is not echoed: {shown}"
    );
    let netrc = std::fs::read_to_string(home.join(".netrc")).expect("netrc");
    assert!(netrc.contains(&token), "{netrc}");
}
