//! Accounts, requests and reviews against a real server: every role can do only what it may
//! (over the JSON API with personal tokens from `formulary login`'s endpoint), the web forms
//! refuse cross-site posts, oversized input and repeated failed sign-ins, escape markup, and a
//! session stops working after sign-out. Decisions reach the decision log, the metrics and a
//! verifiable audit log.

use std::io::Write;
use std::process::Stdio;

use reqwest::{redirect, StatusCode};
use serde_json::{json, Value};

use crate::formulary_cli::{text, Running, Workspace};

pub(crate) const PASSWORD: &str = "a long test passphrase";

/// A workspace with two trusts and one person per role; returns it with the running server.
pub(crate) fn setup() -> (Workspace, Running, String) {
    let workspace = Workspace::new();
    workspace.ok(&["org", "add", "RJ1", "--name", "Trust One"]);
    workspace.ok(&["org", "add", "RQM", "--name", "Trust Two"]);
    workspace.add_user("ana", "ana", &["RJ1:requester"], PASSWORD);
    workspace.add_user("rob", "rob", &["RJ1:reviewer"], PASSWORD);
    workspace.add_user("aisha", "aisha", &["RJ1:approver"], PASSWORD);
    workspace.add_user("olu", "olu", &["RJ1:organisation-admin"], PASSWORD);
    workspace.add_user(
        "other",
        "other",
        &["RQM:approver", "RQM:reviewer"],
        PASSWORD,
    );
    workspace.add_user("audrey", "audrey", &["NATIONAL:auditor"], PASSWORD);
    let (server, base) = workspace.serve(&[]);
    (workspace, server, base)
}

pub(crate) async fn login(client: &reqwest::Client, base: &str, username: &str) -> String {
    let answer: Value = client
        .post(format!("{base}/api/v1/session/token"))
        .json(&json!({ "username": username, "password": PASSWORD }))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("JSON");
    answer["token"]
        .as_str()
        .unwrap_or_else(|| panic!("no token: {answer}"))
        .to_owned()
}

pub(crate) async fn call(
    client: &reqwest::Client,
    token: &str,
    method: &str,
    url: String,
    body: Value,
) -> (StatusCode, Value) {
    let request = match method {
        "GET" => client.get(url),
        _ => client.post(url).json(&body),
    };
    let response = request.bearer_auth(token).send().await.expect("API call");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

pub(crate) fn request_body(name: &str) -> Value {
    json!({
        "ecosystem": "pypi", "name": name, "problem": "Parse configuration files in the data pipeline",
        "data_class": "aggregate", "environment": "Linux server", "users": "3"
    })
}

crate::on_both_databases!(async fn each_role_does_only_what_it_may_and_decisions_are_logged_counted_and_audited);
async fn each_role_does_only_what_it_may_and_decisions_are_logged_counted_and_audited() {
    let (workspace, _server, base) = setup();
    let client = reqwest::Client::new();
    let mut tokens = std::collections::HashMap::new();
    for name in ["ana", "rob", "aisha", "olu", "other", "audrey"] {
        tokens.insert(name, login(&client, &base, name).await);
    }
    let api = |path: &str| format!("{base}/api/v1{path}");

    let (status, me) = call(&client, &tokens["ana"], "GET", api("/me"), Value::Null).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["memberships"][0]["role"], "requester", "{me}");

    let (status, created) = call(
        &client,
        &tokens["ana"],
        "POST",
        api("/requests"),
        request_body("tomli"),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["state"], "submitted");
    assert_eq!(
        created["organisation"], "RJ1",
        "the requester's own organisation is the default"
    );
    let id = created["id"].as_i64().expect("id");
    let request = |suffix: &str| api(&format!("/requests/{id}{suffix}"));
    let stage = |stage: &str| json!({ "stage": stage, "verdict": "passed", "note": "checked" });
    let approve = json!({ "outcome": "approved", "reason": "Small, maintained, MIT" });

    // An auditor reads but never changes; requesters, admins and strangers do not review or decide.
    let (status, _) = call(
        &client,
        &tokens["audrey"],
        "POST",
        api("/requests"),
        request_body("tomli"),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    for who in ["ana", "aisha", "olu", "other", "audrey"] {
        let (status, answer) = call(
            &client,
            &tokens[who],
            "POST",
            request("/sign-offs"),
            stage("basic"),
        )
        .await;
        // Another trust's staff cannot see the request at all (S1), so for them it is a 404.
        let expected = if who == "other" {
            StatusCode::NOT_FOUND
        } else {
            StatusCode::FORBIDDEN
        };
        assert_eq!(status, expected, "{who} signed off: {answer}");
    }
    for who in ["ana", "rob", "olu", "other", "audrey"] {
        let (status, answer) = call(
            &client,
            &tokens[who],
            "POST",
            request("/decision"),
            approve.clone(),
        )
        .await;
        let expected = if who == "other" {
            StatusCode::NOT_FOUND
        } else {
            StatusCode::FORBIDDEN
        };
        assert_eq!(status, expected, "{who} decided: {answer}");
    }
    let (status, answer) = call(
        &client,
        &tokens["aisha"],
        "POST",
        request("/decision"),
        approve.clone(),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "approval before the stages are signed: {answer}"
    );
    assert!(
        answer["detail"]
            .as_str()
            .unwrap()
            .contains("Basic review, Technical review, Security review"),
        "{answer}"
    );

    for name in ["basic", "technical", "security"] {
        let (status, answer) = call(
            &client,
            &tokens["rob"],
            "POST",
            request("/sign-offs"),
            stage(name),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(answer["state"], "in-review");
    }
    let (status, _) = call(
        &client,
        &tokens["rob"],
        "POST",
        request("/sign-offs"),
        stage("basic"),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "a stage is signed off once");
    let (status, _) = call(
        &client,
        &tokens["aisha"],
        "POST",
        request("/decision"),
        json!({ "outcome": "approved", "reason": "x", "scope": "national" }),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "a trust approver cannot decide nationally"
    );
    let (status, comment) = call(
        &client,
        &tokens["ana"],
        "POST",
        request("/comments"),
        json!({ "body": "Thanks!" }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{comment}");
    let (status, decided) = call(
        &client,
        &tokens["aisha"],
        "POST",
        request("/decision"),
        approve.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{decided}");
    assert_eq!(decided["state"], "approved");
    assert_eq!(decided["decision"]["scope"], "organisation");
    let entry = decided["decision"]["entry_id"]
        .as_str()
        .expect("an entry was written")
        .to_owned();
    let kinds: Vec<&str> = decided["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "submitted",
            "sign-off",
            "sign-off",
            "sign-off",
            "comment",
            "decision"
        ]
    );
    let (status, _) = call(
        &client,
        &tokens["ana"],
        "POST",
        request("/withdraw"),
        json!({}),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "a decided request cannot be withdrawn"
    );

    // The approver is never the requester.
    let (_, own) = call(
        &client,
        &tokens["aisha"],
        "POST",
        api("/requests"),
        request_body("tomlkit"),
    )
    .await;
    let own_id = own["id"].as_i64().expect("id");
    for name in ["basic", "technical", "security"] {
        call(
            &client,
            &tokens["rob"],
            "POST",
            api(&format!("/requests/{own_id}/sign-offs")),
            stage(name),
        )
        .await;
    }
    let (status, answer) = call(
        &client,
        &tokens["aisha"],
        "POST",
        api(&format!("/requests/{own_id}/decision")),
        approve.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        answer["detail"]
            .as_str()
            .unwrap()
            .contains("never the requester"),
        "{answer}"
    );

    // Reuse: the same tool asked again is granted at once from the new entry.
    let (status, again) = call(
        &client,
        &tokens["ana"],
        "POST",
        api("/requests"),
        request_body("tomli"),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(again["state"], "approved", "{again}");
    assert_eq!(again["decision"]["reused"], true);
    assert_eq!(again["decision"]["entry_id"], entry.as_str());

    let (_, mine) = call(
        &client,
        &tokens["ana"],
        "GET",
        api("/requests"),
        Value::Null,
    )
    .await;
    assert_eq!(mine.as_array().unwrap().len(), 2);
    let (_, queue) = call(
        &client,
        &tokens["rob"],
        "GET",
        api("/requests?scope=queue"),
        Value::Null,
    )
    .await;
    assert_eq!(
        queue.as_array().unwrap().len(),
        1,
        "only aisha's own request is still open: {queue}"
    );

    let log: Vec<Value> = client
        .get(api("/decisions?q=tomli"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        log.iter().any(|row| row["decision"] == "approved"
            && row["request"] == id
            && row["reason"]
                .as_str()
                .unwrap()
                .contains("Small, maintained")),
        "{log:?}"
    );
    let csv = client
        .get(format!("{base}/decisions?q=tomli&format=csv"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        csv.starts_with("\"decided_at\",\"purl\"") && csv.contains("\"pkg:pypi/tomli\""),
        "{csv}"
    );
    let metrics: Value = client
        .get(api("/metrics"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(metrics["requests_by_state"]["approved"], 2, "{metrics}");
    assert_eq!(metrics["reuse_rate"], 0.5, "{metrics}");
    assert_eq!(
        metrics["estimated_cost_avoided_pounds"],
        json!([6000, 8000])
    );

    let (status, _) = call(&client, &tokens["ana"], "GET", api("/audit"), Value::Null).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, audit) = call(
        &client,
        &tokens["audrey"],
        "GET",
        api("/audit"),
        Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["action"].as_str().unwrap())
        .collect();
    for action in [
        "user.add",
        "role.grant",
        "token.issue",
        "request.submit",
        "request.sign-off",
        "request.decide",
        "entry.add",
        "request.comment",
    ] {
        assert!(
            actions.contains(&action),
            "{action} missing from {actions:?}"
        );
    }
    let verified = workspace.run(&["audit", "verify"]);
    assert!(verified.status.success(), "{}", text(&verified.stdout));
}

/// A browser-like client: no redirects followed, cookies carried by hand.
pub(crate) struct Browser {
    client: reqwest::Client,
    base: String,
    pub(crate) cookies: std::collections::BTreeMap<String, String>,
}

impl Browser {
    pub(crate) fn new(base: &str) -> Browser {
        Browser {
            client: reqwest::Client::builder()
                .redirect(redirect::Policy::none())
                .build()
                .expect("client"),
            base: base.to_owned(),
            cookies: std::collections::BTreeMap::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn remember(&mut self, response: &reqwest::Response) {
        for value in response.headers().get_all("set-cookie") {
            let value = value.to_str().expect("cookie");
            let (pair, attributes) = value.split_once(';').unwrap_or((value, ""));
            let (name, content) = pair.split_once('=').expect("name=value");
            assert!(
                attributes.contains("HttpOnly") && attributes.contains("SameSite=Lax"),
                "{value}"
            );
            if content.is_empty() {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), content.to_owned());
            }
        }
    }

    pub(crate) async fn get(&mut self, path: &str) -> (StatusCode, String) {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .send()
            .await
            .expect("GET");
        self.remember(&response);
        (response.status(), response.text().await.expect("body"))
    }

    pub(crate) async fn post(
        &mut self,
        path: &str,
        fields: &[(&str, &str)],
        origin: Option<&str>,
    ) -> (StatusCode, String) {
        let body: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        self.post_raw(path, body, origin).await
    }

    async fn post_raw(
        &mut self,
        path: &str,
        body: String,
        origin: Option<&str>,
    ) -> (StatusCode, String) {
        let mut request = self
            .client
            .post(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        let response = request.send().await.expect("POST");
        self.remember(&response);
        let location = response
            .headers()
            .get("location")
            .map(|value| value.to_str().unwrap_or("").to_owned());
        let status = response.status();
        let text = response.text().await.expect("body");
        (status, location.unwrap_or(text))
    }
}

pub(crate) fn as_pairs(fields: &[(String, String)]) -> Vec<(&str, &str)> {
    fields
        .iter()
        .map(|(key, value)| (key.as_str(), value.as_str()))
        .collect()
}

pub(crate) fn hidden_token(page: &str) -> String {
    let marker = "name=\"csrf_token\" value=\"";
    let start = page.find(marker).expect("a CSRF field") + marker.len();
    page[start..].split('"').next().expect("token").to_owned()
}

pub(crate) async fn sign_in(
    browser: &mut Browser,
    username: &str,
    password: &str,
) -> (StatusCode, String) {
    let (_, page) = browser.get("/sign-in").await;
    let token = hidden_token(&page);
    browser
        .post(
            "/sign-in",
            &[
                ("csrf_token", &token),
                ("username", username),
                ("password", password),
                ("next", "/requests"),
            ],
            None,
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_forms_refuse_forgery_oversize_and_guessing_escape_markup_and_end_sessions() {
    let (_workspace, _server, base) = setup();
    let mut browser = Browser::new(&base);

    // The sign-in form itself refuses a post without its token.
    let (status, _) = browser
        .post(
            "/sign-in",
            &[("username", "ana"), ("password", PASSWORD)],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, location) = sign_in(&mut browser, "ana", PASSWORD).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{location}");
    assert_eq!(location, "/requests");
    let (status, page) = browser.get("/requests/new").await;
    assert_eq!(status, StatusCode::OK);
    let token = hidden_token(&page);
    let valid = |problem: &str| {
        vec![
            ("problem".to_owned(), problem.to_owned()),
            ("data_class".to_owned(), "aggregate".to_owned()),
            ("ecosystem".to_owned(), "pypi".to_owned()),
            ("name".to_owned(), "attrs".to_owned()),
            ("environment".to_owned(), "laptop".to_owned()),
            ("users".to_owned(), "2".to_owned()),
        ]
    };

    // CSRF: no token, a wrong token, or a foreign Origin change nothing.
    let fields = valid("Parse timestamps");
    let (status, _) = browser.post("/requests", &as_pairs(&fields), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let mut forged = fields.clone();
    forged.push(("csrf_token".to_owned(), "0".repeat(64)));
    let (status, _) = browser.post("/requests", &as_pairs(&forged), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let mut signed = fields.clone();
    signed.push(("csrf_token".to_owned(), token.clone()));
    let (status, _) = browser
        .post(
            "/requests",
            &as_pairs(&signed),
            Some("https://evil.example"),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, listing) = browser.get("/requests").await;
    assert!(
        listing.contains("You have not requested anything yet"),
        "nothing was created"
    );

    // Limits: a field over 4,000 characters is named; a body over 64 KB is refused whole.
    let mut long = valid(&"x".repeat(4001));
    long.push(("csrf_token".to_owned(), token.clone()));
    let (status, page) = browser.post("/requests", &as_pairs(&long), None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        page.contains("nhsuk-error-summary")
            && page.contains("4000 characters or fewer")
            && page.contains("<title>Error: "),
        "{page}"
    );
    let (status, page) = browser
        .post_raw(
            "/requests",
            format!("csrf_token={token}&problem={}", "y".repeat(70_000)),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(page.contains("64 KB"), "{page}");

    // Markup in text fields is shown as text.
    let mut hostile = valid("<script>alert('x')</script> needs \"quotes\" & <b>tags</b>");
    hostile.push(("csrf_token".to_owned(), token.clone()));
    let (status, location) = browser.post("/requests", &as_pairs(&hostile), None).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{location}");
    let (status, page) = browser.get(&location).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;")
            || page.contains("&lt;script&gt;alert('x')&lt;/script&gt;"),
        "{page}"
    );
    assert!(
        !page.contains("<script>") && !page.contains("<b>tags"),
        "{page}"
    );

    // Sign-out ends the session for good, even for someone who kept the cookie.
    let kept = browser.cookies.clone();
    let (status, _) = browser
        .post("/sign-out", &[("csrf_token", &token)], None)
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    browser.cookies = kept;
    let (status, location) = browser.post("/requests", &as_pairs(&signed), None).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(location.starts_with("/sign-in?next="), "{location}");
    let (status, _) = browser.get("/requests").await;
    assert_eq!(status, StatusCode::SEE_OTHER);

    // Guessing: after five failures for a username from one address, the next attempt must
    // wait (the right password too, for a second), and then the owner gets in (S2).
    let mut guesser = Browser::new(&base);
    for _ in 0..5 {
        let (status, page) = sign_in(&mut guesser, "rob", "wrong password!!").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(
            page.contains("Enter a correct username and password"),
            "{page}"
        );
    }
    let (status, page) = sign_in(&mut guesser, "rob", PASSWORD).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(page.contains("Too many failed sign-ins lately"), "{page}");
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let (status, _) = sign_in(&mut guesser, "rob", PASSWORD).await;
    assert_eq!(
        status,
        StatusCode::SEE_OTHER,
        "the owner is slowed, not locked out"
    );
    let (status, _) = sign_in(&mut Browser::new(&base), "aisha", PASSWORD).await;
    assert_eq!(
        status,
        StatusCode::SEE_OTHER,
        "other accounts are unaffected"
    );
}

crate::on_both_databases!(fn the_cli_logs_in_searches_requests_and_shows_status);
fn the_cli_logs_in_searches_requests_and_shows_status() {
    let (workspace, _server, base) = setup();
    let credentials = workspace.folder.path().join("credentials.json");
    let client = |arguments: &[&str], stdin: Option<&str>| {
        let mut child = workspace
            .command(arguments)
            .env("FORMULARY_CREDENTIALS", &credentials)
            .env_remove("FORMULARY_TOKEN")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("formulary runs");
        let mut input = child.stdin.take().expect("stdin");
        if let Some(stdin) = stdin {
            input.write_all(stdin.as_bytes()).expect("stdin written");
        }
        drop(input);
        child.wait_with_output().expect("formulary ends")
    };

    let refused = client(&["status", "--server", &base], None);
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        text(&refused.stderr).contains("you are not signed in"),
        "{}",
        text(&refused.stderr)
    );
    let wrong = client(
        &[
            "login",
            "--server",
            &base,
            "--username",
            "ana",
            "--password-stdin",
        ],
        Some("not the password\n"),
    );
    assert!(!wrong.status.success());
    assert!(
        text(&wrong.stderr).contains("Sign-in failed"),
        "{}",
        text(&wrong.stderr)
    );

    let login = client(
        &[
            "login",
            "--server",
            &base,
            "--username",
            "ana",
            "--password-stdin",
        ],
        Some(&format!("{PASSWORD}\n")),
    );
    assert!(login.status.success(), "{}", text(&login.stderr));
    assert!(
        text(&login.stdout).contains("Signed in to")
            && text(&login.stdout).contains("requester of RJ1"),
        "{}",
        text(&login.stdout)
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&credentials)
            .expect("saved")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "only the owner can read the token");
    }

    let requested = client(
        &[
            "request",
            "pkg:pypi/polars@1.2.0",
            "--problem",
            "Faster joins on the SUS extract",
            "--data",
            "personal",
            "--environment",
            "Linux VM",
            "--users",
            "3",
        ],
        None,
    );
    assert!(requested.status.success(), "{}", text(&requested.stderr));
    assert!(
        text(&requested.stdout).contains("Request 1 submitted for pkg:pypi/polars"),
        "{}",
        text(&requested.stdout)
    );
    let bad = client(
        &[
            "request",
            "pkg:pypi/polars",
            "--problem",
            "x",
            "--data",
            "secret",
            "--environment",
            "y",
            "--users",
            "1",
        ],
        None,
    );
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        text(&bad.stderr).contains("data_class"),
        "{}",
        text(&bad.stderr)
    );

    let found = client(&["search", "pola"], None);
    assert!(
        text(&found.stdout).contains("pkg:pypi/polars"),
        "{}",
        text(&found.stdout)
    );
    let listed = client(&["status"], None);
    assert!(
        text(&listed.stdout).contains("pkg:pypi/polars")
            && text(&listed.stdout).contains("submitted"),
        "{}",
        text(&listed.stdout)
    );
    let one = client(&["status", "1"], None);
    let shown = text(&one.stdout);
    assert!(
        shown.contains("==1.2.0") && shown.contains("submitted") && shown.contains("Timeline:"),
        "{shown}"
    );
}
