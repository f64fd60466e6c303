//! Staying on a recalled version, explained in the browser (issue 14): Ana reports an
//! environment holding requests 2.19.1, a curator recalls that version by hand, and Ana says on
//! the recall page why she stays and until when (`tests/browser/recall_explain.js`: headless
//! chromium, axe-core on every screenshot, the error summary for a short reason and a past day).
//! Around it: the form is refused without the session's CSRF token, the API refuses a day in the
//! past, and afterwards the API and the audit log hold the reason and the day.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::browser::{run_script, PASSWORD};
use crate::formulary_cli::Workspace;
use crate::requests::{sign_in, Browser};
use crate::surveillance::request_json;

/// Signs `username` in through the API; returns an API token.
fn api_token(base: &str, username: &str) -> String {
    let (status, answer) = request_json(
        Method::POST,
        &format!("{base}/api/v1/session/token"),
        "",
        Some(json!({ "username": username, "password": PASSWORD })),
    );
    assert!((200..300).contains(&status), "{status}: {answer}");
    answer["token"].as_str().expect("a token").to_owned()
}

#[test]
fn a_person_explains_in_the_browser_why_they_stay_on_a_recalled_version() {
    let workspace = Workspace::new();
    workspace.ok(&["org", "add", "RJ1", "--name", "Browser Test Trust"]);
    workspace.add_user("ana", "Ana Analyst", &["RJ1:requester"], PASSWORD);
    workspace.add_user("audrey", "Audrey Auditor", &["NATIONAL:auditor"], PASSWORD);
    let (_server, base) =
        workspace.serve(&[("FORMULARY_ADVISORY_SYNC_INTERVAL_SECONDS", "0".to_owned())]);
    let ana = api_token(&base, "ana");
    let auditor = api_token(&base, "audrey");
    // Ana reports her laptop, which holds requests 2.19.1; a curator recalls that version.
    let (status, answer) = request_json(
        Method::PUT,
        &format!("{base}/api/v1/inventory/RJ1/ana-laptop?kind=machine"),
        &ana,
        Some(json!({ "components": ["pkg:pypi/requests@2.19.1"] })),
    );
    assert!((200..300).contains(&status), "{status}: {answer}");
    let opened = workspace.ok(&[
        "recall",
        "open",
        "pkg:pypi/requests",
        "--version",
        "2.19.1",
        "--reason",
        "National cyber alert CC-4321: upgrade requests",
        "--move-to",
        "2.32.3",
    ]);
    let id = opened
        .split_whitespace()
        .find(|word| word.starts_with("rc-"))
        .unwrap_or_else(|| panic!("a recall id in {opened}"))
        .trim_end_matches(['.', ':', ','])
        .to_owned();

    // The API refuses a day in the past and says why; nothing changes.
    let (status, refusal) = request_json(
        Method::POST,
        &format!("{base}/api/v1/me/recalls/{id}/explain"),
        &ana,
        Some(json!({ "explanation": "waiting for the vendor's fix", "until": "2020-01-01" })),
    );
    assert_eq!(status, 400, "{refusal}");
    assert!(refusal.to_string().contains("after today"), "{refusal}");
    // The form is refused without the session's CSRF token.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mut browser = Browser::new(&base);
        sign_in(&mut browser, "ana", PASSWORD).await;
        let (status, page) = browser.get(&format!("/recalls/{id}")).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let (status, page) = browser
            .post(
                &format!("/recalls/{id}/explain"),
                &[("explanation", "no token sent with this form")],
                Some(&base),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{page}");
        assert!(page.contains("This form has expired"), "{page}");
    });
    let mine = request_json(
        Method::GET,
        &format!("{base}/api/v1/me/recalls"),
        &ana,
        None,
    )
    .1;
    assert_eq!(
        mine[0]["recall"]["id"],
        id.as_str(),
        "still exposed: {mine}"
    );

    // In the browser: Ana explains; the auditor sees it.
    let until = (chrono::Utc::now().date_naive() + chrono::Duration::days(60)).to_string();
    run_script(
        "recall_explain",
        "recall_explain",
        &base,
        &[("RECALL_ID", id.clone()), ("UNTIL", until.clone())],
        4,
    );

    // The API and the audit log hold the reason and the day.
    let (_, detail) = request_json(
        Method::GET,
        &format!("{base}/api/v1/recalls/{id}"),
        &auditor,
        None,
    );
    let row = &detail["people"][0];
    assert_eq!(row["resolution"], "explained", "{detail}");
    assert_eq!(row["explained_until"], until.as_str(), "{detail}");
    assert!(
        row["explanation"]
            .as_str()
            .is_some_and(|text| text.starts_with("Risk owner exception RA-77")),
        "{detail}"
    );
    assert_eq!(detail["recall"]["exposed"], 0, "{detail}");
    let (_, audit) = request_json(
        Method::GET,
        &format!("{base}/api/v1/audit?limit=5000"),
        &auditor,
        None,
    );
    let explained: Vec<&Value> = audit
        .as_array()
        .expect("audit rows")
        .iter()
        .filter(|row| row["action"] == "recall.explain" && row["subject"] == id.as_str())
        .collect();
    assert_eq!(explained.len(), 1, "{audit}");
    assert_eq!(explained[0]["actor"], "user:ana", "{explained:?}");
    assert_eq!(
        explained[0]["details"]["until"],
        until.as_str(),
        "{explained:?}"
    );
}
