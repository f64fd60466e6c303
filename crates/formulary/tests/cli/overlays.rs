//! Overlays only tighten (issue 12, finding S3): an organisation admin cannot loosen the national
//! baseline through the API, and a baseline tightened later wins over an overlay saved before.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::formulary_cli::{repo_root, text};
use crate::on_both_databases;
use crate::requests::{login, setup, PASSWORD};
use crate::security::send;

/// The decision the API gives RJ1 for a purl.
async fn allowed_for_rj1(client: &reqwest::Client, base: &str, purl: &str) -> bool {
    let answer: Value = client
        .get(format!(
            "{base}/api/v1/policy/check?purl={purl}&organisation=RJ1"
        ))
        .send()
        .await
        .expect("policy check")
        .json()
        .await
        .expect("JSON");
    answer["allowed"]
        .as_bool()
        .unwrap_or_else(|| panic!("no decision: {answer}"))
}

async fn s3_an_organisation_admin_cannot_loosen_the_national_baseline() {
    let (workspace, _server, base) = setup();
    workspace.add_user("nina", "nina", &["NATIONAL:national-curator"], PASSWORD);
    let advisories = repo_root().join("test-data/osv/pypa-advisory-database");
    workspace.ok(&["advisories", "import", &advisories.display().to_string()]);
    let client = reqwest::Client::new();
    let olu = login(&client, &base, "olu").await;
    let nina = login(&client, &base, "nina").await;
    let vulnerable = "pkg:pypi/requests@2.19.1";
    // The running server picks the import up on its next refresh.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while allowed_for_rj1(&client, &base, vulnerable).await {
        assert!(
            std::time::Instant::now() < deadline,
            "the server never saw the imported advisories"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }

    // The finding's exact request: threshold critical and no cooldown.
    let rj1_pypi = format!("{base}/api/v1/organisations/RJ1/settings/pypi");
    let loosen = json!({
        "stance": "open", "severity_threshold": "critical",
        "allowed_licences": [], "cooldown_days": 0
    });
    let (status, _, problem) = send(
        &client,
        Some(&olu),
        Method::PUT,
        rj1_pypi.clone(),
        Some(loosen),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    let detail = problem["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("only tighten"), "{problem}");
    assert!(detail.contains("critical"), "{problem}");
    assert!(detail.contains("exception entry"), "{problem}");
    assert!(
        !allowed_for_rj1(&client, &base, vulnerable).await,
        "the refused change loosened nothing"
    );

    // Tightening is the overlay's job, and is accepted.
    let tighten = json!({
        "stance": "curated", "severity_threshold": "medium",
        "allowed_licences": [], "cooldown_days": 14
    });
    let (status, _, saved) = send(&client, Some(&olu), Method::PUT, rj1_pypi, Some(tighten)).await;
    assert_eq!(status, StatusCode::OK, "{saved}");

    // The national curator later tightens the baseline past the overlay: the stricter wins.
    let national = json!({
        "stance": "open", "severity_threshold": "high",
        "allowed_licences": [], "cooldown_days": 30
    });
    let (status, _, saved) = send(
        &client,
        Some(&nina),
        Method::PUT,
        format!("{base}/api/v1/organisations/NATIONAL/settings/pypi"),
        Some(national),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    let (status, _, in_force) = send(
        &client,
        None,
        Method::GET,
        format!("{base}/api/v1/organisations/RJ1/settings"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{in_force}");
    assert_eq!(in_force["pypi"]["cooldown_days"], 30, "{in_force}");
    assert_eq!(
        in_force["pypi"]["severity_threshold"], "medium",
        "{in_force}"
    );
    assert_eq!(in_force["pypi"]["stance"], "curated", "{in_force}");

    // The CLI applies the same rule.
    let refused = workspace.run(&[
        "org",
        "settings",
        "RJ1",
        "--ecosystem",
        "pypi",
        "--cooldown-days",
        "0",
    ]);
    assert!(!refused.status.success(), "the CLI refused too");
    let said = text(&refused.stderr);
    assert!(said.contains("only tighten"), "{said}");
}

on_both_databases!(async fn s3_an_organisation_admin_cannot_loosen_the_national_baseline);
