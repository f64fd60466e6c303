//! `formulary serve --demo` on a real socket: landing page, health check, the API with tokens and
//! roles, and the snapshot following changes made by the CLI.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::formulary_cli::Workspace;

/// A running server, stopped when dropped.
struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(workspace: &Workspace) -> Server {
    let mut child = workspace
        .command(&["serve", "--demo", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the server starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("the server prints its address");
    let base = line
        .split_whitespace()
        .find(|word| word.starts_with("http://"))
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .trim_end_matches('/')
        .to_owned();
    Server { child, base }
}

fn token(workspace: &Workspace, role: &str, organisation: &str) -> String {
    workspace
        .ok(&[
            "token",
            "create",
            "--name",
            &format!("{role} test"),
            "--role",
            role,
            "--org",
            organisation,
        ])
        .trim()
        .to_owned()
}

async fn check(client: &reqwest::Client, server: &Server, purl: &str, organisation: &str) -> Value {
    let url = format!(
        "{}/api/v1/policy/check?purl={purl}&organisation={organisation}",
        server.base
    );
    client
        .get(url)
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("JSON")
}

crate::on_both_databases!(async fn the_demo_server_answers_and_enforces_roles);
async fn the_demo_server_answers_and_enforces_roles() {
    let workspace = Workspace::new();
    let server = start(&workspace);
    let client = reqwest::Client::new();

    let health = client
        .get(format!("{}/healthz", server.base))
        .send()
        .await
        .expect("healthz");
    assert_eq!(health.status(), StatusCode::OK);
    let landing = client
        .get(format!("{}/", server.base))
        .send()
        .await
        .expect("landing")
        .text()
        .await
        .expect("text");
    assert!(
        landing.contains("Which open-source tools and packages may be used here")
            && landing.contains("What this server holds"),
        "{landing}"
    );
    let missing = client
        .get(format!("{}/nothing-here", server.base))
        .send()
        .await
        .expect("404");
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        missing.headers()["content-type"],
        "application/problem+json"
    );

    let entries: Vec<Value> = client
        .get(format!("{}/api/v1/entries", server.base))
        .send()
        .await
        .expect("entries")
        .json()
        .await
        .expect("JSON");
    assert!(
        entries.len() >= 20,
        "the demo seeds a realistic formulary: {}",
        entries.len()
    );

    let pyyaml = check(&client, &server, "pkg:pypi/pyyaml@5.3", "RJ1").await;
    assert_eq!(pyyaml["allowed"], false);
    let codes: Vec<&str> = pyyaml["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|reason| reason["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes[..2], ["prohibited", "advisory"], "{pyyaml}");
    let jinja_exception = check(&client, &server, "pkg:pypi/jinja2@2.11.2", "RJ1").await;
    assert_eq!(
        jinja_exception["allowed"], true,
        "RJ1 waived the advisory: {jinja_exception}"
    );
    assert_eq!(
        check(&client, &server, "pkg:pypi/jinja2@2.11.2", "NATIONAL").await["allowed"],
        false
    );
    assert_eq!(
        check(&client, &server, "pkg:generic/vscode@1.95.0", "RJ1").await["allowed"],
        true
    );
    assert_eq!(
        check(&client, &server, "pkg:generic/vscode@1.95.0", "NATIONAL").await["allowed"],
        false
    );

    let new_entry = json!({"component": "pkg:pypi/httpx", "range": ">=0.27", "status": "approved", "reason": "async HTTP client"});
    let anonymous = client
        .post(format!("{}/api/v1/entries", server.base))
        .json(&new_entry)
        .send()
        .await
        .expect("post");
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        anonymous.headers()["content-type"],
        "application/problem+json"
    );
    let bogus = client
        .post(format!("{}/api/v1/entries", server.base))
        .bearer_auth("frm_not_a_real_token")
        .json(&new_entry)
        .send()
        .await
        .expect("post");
    assert_eq!(bogus.status(), StatusCode::UNAUTHORIZED);

    let requester = token(&workspace, "requester", "RJ1");
    let refused = client
        .post(format!("{}/api/v1/entries", server.base))
        .bearer_auth(&requester)
        .json(&new_entry)
        .send()
        .await
        .expect("post");
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);

    let trust_admin = token(&workspace, "organisation-admin", "RJ1");
    let national_by_trust = client
        .post(format!("{}/api/v1/entries", server.base))
        .bearer_auth(&trust_admin)
        .json(&new_entry)
        .send()
        .await
        .expect("post");
    assert_eq!(
        national_by_trust.status(),
        StatusCode::FORBIDDEN,
        "a trust admin cannot change the national formulary"
    );
    let local_entry = json!({"organisation": "RJ1", "component": "pkg:pypi/httpx", "range": "<0.27", "status": "prohibited", "reason": "trust policy"});
    let local = client
        .post(format!("{}/api/v1/entries", server.base))
        .bearer_auth(&trust_admin)
        .json(&local_entry)
        .send()
        .await
        .expect("post");
    assert_eq!(local.status(), StatusCode::CREATED);

    let curator = token(&workspace, "national-curator", "NATIONAL");
    let created = client
        .post(format!("{}/api/v1/entries", server.base))
        .bearer_auth(&curator)
        .json(&new_entry)
        .send()
        .await
        .expect("post");
    assert_eq!(created.status(), StatusCode::CREATED);
    let created: Value = created.json().await.expect("JSON");
    assert!(
        created["created_by"]
            .as_str()
            .unwrap()
            .starts_with("token:"),
        "{created}"
    );
    let invalid = json!({"component": "pkg:pypi/httpx", "status": "pilot", "reason": "no expiry"});
    let rejected = client
        .post(format!("{}/api/v1/entries", server.base))
        .bearer_auth(&curator)
        .json(&invalid)
        .send()
        .await
        .expect("post");
    assert_eq!(rejected.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let problem: Value = rejected.json().await.expect("problem");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("pilot needs an expiry date"),
        "{problem}"
    );

    let removal = client
        .delete(format!(
            "{}/api/v1/entries/{}",
            server.base,
            created["id"].as_str().unwrap()
        ))
        .bearer_auth(&curator)
        .json(&json!({"reason": "superseded"}))
        .send()
        .await
        .expect("delete");
    assert_eq!(removal.status(), StatusCode::OK);

    // A change made through the CLI (as another replica would) reaches the server's snapshot.
    assert_eq!(
        check(&client, &server, "pkg:pypi/pandas@2.2.3", "NATIONAL").await["allowed"],
        true
    );
    workspace.ok(&[
        "entry",
        "add",
        "pkg:pypi/pandas",
        "--range",
        "==2.2.3",
        "--status",
        "prohibited",
        "--reason",
        "recalled",
    ]);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if check(&client, &server, "pkg:pypi/pandas@2.2.3", "NATIONAL").await["allowed"] == false {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the server did not pick up the CLI's change"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let verified = workspace.ok(&["audit", "verify"]);
    assert!(verified.contains("intact"), "{verified}");
}
