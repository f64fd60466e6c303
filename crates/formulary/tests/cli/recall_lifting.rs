//! Recalls follow their prohibitions (issue 14), end to end: two people download `requests`
//! through the gateway with their own tokens; a curator prohibits `<2.32` while no server runs
//! (the recall job looks at every prohibition in force when it starts, whatever its age); the
//! recall names both. The curator then narrows the prohibition (a new entry `<2.20`, the wide one
//! removed with a reason): Bob (2.31.0) leaves the recall as `lifted`, with the removal named,
//! and is told; Jane (2.19.1) stays. Removing the narrow entry too lifts Jane and closes the
//! recall. Each lift is audited (`recall.lift`).

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::formulary_cli::{text, Workspace};
use crate::gateway_pypi::static_upstream;
use crate::notifications::add_person;
use crate::recall_prohibitions::{index_with, tokens};
use crate::surveillance::{pip_download, request_json, wait_until};

fn get(url: &str, token: &str) -> Value {
    let (status, body) = request_json(Method::GET, url, token, None);
    assert_eq!(status, 200, "GET {url}: {body}");
    body
}

/// Records a prohibition of `range` of requests with `formulary entry add`; returns its id.
fn prohibit(workspace: &Workspace, range: &str) -> String {
    let said = workspace.ok(&[
        "entry",
        "add",
        "pkg:pypi/requests",
        "--range",
        range,
        "--status",
        "prohibited",
        "--reason",
        "CVE-2023-32681: leaks Proxy-Authorization headers",
    ]);
    said.split_whitespace()
        .find_map(|word| word.strip_suffix(':').filter(|id| id.starts_with("e-")))
        .unwrap_or_else(|| panic!("an entry id in {said}"))
        .to_owned()
}

/// The recall notices `token`'s person has.
fn recall_notices(base: &str, token: &str) -> Vec<Value> {
    get(&format!("{base}/api/v1/me/notifications"), token)
        .as_array()
        .expect("notices")
        .iter()
        .filter(|note| note["kind"] == "recall")
        .cloned()
        .collect()
}

fn person<'a>(detail: &'a Value, who: &str) -> &'a Value {
    detail["people"]
        .as_array()
        .expect("people")
        .iter()
        .find(|person| person["person"] == who)
        .unwrap_or_else(|| panic!("{who} on {detail}"))
}

crate::on_both_databases!(fn a_lifted_prohibition_lifts_its_recall_and_tells_the_people);
fn a_lifted_prohibition_lifts_its_recall_and_tells_the_people() {
    let workspace = Workspace::new();
    let root = workspace.folder.path();
    add_person(&workspace, "jane", "NATIONAL:requester");
    add_person(&workspace, "bob", "NATIONAL:requester");
    add_person(&workspace, "audrey", "NATIONAL:auditor");
    let (_upstream, upstream_url) = static_upstream(&root.join("upstream"));
    let settings = [
        ("FORMULARY_PYPI_UPSTREAMS", format!("[\"{upstream_url}\"]")),
        ("FORMULARY_INDEX_REVALIDATE_SECONDS", "0".to_owned()),
        ("FORMULARY_GATEWAY_ACCESS", "token".to_owned()),
    ];

    // Jane downloads requests 2.19.1 and Bob 2.31.0, each as themselves.
    let (server, base) = workspace.serve(&settings);
    let (jane, jane_gateway) = tokens(&base, "jane");
    let (bob, bob_gateway) = tokens(&base, "bob");
    let (auditor, _) = tokens(&base, "audrey");
    let output = pip_download(
        &root.join("jane"),
        &index_with(&base, "jane", &jane_gateway),
        "requests==2.19.1",
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    let output = pip_download(
        &root.join("bob"),
        &index_with(&base, "bob", &bob_gateway),
        "requests==2.31.0",
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    wait_until(
        Duration::from_secs(30),
        "both downloads in the ledger",
        || {
            get(
                &format!("{base}/api/v1/who-has?purl=pkg:pypi/requests"),
                &auditor,
            )
            .to_string()
            .matches("\"via\":\"download\"")
            .count()
                >= 2
        },
    );
    // A graceful stop: queued ledger lines are written and the recall job's lease handed over.
    let mut server = server;
    let stopped = std::process::Command::new("kill")
        .args(["-TERM", &server.0.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(stopped.success());
    assert!(server.0.wait().expect("the server exits").success());
    drop(server);

    // While no server runs, a curator prohibits requests < 2.32.
    let wide = prohibit(&workspace, "<2.32");
    let (_server, base) = workspace.serve(&settings);
    let started = std::time::Instant::now();
    let mut all = get(&format!("{base}/api/v1/recalls"), &auditor);
    while !all
        .as_array()
        .is_some_and(|found| found.len() == 1 && found[0]["told"] == 2)
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the recall of both within 30 s: {all}"
        );
        std::thread::sleep(Duration::from_millis(100));
        all = get(&format!("{base}/api/v1/recalls"), &auditor);
    }
    let took = started.elapsed();
    eprintln!("server started → recall of a prohibition recorded while it was down: {took:?}");
    let id = all[0]["id"].as_str().expect("id").to_owned();
    assert_eq!(all[0]["versions"], json!(["2.19.1", "2.31.0"]), "{all}");
    assert_eq!(all[0]["cause"], "prohibition", "{all}");

    // The curator narrows it: versions before 2.20 only (a new entry, the wide one removed).
    let narrow = prohibit(&workspace, "<2.20");
    workspace.ok(&[
        "entry",
        "remove",
        &wide,
        "--reason",
        "2.31.0 is not affected after all; only versions before 2.20 stay prohibited",
    ]);
    let took = wait_until(Duration::from_secs(30), "Bob to leave the recall", || {
        get(&format!("{base}/api/v1/me/recalls"), &bob) == json!([])
    });
    eprintln!("wide entry removed → Bob lifted: {took:?}");
    let detail = get(&format!("{base}/api/v1/recalls/{id}"), &auditor);
    let bob_row = person(&detail, "user:bob");
    assert_eq!(bob_row["resolution"], "lifted", "{detail}");
    let why = bob_row["explanation"].as_str().unwrap_or_default();
    for expected in [
        wide.as_str(),
        "was removed by",
        "2.31.0 is not affected after all",
        "now prohibits versions <2.20 only",
    ] {
        assert!(why.contains(expected), "{expected:?} in {why:?}");
    }
    assert_eq!(person(&detail, "user:jane")["resolution"], Value::Null);
    assert_eq!(
        detail["recall"]["exposed"], 1,
        "Jane is still exposed: {detail}"
    );
    assert_eq!(detail["recall"]["versions"], json!(["2.19.1"]), "{detail}");
    assert!(detail["recall"]["closed_at"].is_null(), "{detail}");
    assert!(detail["recall"]["lift_reason"].is_string(), "{detail}");
    assert_eq!(
        get(&format!("{base}/api/v1/me/recalls"), &jane)[0]["recall"]["id"],
        id.as_str()
    );
    // Bob is told it is lifted, and why; Jane is not.
    let bobs = recall_notices(&base, &bob);
    let lifted: Vec<&Value> = bobs
        .iter()
        .filter(|note| {
            note["subject"]
                .as_str()
                .is_some_and(|subject| subject.starts_with("Recall lifted"))
        })
        .collect();
    assert_eq!(lifted.len(), 1, "{bobs:?}");
    let body = lifted[0]["body"].as_str().unwrap_or_default();
    assert!(
        body.contains("2.31.0") && body.contains("was removed by"),
        "{body}"
    );
    assert!(lifted[0]["link"]
        .as_str()
        .is_some_and(|link| link.ends_with(&format!("/recalls/{id}"))));
    assert!(
        recall_notices(&base, &jane)
            .iter()
            .all(|note| !note["subject"].to_string().contains("lifted")),
        "Jane's version is still prohibited"
    );

    // The narrow entry is removed too: Jane is lifted and the recall closes.
    workspace.ok(&[
        "entry",
        "remove",
        &narrow,
        "--reason",
        "the advisory was withdrawn upstream",
    ]);
    let mut detail = Value::Null;
    wait_until(Duration::from_secs(30), "the recall to close", || {
        detail = get(&format!("{base}/api/v1/recalls/{id}"), &auditor);
        detail["recall"]["closed_at"].is_string()
    });
    assert_eq!(detail["recall"]["exposed"], 0, "{detail}");
    assert_eq!(detail["recall"]["versions"], json!([]), "{detail}");
    let jane_row = person(&detail, "user:jane");
    assert_eq!(jane_row["resolution"], "lifted", "{detail}");
    assert!(
        jane_row["explanation"]
            .as_str()
            .is_some_and(|why| why.contains(&narrow) && why.contains("withdrawn upstream")),
        "{detail}"
    );
    assert!(
        recall_notices(&base, &jane)
            .iter()
            .any(|note| note["subject"]
                .as_str()
                .is_some_and(|subject| subject.starts_with("Recall lifted"))),
        "Jane is told"
    );
    assert_eq!(get(&format!("{base}/api/v1/me/recalls"), &jane), json!([]));
    // Both lifts are in the audit log, by the recall job.
    let audit = get(&format!("{base}/api/v1/audit?limit=5000"), &auditor);
    let lifts: Vec<&Value> = audit
        .as_array()
        .expect("audit rows")
        .iter()
        .filter(|row| row["action"] == "recall.lift" && row["subject"] == id.as_str())
        .collect();
    assert_eq!(lifts.len(), 2, "{lifts:?}");
    assert_eq!(lifts[1]["details"]["closed"], true, "{lifts:?}");
    assert_eq!(lifts[0]["actor"], "system:recalls", "{lifts:?}");
}
