//! The API describes itself: schemathesis (from PyPI, installed by `scripts/test`) reads
//! `/api/v1/openapi.json` from `formulary serve --demo` and sends generated requests, valid and
//! invalid, to every operation, checking that none fails with a server error, that every answer's
//! status, content type and body match the document, that invalid input is refused and that
//! authenticated operations refuse requests without a token. Bounded in time.
//!
//! Two checks are left out, on purpose: `positive_data_acceptance` (a schema-valid request must
//! succeed) cannot hold where the server checks what JSON Schema cannot say — a purl names a
//! real ecosystem and a name valid in it, a version range parses in that ecosystem's syntax, an
//! organisation exists — and answers 400 or 422 naming the field; and revoking one's own token
//! (`DELETE /api/v1/me/tokens/{token}`) is left out of the run because schemathesis, following
//! the link from the token list, would revoke the token it runs with.

use std::process::Command;

use crate::formulary_cli::{text, Workspace};

/// Longest schemathesis may run, in seconds (per database).
const TIME_BUDGET_SECONDS: &str = "90";

/// Examples generated per operation.
const EXAMPLES_PER_OPERATION: &str = "20";

crate::on_both_databases!(async fn schemathesis_finds_no_failure_in_the_api);
async fn schemathesis_finds_no_failure_in_the_api() {
    let workspace = Workspace::new();
    let (_server, base) = workspace.serve_demo();
    // The demo's national curator, signed in through the API: a person (so `/api/v1/me/…`
    // answers) who may reach every operation, so generated requests get past authorisation.
    let signed_in: serde_json::Value = reqwest::Client::new()
        .post(format!("{base}/api/v1/session/token"))
        .json(&serde_json::json!({ "username": "nina", "password": "formulary-demo" }))
        .send()
        .await
        .expect("sign in")
        .json()
        .await
        .expect("token JSON");
    let token = signed_in["token"].as_str().expect("a token").to_owned();
    let reports = workspace.folder.path().join("schemathesis");
    let output = Command::new("schemathesis")
        // It keeps a cache of crashes in `.schemathesis/` where it runs: in the workspace.
        .current_dir(workspace.folder.path())
        .args([
            "run",
            &format!("{base}/api/v1/openapi.json"),
            "--checks",
            "all",
            "--exclude-checks",
            "positive_data_acceptance",
            "--exclude-path",
            "/api/v1/me/tokens/{token}",
            "--max-examples",
            EXAMPLES_PER_OPERATION,
            "--max-time",
            TIME_BUDGET_SECONDS,
            "--seed",
            "20261205",
            // One worker: hypothesis, run in several threads on CPython 3.11, can trip over
            // an interpreter bug ("AST constructor recursion depth mismatch").
            "--workers",
            "1",
            "--request-timeout",
            "20",
            "--header",
            &format!("Authorization: Bearer {token}"),
            "--report-dir",
            &reports.to_string_lossy(),
            "--no-color",
        ])
        .output()
        .expect("schemathesis runs (scripts/test installs it: pip install schemathesis)");
    let printed = format!("{}\n{}", text(&output.stdout), text(&output.stderr));
    assert!(
        output.status.success(),
        "schemathesis found failures:\n{}",
        failures_only(&printed)
    );
    // It really ran the operations (not an empty schema or an unreachable server): the summary
    // line reads "N generated, N passed, …".
    let passed: u64 = printed
        .lines()
        .find_map(|line| {
            let (_, rest) = line.split_once(" generated, ")?;
            rest.split_once(" passed")?.0.trim().parse().ok()
        })
        .unwrap_or(0);
    assert!(
        passed >= 1_000,
        "only {passed} test cases passed:\n{printed}"
    );
}

/// The failures and the summary of schemathesis' output, without the tracebacks of its own
/// internal errors (which can run to hundreds of kilobytes).
fn failures_only(printed: &str) -> String {
    let start = printed.find(" FAILURES ").unwrap_or(0);
    printed[start..]
        .lines()
        .filter(|line| line.len() < 2_000)
        .collect::<Vec<_>>()
        .join("\n")
}

crate::on_both_databases!(async fn rejections_before_a_handler_are_problems_too);
async fn rejections_before_a_handler_are_problems_too() {
    let workspace = Workspace::new();
    let (_server, base) = workspace.serve_demo();
    let client = reqwest::Client::new();
    let signed_in: serde_json::Value = client
        .post(format!("{base}/api/v1/session/token"))
        .json(&serde_json::json!({ "username": "ana", "password": "formulary-demo" }))
        .send()
        .await
        .expect("sign in")
        .json()
        .await
        .expect("token JSON");
    let token = signed_in["token"].as_str().expect("a token").to_owned();
    let cases = [
        // NUL in a search: PostgreSQL refused it with a storage error (500), SQLite stored it.
        (
            client.get(format!("{base}/api/v1/search?q=read%00xl")),
            400,
            "NUL character",
        ),
        // NUL in a comment body.
        (
            client
                .post(format!("{base}/api/v1/requests/1/comments"))
                .bearer_auth(&token)
                .header("content-type", "application/json")
                .body(r#"{"body": "fine\u0000then"}"#),
            400,
            "NUL character",
        ),
        // A raw NUL byte in a form body (a form decoder passes it through as it is).
        (
            client
                .post(format!("{base}/api/v1/requests/1/comments"))
                .bearer_auth(&token)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(b"body=fine\0then".to_vec()),
            400,
            "NUL character",
        ),
        // A body that is not JSON at all: the framework's rejection, as problem+json.
        (
            client
                .post(format!("{base}/api/v1/requests/1/comments"))
                .bearer_auth(&token)
                .header("content-type", "application/json")
                .body("not json"),
            400,
            "openapi.json",
        ),
        // A missing field.
        (
            client
                .post(format!("{base}/api/v1/requests/1/comments"))
                .bearer_auth(&token)
                .json(&serde_json::json!({ "text": "hello" })),
            422,
            "missing field `body`",
        ),
        // A method the path does not take.
        (client.delete(format!("{base}/api/v1/search")), 405, "Allow"),
        // A request id that is not a number.
        (
            client
                .get(format!("{base}/api/v1/requests/seven"))
                .bearer_auth(&token),
            400,
            "openapi.json",
        ),
    ];
    for (request, status, says) in cases {
        let answer = request.send().await.expect("answer");
        let content_type = answer
            .headers()
            .get("content-type")
            .and_then(|value| value.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let seen = answer.status().as_u16();
        let body = answer.text().await.expect("body");
        assert_eq!(seen, status, "{body}");
        assert_eq!(content_type, "application/problem+json", "{body}");
        let problem: serde_json::Value = serde_json::from_str(&body).expect("problem JSON");
        assert_eq!(problem["status"], status, "{body}");
        assert!(
            problem["detail"].as_str().unwrap_or("").contains(says),
            "{body}"
        );
    }
}
