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
    (status, headers, response.json().await.unwrap_or(Value::Null))
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
            hidden["detail"].as_str().unwrap().replace(&id.to_string(), "N"),
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
    assert_eq!(own["requests"][0]["credentials"], "read-only account on the warehouse");

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
            "token", "create", "--name", "ci", "--role", "requester", "--org", "RJ1",
        ])
        .trim()
        .to_owned();
    let (status, refused) = call(&client, &service, "POST", api("/requests"), request_body("tomli")).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    assert!(
        refused["detail"].as_str().unwrap().contains("service account")
            && refused["detail"].as_str().unwrap().contains("formulary login"),
        "{refused}"
    );

    let curator = workspace
        .ok(&[
            "token", "create", "--name", "curation bot", "--role", "national-curator",
        ])
        .trim()
        .to_owned();
    let forged = json!({
        "component": "pkg:pypi/httpx", "status": "approved", "reason": "async HTTP client",
        "decided_by": "Chief Medical Officer"
    });
    let (status, refused) = call(&client, &curator, "POST", api("/entries"), forged).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    assert!(refused["detail"].as_str().unwrap().contains("decided_by"), "{refused}");
    let honest = json!({ "component": "pkg:pypi/httpx", "status": "approved", "reason": "async HTTP client" });
    let (status, created) = call(&client, &curator, "POST", api("/entries"), honest).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["decided_by"], "curation bot");

    let olu = login(&client, &base, "olu").await;
    let local = json!({ "organisation": "RJ1", "component": "pkg:pypi/attrs", "status": "approved", "reason": "trust policy" });
    let (status, created) = call(&client, &olu, "POST", api("/entries"), local).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["decided_by"], "olu", "a person's entry names the person");
    let log: Vec<Value> = client
        .get(api("/decisions?q=httpx"))
        .send()
        .await
        .expect("log")
        .json()
        .await
        .expect("JSON");
    assert!(
        log.iter().all(|row| row["decided_by"] != "Chief Medical Officer"),
        "{log:?}"
    );
}
