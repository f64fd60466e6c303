//! Device sign-in for `formulary setup --device` (issue 13, RFC 8628 style), with the real CLI
//! and an HTTP client acting as the person's browser: setup prints the page and a short code;
//! the page needs a session and CSRF token, refuses a wrong code, and approves the right one
//! (audited); setup then receives a token for package clients and writes the clients' settings;
//! codes are single use, polls too fast are told to slow down, and one address is rate-limited.

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
