//! Project pages and the root listing are rendered once and served as the same bytes until
//! something they say changes: a prohibition made after a page was served shows on the next
//! request in both formats (PEP 691 JSON and PEP 503 HTML), with a new entity tag, and a client
//! revalidating with the old tag gets the new page while one holding the new tag gets 304.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::formulary_cli::Workspace;
use crate::gateway_pypi::static_upstream;

const PEP_691: &str = "application/vnd.pypi.simple.v1+json";

/// One answer: status, `ETag`, `Content-Type` and body.
struct Answer {
    status: u16,
    etag: String,
    content_type: String,
    body: String,
}

fn fetch(url: &str, accept: &str, if_none_match: Option<&str>) -> Answer {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mut request = reqwest::Client::new()
            .get(url)
            .header(reqwest::header::ACCEPT, accept);
        if let Some(etag) = if_none_match {
            request = request.header(reqwest::header::IF_NONE_MATCH, etag);
        }
        let answer = request
            .send()
            .await
            .unwrap_or_else(|error| panic!("GET {url}: {error}"));
        let header = |name: reqwest::header::HeaderName| {
            answer
                .headers()
                .get(name)
                .and_then(|value| value.to_str().ok())
                .unwrap_or("")
                .to_owned()
        };
        Answer {
            status: answer.status().as_u16(),
            etag: header(reqwest::header::ETAG),
            content_type: header(reqwest::header::CONTENT_TYPE),
            body: answer.text().await.expect("body"),
        }
    })
}

/// The yank of `filename` on a PEP 691 page (`false`, `true` or the reason).
fn yank_of(page: &Value, filename: &str) -> Value {
    page["files"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|file| file["filename"] == filename)
        .unwrap_or_else(|| panic!("{filename} is not listed: {page}"))["yanked"]
        .clone()
}

crate::on_both_databases!(fn a_prohibition_made_after_a_page_was_served_shows_on_the_next_request);
fn a_prohibition_made_after_a_page_was_served_shows_on_the_next_request() {
    let workspace = Workspace::new();
    let (_upstream, upstream_url) = static_upstream(&workspace.folder.path().join("upstream"));
    let (_server, base) = workspace.serve(&[
        ("FORMULARY_PYPI_UPSTREAMS", format!("[\"{upstream_url}\"]")),
        ("FORMULARY_UPSTREAM_TIMEOUT_SECONDS", "5".to_owned()),
    ]);
    let page_url = format!("{base}/pypi/simple/requests/");
    let wheel = "requests-2.32.3-py3-none-any.whl";

    // Served twice: the same bytes and tag; revalidating with the tag answers 304.
    let first = fetch(&page_url, PEP_691, None);
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(first.content_type, PEP_691);
    assert!(first.etag.starts_with('"'), "a strong tag: {}", first.etag);
    let page: Value = serde_json::from_str(&first.body).expect("JSON");
    assert_eq!(yank_of(&page, wheel), Value::Bool(false), "{page}");
    let again = fetch(&page_url, PEP_691, None);
    assert_eq!(
        (again.etag.as_str(), again.body.as_str()),
        (first.etag.as_str(), first.body.as_str())
    );
    let unchanged = fetch(&page_url, PEP_691, Some(&first.etag));
    assert_eq!(unchanged.status, 304);
    assert!(unchanged.body.is_empty());
    let html = fetch(&page_url, "text/html", None);
    assert_eq!(html.status, 200);
    assert_ne!(html.etag, first.etag, "each format has its own tag");
    let root = fetch(&format!("{base}/pypi/simple/"), PEP_691, None);
    assert!(
        root.body.contains("{\"name\":\"requests\"}"),
        "{}",
        root.body
    );

    // A prohibition made now shows on the next request once the server has the new policy
    // (pushed on PostgreSQL, polled on SQLite): no page built before it is served after.
    let reason = "A prohibition made after the page was served";
    workspace.ok(&[
        "entry",
        "add",
        "pkg:pypi/requests",
        "--range",
        "==2.32.3",
        "--status",
        "prohibited",
        "--reason",
        reason,
    ]);
    let started = Instant::now();
    let changed = loop {
        let answer = fetch(&page_url, PEP_691, Some(&first.etag));
        if answer.status == 200 {
            break answer;
        }
        assert_eq!(answer.status, 304, "{}", answer.body);
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the prohibition never reached the JSON page"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_ne!(changed.etag, first.etag, "new bytes, new tag");
    let page: Value = serde_json::from_str(&changed.body).expect("JSON");
    let yank = yank_of(&page, wheel);
    assert!(
        yank.as_str()
            .is_some_and(|text| text.starts_with("Blocked by Formulary: ") && text.contains(reason)),
        "{yank}"
    );
    assert_eq!(
        yank_of(&page, "requests-2.31.0-py3-none-any.whl"),
        Value::Bool(false),
        "the other versions are untouched"
    );
    // Once seen, the new page stays: its tag answers 304, and HTML says the same.
    for _ in 0..3 {
        let answer = fetch(&page_url, PEP_691, None);
        assert_eq!(
            (answer.etag.as_str(), answer.body.as_str()),
            (changed.etag.as_str(), changed.body.as_str())
        );
    }
    assert_eq!(fetch(&page_url, PEP_691, Some(&changed.etag)).status, 304);
    let html_after = fetch(&page_url, "text/html", Some(&html.etag));
    assert_eq!(html_after.status, 200, "the HTML page changed too");
    assert!(
        html_after.body.contains(&format!("{wheel}</a>"))
            && html_after
                .body
                .contains("data-yanked=\"Blocked by Formulary: "),
        "{}",
        html_after.body
    );
}
