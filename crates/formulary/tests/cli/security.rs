//! The security review's findings (issue 12), each reproduced against the real binary over a
//! real socket: request visibility (S1), sign-in throttling and trusted proxies (S2), service
//! tokens and requests (S5), the public URL (S6), caching of personal pages (S7), HSTS, Secure
//! cookies and the Origin check (S8), the account lifecycle (S9) and who decided an entry (S10).

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::requests::{call, login, request_body, setup, sign_in, Browser, PASSWORD};

/// A call with any method, returning the status, the headers and the JSON body.
pub(crate) async fn send(
    client: &reqwest::Client,
    token: Option<&str>,
    method: reqwest::Method,
    url: String,
    body: Option<Value>,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let mut request = client.request(method, url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("API call");
    let status = response.status();
    let headers = response.headers().clone();
    (
        status,
        headers,
        response.json().await.unwrap_or(Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s1_requests_are_visible_only_to_their_requester_organisation_staff_and_national_roles() {
    let (workspace, _server, base) = setup();
    workspace.add_user("ben", "ben", &["RJ1:requester"], PASSWORD);
    let client = reqwest::Client::new();
    let mut tokens = std::collections::HashMap::new();
    for name in ["ana", "ben", "rob", "aisha", "olu", "other", "audrey"] {
        tokens.insert(name, login(&client, &base, name).await);
    }
    let api = |path: &str| format!("{base}/api/v1{path}");
    let mut body = request_body("tomli");
    body["credentials"] = json!("read-only account on the warehouse");
    let (status, created) = call(&client, &tokens["ana"], "POST", api("/requests"), body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_i64().expect("id");

    for who in ["ana", "rob", "aisha", "olu", "audrey"] {
        let (status, shown) = call(
            &client,
            &tokens[who],
            "GET",
            api(&format!("/requests/{id}")),
            Value::Null,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{who} may read it: {shown}");
    }
    // Another trust's staff and another requester of the same trust are told it does not
    // exist, exactly as for a number never used.
    let (_, never) = call(
        &client,
        &tokens["other"],
        "GET",
        api("/requests/999"),
        Value::Null,
    )
    .await;
    for who in ["other", "ben"] {
        let (status, hidden) = call(
            &client,
            &tokens[who],
            "GET",
            api(&format!("/requests/{id}")),
            Value::Null,
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{who}: {hidden}");
        assert_eq!(
            hidden["detail"]
                .as_str()
                .unwrap()
                .replace(&id.to_string(), "N"),
            never["detail"].as_str().unwrap().replace("999", "N"),
        );
        let (status, _) = call(
            &client,
            &tokens[who],
            "POST",
            api(&format!("/requests/{id}/comments")),
            json!({ "body": "what is this?" }),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{who} cannot comment either");
    }
    let (_, queue) = call(
        &client,
        &tokens["other"],
        "GET",
        api("/requests?scope=queue"),
        Value::Null,
    )
    .await;
    assert_eq!(queue, json!([]), "another trust's queue does not list it");

    // The component's requests: none for anonymous callers or strangers, full for the requester.
    let anonymous: Value = client
        .get(api("/components/pypi/tomli"))
        .send()
        .await
        .expect("component")
        .json()
        .await
        .expect("JSON");
    assert_eq!(anonymous["requests"], json!([]), "{anonymous}");
    let (_, stranger) = call(
        &client,
        &tokens["other"],
        "GET",
        api("/components/pypi/tomli"),
        Value::Null,
    )
    .await;
    assert_eq!(stranger["requests"], json!([]));
    let (_, own) = call(
        &client,
        &tokens["ana"],
        "GET",
        api("/components/pypi/tomli"),
        Value::Null,
    )
    .await;
    assert_eq!(
        own["requests"][0]["credentials"],
        "read-only account on the warehouse"
    );

    // The web pages follow the same rule.
    let mut stranger = Browser::new(&base);
    sign_in(&mut stranger, "other", PASSWORD).await;
    let (status, page) = stranger.get(&format!("/requests/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(!page.contains("warehouse"), "{page}");
    let (_, page) = stranger.get("/components/pypi/tomli").await;
    assert!(!page.contains(&format!("/requests/{id}\"")), "{page}");
    let mut reviewer = Browser::new(&base);
    sign_in(&mut reviewer, "rob", PASSWORD).await;
    let (status, page) = reviewer.get(&format!("/requests/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("warehouse"));

    // The public decision log stays public.
    let log = client
        .get(format!("{base}/decisions"))
        .send()
        .await
        .expect("log");
    assert_eq!(log.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s5_a_service_token_filing_a_request_gets_a_clear_403_and_s10_decided_by_is_the_caller() {
    let (workspace, _server, base) = setup();
    let client = reqwest::Client::new();
    let api = |path: &str| format!("{base}/api/v1{path}");
    let service = workspace
        .ok(&[
            "token",
            "create",
            "--name",
            "ci",
            "--role",
            "requester",
            "--org",
            "RJ1",
        ])
        .trim()
        .to_owned();
    let (status, refused) = call(
        &client,
        &service,
        "POST",
        api("/requests"),
        request_body("tomli"),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    assert!(
        refused["detail"]
            .as_str()
            .unwrap()
            .contains("service account")
            && refused["detail"]
                .as_str()
                .unwrap()
                .contains("formulary login"),
        "{refused}"
    );

    let curator = workspace
        .ok(&[
            "token",
            "create",
            "--name",
            "curation bot",
            "--role",
            "national-curator",
        ])
        .trim()
        .to_owned();
    let forged = json!({
        "component": "pkg:pypi/httpx", "status": "approved", "reason": "async HTTP client",
        "decided_by": "Chief Medical Officer"
    });
    let (status, refused) = call(&client, &curator, "POST", api("/entries"), forged).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    assert!(
        refused["detail"].as_str().unwrap().contains("decided_by"),
        "{refused}"
    );
    let honest = json!({ "component": "pkg:pypi/httpx", "status": "approved", "reason": "async HTTP client" });
    let (status, created) = call(&client, &curator, "POST", api("/entries"), honest).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["decided_by"], "curation bot");

    let olu = login(&client, &base, "olu").await;
    let local = json!({ "organisation": "RJ1", "component": "pkg:pypi/attrs", "status": "approved", "reason": "trust policy" });
    let (status, created) = call(&client, &olu, "POST", api("/entries"), local).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(
        created["decided_by"], "olu",
        "a person's entry names the person"
    );
    let log: Vec<Value> = client
        .get(api("/decisions?q=httpx"))
        .send()
        .await
        .expect("log")
        .json()
        .await
        .expect("JSON");
    assert!(
        log.iter()
            .all(|row| row["decided_by"] != "Chief Medical Officer"),
        "{log:?}"
    );
}

/// Signs in with a fresh form, optionally as a proxy reporting `forwarded_for` and with an
/// `Origin`; returns the status and headers of the answer to the post.
async fn sign_in_as(
    base: &str,
    username: &str,
    password: &str,
    forwarded_for: Option<&str>,
    origin: Option<&str>,
) -> (StatusCode, reqwest::header::HeaderMap) {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let form = client
        .get(format!("{base}/sign-in"))
        .send()
        .await
        .expect("form");
    let cookie = form
        .headers()
        .get("set-cookie")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .expect("sign-in cookie")
        .to_owned();
    let token = cookie.split_once('=').expect("name=value").1.to_owned();
    let mut post = client
        .post(format!("{base}/sign-in"))
        .header("cookie", cookie)
        .form(&[
            ("csrf_token", token.as_str()),
            ("username", username),
            ("password", password),
            ("next", "/"),
        ]);
    if let Some(forwarded_for) = forwarded_for {
        post = post.header("x-forwarded-for", forwarded_for);
    }
    if let Some(origin) = origin {
        post = post.header("origin", origin);
    }
    let answer = post.send().await.expect("post");
    (answer.status(), answer.headers().clone())
}

fn retry_after(headers: &reqwest::header::HeaderMap) -> u64 {
    headers
        .get("retry-after")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse().ok())
        .expect("a throttled answer says how long to wait")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s2_guessing_slows_the_guesser_without_locking_out_the_owner() {
    let workspace = crate::formulary_cli::Workspace::new();
    workspace.ok(&["org", "add", "RJ1", "--name", "Trust One"]);
    for name in ["rob", "aisha"] {
        workspace.add_user(name, name, &["RJ1:reviewer"], PASSWORD);
    }
    let (_server, base) =
        workspace.serve(&[("FORMULARY_TRUSTED_PROXIES", "[\"127.0.0.1/32\"]".to_owned())]);

    // A guesser spread over eleven addresses (reported by the trusted proxy) against rob.
    for index in 0..11 {
        let (status, _) = sign_in_as(
            &base,
            "rob",
            "not the password",
            Some(&format!("203.0.113.{index}")),
            None,
        )
        .await;
        assert!(
            matches!(
                status,
                StatusCode::UNAUTHORIZED | StatusCode::TOO_MANY_REQUESTS
            ),
            "{status}"
        );
    }
    // The owner, from their own address, gets in: at once, or after a short wait.
    let started = std::time::Instant::now();
    let mut status;
    loop {
        let (answer, headers) =
            sign_in_as(&base, "rob", PASSWORD, Some("198.51.100.7"), None).await;
        status = answer;
        if status != StatusCode::TOO_MANY_REQUESTS {
            break;
        }
        let wait = retry_after(&headers);
        assert!(wait <= 60, "the owner waits at most a minute: {wait}");
        tokio::time::sleep(std::time::Duration::from_secs(wait)).await;
    }
    assert_eq!(status, StatusCode::SEE_OTHER, "the owner signs in");
    assert!(started.elapsed() < std::time::Duration::from_secs(30));

    // One address guessing one account is made to wait after five failures, with Retry-After,
    // and the refused attempt is not even checked.
    for _ in 0..5 {
        let (status, _) =
            sign_in_as(&base, "aisha", "not the password", Some("192.0.2.50"), None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (status, headers) = sign_in_as(&base, "aisha", PASSWORD, Some("192.0.2.50"), None).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(retry_after(&headers) >= 1);
    let (status, _) = sign_in_as(&base, "aisha", PASSWORD, Some("192.0.2.51"), None).await;
    assert_eq!(
        status,
        StatusCode::SEE_OTHER,
        "aisha herself, elsewhere, is not held up"
    );

    // The API's sign-in (formulary login) follows the same rule.
    let client = reqwest::Client::new();
    let answer = client
        .post(format!("{base}/api/v1/session/token"))
        .header("x-forwarded-for", "192.0.2.50")
        .json(&json!({ "username": "aisha", "password": PASSWORD }))
        .send()
        .await
        .expect("token");
    assert_eq!(answer.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(answer.headers().contains_key("retry-after"));
}

/// A guard for the trusted-proxy rule rather than a reproduction (the old code never read the
/// header): without `trusted_proxies`, a made-up `X-Forwarded-For` is not believed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s2_forwarded_for_from_an_untrusted_peer_is_ignored() {
    let (_workspace, _server, base) = setup();
    for index in 0..5 {
        let (status, _) = sign_in_as(
            &base,
            "olu",
            "not the password",
            Some(&format!("203.0.113.{index}")),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (status, _) = sign_in_as(
        &base,
        "olu",
        "not the password",
        Some("198.51.100.99"),
        None,
    )
    .await;
    assert_eq!(
        status,
        StatusCode::TOO_MANY_REQUESTS,
        "a made-up X-Forwarded-For does not give a guesser a fresh address"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s6_s7_s8_links_cookies_origin_and_caching_follow_the_configured_public_url() {
    let workspace = crate::formulary_cli::Workspace::new();
    workspace.ok(&["org", "add", "RJ1", "--name", "Trust One"]);
    workspace.add_user("ana", "ana", &["RJ1:requester"], PASSWORD);
    let (_plain, plain_base) = workspace.serve(&[]);
    let client = reqwest::Client::new();

    // S6: the Host header is not reflected; the default public URL is the listen address.
    let home = client
        .get(format!("{plain_base}/"))
        .header("host", "evil.example")
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .expect("home");
    assert!(!home.headers().contains_key("strict-transport-security"));
    let page = home.text().await.expect("page");
    assert!(!page.contains("evil.example"), "{page}");
    assert!(
        page.contains(&format!("{plain_base}/o/NATIONAL/pypi/simple/")),
        "{page}"
    );

    let public = "https://formulary.example.nhs.uk";
    let (_server, base) = workspace.serve(&[("FORMULARY_PUBLIC_URL", format!("{public}/"))]);
    let home = client
        .get(format!("{base}/"))
        .header("host", "evil.example")
        .send()
        .await
        .expect("home");
    // S8: HSTS with an https public URL.
    assert_eq!(
        home.headers()["strict-transport-security"],
        "max-age=31536000"
    );
    let page = home.text().await.expect("page");
    assert!(
        page.contains(&format!(
            "pip config set global.index-url {public}/o/NATIONAL/pypi/simple/"
        )),
        "{page}"
    );
    assert!(
        page.contains(&format!("formulary setup --server {public}/")),
        "the home page offers the setup command: {page}"
    );
    assert!(
        page.contains(&format!("curl -fsSL {public}/setup.sh | sh"))
            && page.contains(&format!("irm {public}/setup.ps1 | iex")),
        "the home page offers the bootstrap: {page}"
    );
    assert!(!page.contains("evil.example"));
    // The bootstrap scripts name the public URL too, whatever the Host.
    for script in ["setup.sh", "setup.ps1"] {
        let body = client
            .get(format!("{base}/{script}"))
            .header("host", "evil.example")
            .send()
            .await
            .expect(script)
            .text()
            .await
            .expect("script");
        assert!(body.contains(&format!("'{public}/'")), "{body}");
        assert!(!body.contains("evil.example"), "{script}");
    }

    // S8: the Origin must be the public URL's, whatever the Host; cookies are Secure.
    let (status, _) = sign_in_as(&base, "ana", PASSWORD, None, Some(&base)).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "an Origin equal to the Host but not to public_url is cross-site"
    );
    let (status, headers) = sign_in_as(&base, "ana", PASSWORD, None, Some(public)).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let session = headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find(|value| value.starts_with("formulary_session="))
        .expect("a session cookie")
        .to_owned();
    assert!(session.ends_with("; Secure"), "{session}");
    // S7: signed-in pages and token answers are not stored by caches; public assets still are.
    let cookie = session.split(';').next().expect("pair").to_owned();
    for path in ["/requests", "/requests/new", "/"] {
        let answer = client
            .get(format!("{base}{path}"))
            .header("cookie", &cookie)
            .send()
            .await
            .expect("page");
        assert_eq!(answer.status(), StatusCode::OK, "{path}");
        assert_eq!(
            answer.headers()["cache-control"],
            "no-store, private",
            "{path}"
        );
    }
    let token = login(&client, &base, "ana").await;
    let (status, headers, _) = send(
        &client,
        Some(&token),
        reqwest::Method::GET,
        format!("{base}/api/v1/requests"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["cache-control"], "no-store, private");
    let asset = client
        .get(format!("{base}/assets/nhsuk-frontend.min.css"))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("asset");
    assert!(asset.headers()["cache-control"]
        .to_str()
        .unwrap()
        .starts_with("public"));
}

/// Runs the binary with `input` on standard input.
fn run_with_stdin(
    workspace: &crate::formulary_cli::Workspace,
    arguments: &[&str],
    input: &str,
) -> std::process::Output {
    use std::io::Write;
    let mut child = workspace
        .command(arguments)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("formulary starts");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("stdin written");
    child.wait_with_output().expect("formulary ends")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s9_accounts_can_be_disabled_passwords_changed_and_reset_and_tokens_managed_by_owners() {
    use crate::formulary_cli::text;
    use reqwest::Method;
    let (workspace, _server, base) = setup();
    let client = reqwest::Client::new();
    let api = |path: &str| format!("{base}/api/v1{path}");

    // The password policy refuses common and breached passwords.
    let weak = run_with_stdin(
        &workspace,
        &[
            "admin",
            "user",
            "add",
            "weak",
            "--name",
            "Weak",
            "--role",
            "RJ1:requester",
        ],
        "password1234\n",
    );
    assert!(!weak.status.success());
    assert!(
        text(&weak.stderr).contains("too easy to guess"),
        "{}",
        text(&weak.stderr)
    );

    // Owners list and revoke their own tokens, and nobody else's.
    let laptop = login(&client, &base, "ana").await;
    let spare = login(&client, &base, "ana").await;
    let robs = login(&client, &base, "rob").await;
    let (status, _, listed) =
        send(&client, Some(&laptop), Method::GET, api("/me/tokens"), None).await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<String> = listed
        .as_array()
        .expect("a list")
        .iter()
        .map(|token| token["id"].as_str().expect("id").to_owned())
        .collect();
    assert_eq!(ids.len(), 2, "{listed}");
    assert!(listed.to_string().find("frm_").is_none(), "never a secret");
    let (_, _, rob_listed) = send(&client, Some(&robs), Method::GET, api("/me/tokens"), None).await;
    let rob_token = rob_listed[0]["id"].as_str().expect("id").to_owned();
    let (status, _, _) = send(
        &client,
        Some(&laptop),
        Method::DELETE,
        api(&format!("/me/tokens/{rob_token}")),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "another person's token");
    // The newest is listed first: that is `spare`.
    let (status, _, _) = send(
        &client,
        Some(&laptop),
        Method::DELETE,
        api(&format!("/me/tokens/{}", ids[0])),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, _) = send(&client, Some(&spare), Method::GET, api("/me"), None).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a revoked token stops at once"
    );
    let service = workspace
        .ok(&[
            "token",
            "create",
            "--name",
            "ci",
            "--role",
            "requester",
            "--org",
            "RJ1",
        ])
        .trim()
        .to_owned();
    let (status, _, _) = send(
        &client,
        Some(&service),
        Method::GET,
        api("/me/tokens"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Changing one's password through the API: the current one is checked, the policy applies,
    // and every browser session of the account ends.
    let mut browser = Browser::new(&base);
    let (status, _) = sign_in(&mut browser, "ana", PASSWORD).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let change =
        |current: &str, new: &str| json!({ "current_password": current, "new_password": new });
    let (status, _, answer) = send(
        &client,
        Some(&laptop),
        Method::POST,
        api("/me/password"),
        Some(change("wrong one here", "violet tractor spoon harbour")),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    let (status, _, answer) = send(
        &client,
        Some(&laptop),
        Method::POST,
        api("/me/password"),
        Some(change(PASSWORD, "Summer2024!!")),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert!(
        answer["detail"]
            .as_str()
            .unwrap()
            .contains("too easy to guess"),
        "{answer}"
    );
    let new_password = "violet tractor spoon harbour";
    let (status, _, answer) = send(
        &client,
        Some(&laptop),
        Method::POST,
        api("/me/password"),
        Some(change(PASSWORD, new_password)),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{answer}");
    let (status, _) = browser.get("/requests").await;
    assert_eq!(status, StatusCode::SEE_OTHER, "the browser session ended");

    // The same through the web page: the session that changed it stays, the others end.
    let mut first = Browser::new(&base);
    let mut second = Browser::new(&base);
    assert_eq!(
        sign_in(&mut first, "ana", new_password).await.0,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        sign_in(&mut second, "ana", new_password).await.0,
        StatusCode::SEE_OTHER
    );
    let (status, page) = first.get("/account").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains("Change your password") && page.contains(&ids[1]),
        "{page}"
    );
    let token = crate::requests::hidden_token(&page);
    let (status, page) = first
        .post(
            "/account/password",
            &[
                ("csrf_token", &token),
                ("current_password", new_password),
                ("new_password", "password1234"),
                ("confirm_password", "password1234"),
            ],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        page.contains("too easy to guess") && page.contains("nhsuk-error-summary"),
        "{page}"
    );
    let newer = "copper lantern meadow quietly";
    let (status, location) = first
        .post(
            "/account/password",
            &[
                ("csrf_token", &token),
                ("current_password", new_password),
                ("new_password", newer),
                ("confirm_password", newer),
            ],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{location}");
    assert_eq!(
        first.get("/account").await.0,
        StatusCode::OK,
        "this session stays"
    );
    assert_eq!(
        second.get("/account").await.0,
        StatusCode::SEE_OTHER,
        "the other one ended"
    );
    let (status, location) = first
        .post(
            &format!("/account/tokens/{}/revoke", ids[1]),
            &[("csrf_token", &token)],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{location}");
    let (status, _, _) = send(&client, Some(&laptop), Method::GET, api("/me"), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "revoked from the page");

    // Disabling ends the sessions and refuses the tokens; enabling lets the person sign in again.
    let token = login_with(&client, &base, "ana", newer).await;
    workspace.ok(&["admin", "user", "disable", "ana"]);
    assert_eq!(
        first.get("/account").await.0,
        StatusCode::SEE_OTHER,
        "signed out everywhere"
    );
    let (status, _, answer) =
        send(&client, Some(&token), Method::GET, api("/requests"), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        answer["detail"].as_str().unwrap().contains("disabled"),
        "{answer}"
    );
    let (status, page) = sign_in(&mut Browser::new(&base), "ana", newer).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(page.contains("disabled"), "{page}");
    workspace.ok(&["admin", "user", "enable", "ana"]);
    assert_eq!(
        first.get("/account").await.0,
        StatusCode::SEE_OTHER,
        "old sessions stay ended"
    );
    assert_eq!(
        sign_in(&mut Browser::new(&base), "ana", newer).await.0,
        StatusCode::SEE_OTHER
    );

    // A token of an account left without roles is refused.
    let (status, _, _) = send(&client, Some(&robs), Method::GET, api("/me"), None).await;
    assert_eq!(status, StatusCode::OK);
    workspace.ok(&["admin", "user", "revoke", "rob", "--role", "RJ1:reviewer"]);
    let (status, _, answer) = send(&client, Some(&robs), Method::GET, api("/me"), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        answer["detail"].as_str().unwrap().contains("no role"),
        "{answer}"
    );

    // An administrator resets a forgotten password (the policy applies there too).
    let refused = run_with_stdin(
        &workspace,
        &["admin", "user", "reset-password", "aisha"],
        "qwertyuiop123\n",
    );
    assert!(!refused.status.success());
    let reset = run_with_stdin(
        &workspace,
        &["admin", "user", "reset-password", "aisha"],
        "saffron kettle glacier drum\n",
    );
    assert!(reset.status.success(), "{}", text(&reset.stderr));
    assert_eq!(
        sign_in(&mut Browser::new(&base), "aisha", PASSWORD).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        sign_in(
            &mut Browser::new(&base),
            "aisha",
            "saffron kettle glacier drum"
        )
        .await
        .0,
        StatusCode::SEE_OTHER
    );

    // Everything is in the audit log, and the chain verifies.
    let auditor = login(&client, &base, "audrey").await;
    let (_, _, audit) = send(&client, Some(&auditor), Method::GET, api("/audit"), None).await;
    let actions: Vec<&str> = audit
        .as_array()
        .expect("rows")
        .iter()
        .filter_map(|row| row["action"].as_str())
        .collect();
    for action in [
        "user.password",
        "user.disable",
        "user.enable",
        "token.revoke",
        "role.revoke",
    ] {
        assert!(
            actions.contains(&action),
            "{action} missing from {actions:?}"
        );
    }
    assert!(workspace.ok(&["audit", "verify"]).contains("intact"));
}

async fn login_with(
    client: &reqwest::Client,
    base: &str,
    username: &str,
    password: &str,
) -> String {
    let answer: Value = client
        .post(format!("{base}/api/v1/session/token"))
        .json(&json!({ "username": username, "password": password }))
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
