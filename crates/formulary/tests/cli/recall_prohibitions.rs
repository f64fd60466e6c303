//! Recalls opened by a prohibition (issue 14), end to end: people download through the gateway
//! with their own tokens (so the ledger knows them), a curator prohibits a version range with
//! `formulary entry add`, and the people who have a prohibited version are each told, in the app
//! and by email through a real SMTP server (aiosmtpd, STARTTLS), what to move to; the webhook
//! is called; a wider prohibition extends the same recall; a person who downloads the version
//! to move to drops off.

use std::path::Path;
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::formulary_cli::{text, Workspace};
use crate::gateway_pypi::static_upstream;
use crate::notifications::{add_person, certificates, delivered, smtp_server};
use crate::surveillance::{pip_download, request_json, wait_until, webhook_receiver};

/// Signs `username` in through the API; returns (API token, gateway token for package clients).
pub(crate) fn tokens(base: &str, username: &str) -> (String, String) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let client = reqwest::Client::new();
        let api = crate::requests::login(&client, base, username).await;
        let (status, issued) = crate::requests::call(
            &client,
            &api,
            "POST",
            format!("{base}/api/v1/me/tokens"),
            json!({ "name": "laptop", "scope": "gateway" }),
        )
        .await;
        assert!(status.is_success(), "{issued}");
        let gateway = issued["token"]
            .as_str()
            .expect("a gateway token")
            .to_owned();
        (api, gateway)
    })
}

/// The index URL with `token` as the Basic password (as pip takes it).
pub(crate) fn index_with(base: &str, username: &str, token: &str) -> String {
    format!("{base}/pypi/simple/").replacen("http://", &format!("http://{username}:{token}@"), 1)
}

/// The messages delivered to `address`, with quoted-printable soft line breaks undone.
fn mail_to(maildir: &Path, address: &str) -> Vec<String> {
    delivered(maildir)
        .into_iter()
        .filter(|message| message.contains(address))
        .map(|message| message.replace("=\r\n", "").replace("=\n", ""))
        .collect()
}

fn get(url: &str, token: &str) -> Value {
    let (status, body) = request_json(Method::GET, url, token, None);
    assert_eq!(status, 200, "GET {url}: {body}");
    body
}

fn prohibit(workspace: &Workspace, range: &str) {
    workspace.ok(&[
        "entry",
        "add",
        "pkg:pypi/requests",
        "--range",
        range,
        "--status",
        "prohibited",
        "--reason",
        "CVE-2018-18074: sends credentials to the host it is redirected to",
    ]);
}

crate::on_both_databases!(fn a_new_prohibition_recalls_what_people_downloaded_and_tells_them_by_email);
fn a_new_prohibition_recalls_what_people_downloaded_and_tells_them_by_email() {
    let workspace = Workspace::new();
    let root = workspace.folder.path();
    let (ca, cert, key) = certificates(root);
    let (_smtp, port, maildir) = smtp_server(root, &cert, &key);
    add_person(&workspace, "jane", "NATIONAL:requester");
    add_person(&workspace, "bob", "NATIONAL:requester");
    add_person(&workspace, "audrey", "NATIONAL:auditor");
    let (_upstream, upstream_url) = static_upstream(&root.join("upstream"));
    let (hook, received) = webhook_receiver();
    let (_server, base) = workspace.serve(&[
        ("FORMULARY_PYPI_UPSTREAMS", format!("[\"{upstream_url}\"]")),
        ("FORMULARY_INDEX_REVALIDATE_SECONDS", "0".to_owned()),
        ("FORMULARY_GATEWAY_ACCESS", "token".to_owned()),
        ("FORMULARY_RECALL_WEBHOOKS", format!("[\"{hook}\"]")),
        ("FORMULARY_RECALL_WEBHOOK_SECRET", "itsm-secret".to_owned()),
        ("FORMULARY_SMTP_URL", format!("smtp://localhost:{port}")),
        ("FORMULARY_SMTP_CA_FILE", ca.display().to_string()),
        (
            "FORMULARY_SMTP_FROM",
            "Formulary <formulary@example.nhs.uk>".to_owned(),
        ),
    ]);
    let (jane, jane_gateway) = tokens(&base, "jane");
    let (bob, bob_gateway) = tokens(&base, "bob");
    let (auditor, _) = tokens(&base, "audrey");

    // Jane has requests 2.19.1, Bob 2.31.0, both downloaded through the gateway as themselves.
    let jane_index = index_with(&base, "jane", &jane_gateway);
    let bob_index = index_with(&base, "bob", &bob_gateway);
    let output = pip_download(&root.join("jane-1"), &jane_index, "requests==2.19.1");
    assert!(output.status.success(), "{}", text(&output.stderr));
    let output = pip_download(&root.join("bob-1"), &bob_index, "requests==2.31.0");
    assert!(output.status.success(), "{}", text(&output.stderr));

    // A national curator prohibits requests < 2.20 on the server's machine.
    prohibit(&workspace, "<2.20");
    let mut mine = Value::Null;
    let took = wait_until(Duration::from_secs(30), "Jane's recall", || {
        mine = get(&format!("{base}/api/v1/me/recalls"), &jane);
        mine.as_array().is_some_and(|found| !found.is_empty())
    });
    eprintln!("prohibition recorded → Jane's recall listed: {took:?}");
    let recall = &mine[0]["recall"];
    assert_eq!(recall["cause"], "prohibition", "{mine}");
    assert_eq!(recall["component"], "pkg:pypi/requests", "{mine}");
    assert_eq!(recall["versions"], json!(["2.19.1"]), "{mine}");
    assert_eq!(recall["move_to"], "2.32.3", "the newest allowed: {mine}");
    assert_eq!(recall["severity"], "prohibited", "{mine}");
    assert!(
        recall["reason"]
            .as_str()
            .is_some_and(|reason| reason.contains("CVE-2018-18074")),
        "{mine}"
    );
    assert_eq!(mine[0]["mine"]["version"], "2.19.1", "{mine}");
    assert_eq!(mine[0]["mine"]["via"], "download", "{mine}");
    let id = recall["id"].as_str().expect("id").to_owned();
    assert_eq!(
        get(&format!("{base}/api/v1/me/recalls"), &bob),
        json!([]),
        "2.31.0 is not prohibited yet"
    );

    // The IT service-management tool is told.
    wait_until(Duration::from_secs(10), "the webhook call", || {
        received
            .lock()
            .unwrap()
            .iter()
            .any(|(signature, body)| signature.is_some() && body.contains(&id))
    });
    // Jane is told in the app and by email: what she has, why, what to move to, and a link.
    let link = format!("{base}/recalls/{id}");
    let notices = get(&format!("{base}/api/v1/me/notifications"), &jane);
    let recall_notices: Vec<&Value> = notices
        .as_array()
        .expect("notices")
        .iter()
        .filter(|note| note["kind"] == "recall")
        .collect();
    assert_eq!(recall_notices.len(), 1, "{notices}");
    assert_eq!(recall_notices[0]["link"], link.as_str(), "{notices}");
    let mut mail = Vec::new();
    wait_until(Duration::from_secs(30), "the recall email to Jane", || {
        mail = mail_to(&maildir, "jane@example.nhs.uk");
        mail.iter().any(|message| message.contains("Recall"))
    });
    let message = mail
        .iter()
        .find(|message| message.contains("Recall"))
        .expect("the recall email");
    for expected in [
        "pkg:pypi/requests",
        "2.19.1 downloaded through the NATIONAL gateway",
        "CVE-2018-18074",
        "Move to 2.32.3",
        link.as_str(),
    ] {
        assert!(message.contains(expected), "{expected:?} in {message}");
    }
    assert!(
        mail_to(&maildir, "bob@example.nhs.uk").is_empty(),
        "Bob has nothing recalled yet"
    );

    // The prohibition is widened (a new entry, requests < 2.32): Bob joins the same recall.
    prohibit(&workspace, "<2.32");
    let mut bobs = Value::Null;
    wait_until(Duration::from_secs(30), "Bob's recall", || {
        bobs = get(&format!("{base}/api/v1/me/recalls"), &bob);
        bobs.as_array().is_some_and(|found| !found.is_empty())
    });
    assert_eq!(bobs[0]["recall"]["id"], id.as_str(), "extended: {bobs}");
    assert_eq!(
        bobs[0]["recall"]["versions"],
        json!(["2.19.1", "2.31.0"]),
        "{bobs}"
    );
    let all = get(&format!("{base}/api/v1/recalls"), &auditor);
    assert_eq!(
        all.as_array().map(Vec::len),
        Some(1),
        "not duplicated: {all}"
    );
    assert_eq!(all[0]["told"], 2, "{all}");
    wait_until(Duration::from_secs(30), "the recall email to Bob", || {
        mail_to(&maildir, "bob@example.nhs.uk")
            .iter()
            .any(|message| message.contains("2.31.0 downloaded through"))
    });
    let notices = get(&format!("{base}/api/v1/me/notifications"), &jane);
    assert_eq!(
        notices
            .as_array()
            .expect("notices")
            .iter()
            .filter(|note| note["kind"] == "recall")
            .count(),
        1,
        "Jane is not told twice: {notices}"
    );

    // Jane moves: she downloads the version to move to, and drops off the recall.
    let output = pip_download(&root.join("jane-2"), &jane_index, "requests==2.32.3");
    assert!(output.status.success(), "{}", text(&output.stderr));
    wait_until(Duration::from_secs(30), "Jane to drop off", || {
        get(&format!("{base}/api/v1/me/recalls"), &jane) == json!([])
    });
    let detail = get(&format!("{base}/api/v1/recalls/{id}"), &auditor);
    assert_eq!(detail["recall"]["exposed"], 1, "Bob is left: {detail}");
    let jane_row = detail["people"]
        .as_array()
        .expect("people")
        .iter()
        .find(|person| person["person"] == "user:jane")
        .cloned()
        .expect("Jane's row");
    assert_eq!(jane_row["resolution"], "moved", "{detail}");
    // The metrics: blocked when the first prohibition was recorded; Bob still exposed.
    let metrics = get(&format!("{base}/api/v1/metrics/surveillance"), &auditor);
    assert_eq!(metrics["timelines"][0]["cause"], "prohibition", "{metrics}");
    assert!(metrics["timelines"][0]["blocked"].is_string(), "{metrics}");
    assert_eq!(
        metrics["exposure"][0]["severity"], "prohibited",
        "{metrics}"
    );
    assert_eq!(metrics["exposure"][0]["under_7_days"], 1, "{metrics}");
    // A prohibited version is refused, as before.
    let refused = pip_download(&root.join("jane-3"), &jane_index, "requests==2.31.0");
    assert!(!refused.status.success());
}

crate::on_both_databases!(fn an_organisations_prohibition_recalls_only_its_own_people);
fn an_organisations_prohibition_recalls_only_its_own_people() {
    let workspace = Workspace::new();
    let root = workspace.folder.path();
    workspace.ok(&["org", "add", "RJ1", "--name", "Trust One"]);
    add_person(&workspace, "carol", "RJ1:requester");
    add_person(&workspace, "bob", "NATIONAL:requester");
    let (_upstream, upstream_url) = static_upstream(&root.join("upstream"));
    let (_server, base) = workspace.serve(&[
        ("FORMULARY_PYPI_UPSTREAMS", format!("[\"{upstream_url}\"]")),
        ("FORMULARY_INDEX_REVALIDATE_SECONDS", "0".to_owned()),
        ("FORMULARY_GATEWAY_ACCESS", "token".to_owned()),
    ]);
    let (carol, carol_gateway) = tokens(&base, "carol");
    let (bob, bob_gateway) = tokens(&base, "bob");
    // Carol has requests 2.31.0 through RJ1's view; Bob the same version through the national one.
    let rj1_index = index_with(&base, "carol", &carol_gateway).replace("/pypi/", "/o/RJ1/pypi/");
    let output = pip_download(&root.join("carol"), &rj1_index, "requests==2.31.0");
    assert!(output.status.success(), "{}", text(&output.stderr));
    let output = pip_download(
        &root.join("bob"),
        &index_with(&base, "bob", &bob_gateway),
        "requests==2.31.0",
    );
    assert!(output.status.success(), "{}", text(&output.stderr));

    // RJ1 prohibits requests < 2.32 in its own formulary.
    workspace.ok(&[
        "entry",
        "add",
        "pkg:pypi/requests",
        "--org",
        "RJ1",
        "--range",
        "<2.32",
        "--status",
        "prohibited",
        "--reason",
        "RJ1's security team requires 2.32 or later",
    ]);
    let mut mine = Value::Null;
    wait_until(Duration::from_secs(30), "Carol's recall", || {
        mine = get(&format!("{base}/api/v1/me/recalls"), &carol);
        mine.as_array().is_some_and(|found| !found.is_empty())
    });
    assert_eq!(mine[0]["recall"]["versions"], json!(["2.31.0"]), "{mine}");
    assert_eq!(
        mine[0]["recall"]["move_to"], "2.32.3",
        "the newest RJ1 allows: {mine}"
    );
    assert_eq!(mine[0]["mine"]["organisation"], "RJ1", "{mine}");
    assert_eq!(mine[0]["recall"]["told"], 1, "only RJ1's people: {mine}");
    // The same look-up found Bob's national download and left it: RJ1's rule is not his.
    assert_eq!(get(&format!("{base}/api/v1/me/recalls"), &bob), json!([]));
    // Carol is told in the app, with a link to the recall page.
    let notices = get(&format!("{base}/api/v1/me/notifications"), &carol);
    assert!(
        notices
            .as_array()
            .is_some_and(|notes| notes.iter().any(|note| {
                note["kind"] == "recall"
                    && note["body"].as_str().is_some_and(|body| {
                        body.contains("2.31.0 downloaded through the RJ1 gateway")
                    })
            })),
        "{notices}"
    );
}
