//! Channel notices (issue 15) end to end against the real binary, on SQLite and PostgreSQL: a
//! national curator writes one in a real browser (tests/browser/channel_notices.js: a requester
//! refused, errors explained, markup shown as text) and another through the API; an
//! organisation admin writes one for their own organisation only; `notices.json` of each view
//! carries exactly the notices meant for it, with their levels and the CEP-6 fields conda reads
//! (checked with Python's `datetime.fromisoformat`, as conda parses them); withdrawn notices
//! disappear (one withdrawn on the page with its CSRF token, one through the API); hostile input
//! and the wrong person are refused; the audit log holds every change.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::administration::signed_in;
use crate::browser::{run_script, PASSWORD};
use crate::formulary_cli::{text, Workspace};

/// What the curator types on the page: markup that must stay text everywhere.
const PAGE_MESSAGE: &str =
    "<img src=x onerror=alert(1)> The mirror is down for maintenance on Saturday 09:00-11:00 UTC; installs will fail then. Plan around it.";

/// Reads each notice as conda does into its `ChannelNotice`: `NoticeLevel(level)` and
/// `datetime.fromisoformat` for the times.
const CONDA_READS: &str = r#"
import json, sys, datetime
for notice in json.loads(sys.argv[1])['notices']:
    assert notice['level'] in ('info', 'warning', 'critical'), notice
    assert isinstance(notice['id'], str) and notice['id'], notice
    assert isinstance(notice['message'], str), notice
    assert int(notice['interval']) > 0, notice
    created = datetime.datetime.fromisoformat(notice['created_at'])
    expired = datetime.datetime.fromisoformat(notice['expired_at'])
    assert created.tzinfo is not None and created < expired, notice
"#;

async fn token(client: &reqwest::Client, base: &str, username: &str) -> String {
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
        .unwrap_or_else(|| panic!("no token for {username}: {answer}"))
        .to_owned()
}

/// An API call with a bearer token: the status and the JSON body (null when there is none).
async fn api(
    client: &reqwest::Client,
    token: &str,
    method: reqwest::Method,
    url: String,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = client.request(method, url).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("API call");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// A view's `notices.json`: each notice's (level, message), after checking every notice has
/// the fields conda reads, in the forms it parses.
async fn notices(client: &reqwest::Client, url: &str) -> Vec<(String, String)> {
    let response = client.get(url).send().await.expect("notices.json");
    assert_eq!(response.status(), StatusCode::OK, "{url}");
    let body = response.text().await.expect("body");
    let checked = std::process::Command::new("python3")
        .args(["-c", CONDA_READS, &body])
        .output()
        .expect("python3 runs");
    assert!(
        checked.status.success(),
        "notices.json as conda would read it: {}{}",
        text(&checked.stderr),
        body
    );
    let document: Value = serde_json::from_str(&body).expect("JSON");
    document["notices"]
        .as_array()
        .expect("a notices list")
        .iter()
        .map(|notice| {
            (
                notice["level"].as_str().unwrap_or_default().to_owned(),
                notice["message"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn pair(level: &str, message: &str) -> (String, String) {
    (level.to_owned(), message.to_owned())
}

crate::on_both_databases!(async fn curators_and_admins_write_channel_notices_that_conda_reads);
async fn curators_and_admins_write_channel_notices_that_conda_reads() {
    let workspace = Workspace::new();
    workspace.ok(&["org", "add", "RJ1", "--name", "Trust One"]);
    workspace.ok(&["org", "add", "RQM", "--name", "Trust Two"]);
    workspace.add_user("ana", "Ana Analyst", &["RJ1:requester"], PASSWORD);
    workspace.add_user(
        "cora",
        "Cora Curator",
        &["NATIONAL:national-curator"],
        PASSWORD,
    );
    workspace.add_user("olu", "Olu Admin", &["RJ1:organisation-admin"], PASSWORD);
    workspace.add_user("audrey", "Audrey Auditor", &["NATIONAL:auditor"], PASSWORD);
    // Two channels with no upstream: notices.json needs none.
    let (_server, base) = workspace.serve(&[(
        "FORMULARY_CONDA_CHANNELS",
        "{conda-forge=[],bioconda=[]}".to_owned(),
    )]);
    let client = reqwest::Client::new();
    let rj1 = format!("{base}/o/RJ1/conda/conda-forge/notices.json");
    let rqm = format!("{base}/o/RQM/conda/conda-forge/notices.json");
    let rj1_bioconda = format!("{base}/o/RJ1/conda/bioconda/notices.json");
    assert!(notices(&client, &rj1).await.is_empty(), "no notices yet");

    // The curator writes a critical notice for every channel on the page.
    run_script(
        "channel_notices",
        "channel_notices",
        &base,
        &[("NOTICE_MESSAGE", PAGE_MESSAGE.to_owned())],
        4,
    );

    // The curator writes a warning about conda-forge through the API; the organisation admin
    // an info notice for RJ1, and nothing for another trust or for every organisation.
    let cora = token(&client, &base, "cora").await;
    let olu = token(&client, &base, "olu").await;
    let ana = token(&client, &base, "ana").await;
    let notices_of = |code: &str| format!("{base}/api/v1/organisations/{code}/channel-notices");
    let api_message = "conda-forge answers slowly today; retry a failed install in an hour.";
    let (status, national) = api(
        &client,
        &cora,
        reqwest::Method::POST,
        notices_of("NATIONAL"),
        Some(json!({ "message": api_message, "level": "warning", "channel": "conda-forge" })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{national}");
    assert_eq!(national["standing"], "shown", "{national}");
    let rj1_message =
        "RJ1: from Monday, conda environments need the pinned lock file in the shared repository.";
    let last_day = (chrono::Utc::now() + chrono::Duration::days(30))
        .date_naive()
        .to_string();
    let (status, own) = api(
        &client,
        &olu,
        reqwest::Method::POST,
        notices_of("RJ1"),
        Some(json!({ "message": rj1_message, "level": "info", "expires": last_day })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{own}");
    for code in ["RQM", "NATIONAL"] {
        let (status, refused) = api(
            &client,
            &olu,
            reqwest::Method::POST,
            notices_of(code),
            Some(json!({ "message": "not mine to say", "level": "info" })),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{code}: {refused}");
        assert!(
            refused["detail"]
                .as_str()
                .is_some_and(|detail| detail.contains(&format!("does not administer {code}"))),
            "{refused}"
        );
    }
    // An analyst may not write one, nor list them.
    let (status, refused) = api(
        &client,
        &ana,
        reqwest::Method::POST,
        notices_of("RJ1"),
        Some(json!({ "message": "hello", "level": "info" })),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    let (status, _) = api(&client, &ana, reqwest::Method::GET, notices_of("RJ1"), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Hostile input is refused with what to fix, and stores nothing.
    for (body, says) in [
        (
            json!({ "message": "look \u{1b}[31mhere", "level": "info" }),
            "control characters",
        ),
        (
            json!({ "message": "x".repeat(1001), "level": "info" }),
            "1000 characters",
        ),
        (
            json!({ "message": "   ", "level": "info" }),
            "Enter the message",
        ),
        (
            json!({ "message": "hi", "level": "loud" }),
            "info, warning or critical",
        ),
        (
            json!({ "message": "hi", "level": "info", "channel": "../elsewhere" }),
            "conda-forge",
        ),
        (
            json!({ "message": "hi", "level": "info", "expires": "2020-01-01" }),
            "today or a later day",
        ),
    ] {
        let (status, refused) = api(
            &client,
            &cora,
            reqwest::Method::POST,
            notices_of("NATIONAL"),
            Some(body.clone()),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {refused}");
        assert!(
            refused["detail"]
                .as_str()
                .is_some_and(|detail| detail.contains(says)),
            "{body}: {refused}"
        );
    }
    let (status, _) = api(
        &client,
        &cora,
        reqwest::Method::POST,
        notices_of("NATIONAL"),
        Some(json!({ "message": "hi", "level": "info", "author": "someone else" })),
    )
    .await;
    assert!(
        status.is_client_error(),
        "an unknown field is refused: {status}"
    );

    // Each view shows what is meant for it, oldest first, with its level; markup stays text.
    let page_notice = pair("critical", PAGE_MESSAGE);
    let api_notice = pair("warning", api_message);
    let rj1_notice = pair("info", rj1_message);
    assert_eq!(
        notices(&client, &rj1).await,
        [page_notice.clone(), api_notice.clone(), rj1_notice.clone()]
    );
    assert_eq!(
        notices(&client, &rqm).await,
        [page_notice.clone(), api_notice.clone()],
        "RJ1's notice is for RJ1's views only"
    );
    assert_eq!(
        notices(&client, &rj1_bioconda).await,
        [page_notice.clone(), rj1_notice.clone()],
        "the conda-forge notice is for conda-forge only"
    );
    let document: Value = client
        .get(&rj1)
        .send()
        .await
        .expect("notices.json")
        .json()
        .await
        .expect("JSON");
    let ids: Vec<&str> = document["notices"]
        .as_array()
        .expect("notices")
        .iter()
        .filter_map(|notice| notice["id"].as_str())
        .collect();
    assert_eq!(ids[1], national["id"].as_str().expect("id"), "stable ids");
    assert_eq!(ids[2], own["id"].as_str().expect("id"));
    let expired_at = document["notices"][2]["expired_at"]
        .as_str()
        .expect("expiry");
    assert!(
        expired_at.starts_with(
            &(chrono::Utc::now() + chrono::Duration::days(31))
                .date_naive()
                .to_string()
        ),
        "shown to the end of its last day: {expired_at}"
    );

    // The admin withdraws theirs on the page (with the CSRF token); nobody else's.
    let (mut browser, csrf) = signed_in(&base, "olu", PASSWORD).await;
    let own_id = own["id"].as_str().expect("id");
    let national_id = national["id"].as_str().expect("id");
    let (status, _) = browser
        .post(
            &format!("/admin/RJ1/channel-notices/{own_id}/withdraw"),
            &[],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "no CSRF token, no change");
    let (status, _) = browser
        .post(
            &format!("/admin/RJ1/channel-notices/{national_id}/withdraw"),
            &[("csrf_token", &csrf)],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "not RJ1's notice");
    let (status, location) = browser
        .post(
            &format!("/admin/RJ1/channel-notices/{own_id}/withdraw"),
            &[("csrf_token", &csrf)],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{location}");
    let (_, page) = browser.get(&location).await;
    assert!(
        page.contains("The notice has been withdrawn") && page.contains("Withdrawn by user:olu"),
        "{page}"
    );
    let (status, _) = api(
        &client,
        &olu,
        reqwest::Method::DELETE,
        format!("{}/{national_id}", notices_of("NATIONAL")),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // The curator withdraws the API's notice through the API; twice is a conflict.
    let (status, withdrawn) = api(
        &client,
        &cora,
        reqwest::Method::DELETE,
        format!("{}/{national_id}", notices_of("NATIONAL")),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{withdrawn}");
    assert_eq!(withdrawn["standing"], "withdrawn");
    let (status, again) = api(
        &client,
        &cora,
        reqwest::Method::DELETE,
        format!("{}/{national_id}", notices_of("NATIONAL")),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{again}");
    assert_eq!(
        notices(&client, &rj1).await,
        std::slice::from_ref(&page_notice)
    );
    assert_eq!(notices(&client, &rqm).await, [page_notice]);
    let (status, listed) = api(&client, &olu, reqwest::Method::GET, notices_of("RJ1"), None).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    assert_eq!(listed[0]["standing"], "withdrawn", "{listed}");

    // Every change is in the audit log, under who made it.
    let audit = crate::administration::audit_actions(
        &client,
        &base,
        &token(&client, &base, "audrey").await,
    )
    .await;
    let count = |action: &str| audit.iter().filter(|(_, done)| done == action).count();
    assert_eq!(count("channel-notice.add"), 3, "{audit:?}");
    assert_eq!(count("channel-notice.withdraw"), 2, "{audit:?}");
    for (actor, action) in [
        ("user:cora", "channel-notice.add"),
        ("user:olu", "channel-notice.withdraw"),
    ] {
        assert!(
            audit.contains(&(actor.to_owned(), action.to_owned())),
            "{actor} {action}: {audit:?}"
        );
    }
}

/// With the database down at start (SQLite file unreadable), `notices.json` still answers from
/// the local copy with the prohibitions, without the written notices (they live in the database
/// alone) and says so in the log; once the database is back, the notices are back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_database_down_notices_json_answers_without_the_written_notices() {
    let workspace = Workspace::new();
    workspace.add_user(
        "cora",
        "Cora Curator",
        &["NATIONAL:national-curator"],
        PASSWORD,
    );
    let settings = [
        ("FORMULARY_CONDA_CHANNELS", "{conda-forge=[]}"),
        ("FORMULARY_DATABASE_START_TIMEOUT_SECONDS", "3"),
    ];
    let client = reqwest::Client::new();
    let (server, base, _) =
        tokio::task::block_in_place(|| crate::reliability::serve(&workspace, &settings));
    let url = format!("{base}/conda/conda-forge/notices.json");
    let cora = token(&client, &base, "cora").await;
    let message = "The gateway moves to new servers on Sunday.";
    let (status, written) = api(
        &client,
        &cora,
        reqwest::Method::POST,
        format!("{base}/api/v1/organisations/NATIONAL/channel-notices"),
        Some(json!({ "message": message, "level": "info" })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{written}");
    assert_eq!(notices(&client, &url).await, [pair("info", message)]);
    tokio::task::block_in_place(|| crate::reliability_offline::stop_gracefully(server));

    // The database file cannot be opened (a folder stands in its place).
    let data = workspace.folder.path().join("data");
    std::fs::rename(data.join("formulary.db"), data.join("formulary.db.away")).expect("move");
    std::fs::create_dir(data.join("formulary.db")).expect("folder");
    let (_server, base, log) =
        tokio::task::block_in_place(|| crate::reliability::serve(&workspace, &settings));
    let url = format!("{base}/conda/conda-forge/notices.json");
    assert!(notices(&client, &url).await.is_empty());
    let logged = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        logged.contains("notices.json leaves out the written channel notices"),
        "{logged}"
    );
    let (status, refused) = api(
        &client,
        &cora,
        reqwest::Method::POST,
        format!("{base}/api/v1/organisations/NATIONAL/channel-notices"),
        Some(json!({ "message": "not now", "level": "info" })),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{refused}");

    // The file is put right: the notice is back without a restart.
    std::fs::remove_dir(data.join("formulary.db")).expect("remove folder");
    std::fs::rename(data.join("formulary.db.away"), data.join("formulary.db")).expect("move back");
    let started = std::time::Instant::now();
    while notices(&client, &url).await.is_empty() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "the notice is not back a minute after the database returned: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(notices(&client, &url).await, [pair("info", message)]);
}
