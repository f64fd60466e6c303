//! Administration in the browser (issue 12, item 4) over HTTP against the real binary: an
//! organisation admin manages people, roles, tokens, settings and entries of their own
//! organisation only, every form needs the session's CSRF token and a same-site Origin, a
//! loosening of the national baseline is refused, and unknown addresses answer browsers with a
//! page. Review policies are in `review_stages`. Run on SQLite and PostgreSQL.

use reqwest::StatusCode;
use serde_json::Value;

use crate::formulary_cli::text;
use crate::requests::{call, hidden_token, login, setup, sign_in, Browser, PASSWORD};

/// Another strong password, for the account created through the browser.
const NEW_PASSWORD: &str = "lantern orchard copper meadow";

/// A signed-in browser and its CSRF token.
pub(crate) async fn signed_in(base: &str, username: &str, password: &str) -> (Browser, String) {
    let mut browser = Browser::new(base);
    let (status, location) = sign_in(&mut browser, username, password).await;
    assert_eq!(
        status,
        StatusCode::SEE_OTHER,
        "{username} signs in: {location}"
    );
    let (_, page) = browser.get("/account").await;
    let token = hidden_token(&page);
    (browser, token)
}

/// The user id linked from an organisation's people page next to `name`.
async fn user_id(browser: &mut Browser, org: &str, name: &str) -> String {
    let (status, page) = browser.get(&format!("/admin/{org}/people")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let at = page
        .find(&format!(">{name}</a>"))
        .unwrap_or_else(|| panic!("{name} is not listed on {org}'s people page: {page}"));
    let marker = format!("/admin/{org}/people/");
    let start = page[..at].rfind(&marker).expect("a person link") + marker.len();
    page[start..].split('"').next().expect("an id").to_owned()
}

/// The actions of the audit log, as the auditor reads them.
pub(crate) async fn audit_actions(
    client: &reqwest::Client,
    base: &str,
    auditor: &str,
) -> Vec<(String, String)> {
    let (status, audit) = call(
        client,
        auditor,
        "GET",
        format!("{base}/api/v1/audit?limit=1000"),
        Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{audit}");
    audit
        .as_array()
        .expect("audit rows")
        .iter()
        .map(|row| {
            (
                row["actor"].as_str().unwrap_or("").to_owned(),
                row["action"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

crate::on_both_databases!(async fn an_organisation_admin_manages_people_tokens_settings_and_entries_of_their_own_organisation_only);
async fn an_organisation_admin_manages_people_tokens_settings_and_entries_of_their_own_organisation_only(
) {
    let (workspace, _server, base) = setup();
    workspace.add_user(
        "rosa",
        "Rosa RQM Admin",
        &["RQM:organisation-admin"],
        PASSWORD,
    );
    workspace.add_user(
        "cora",
        "Cora Curator",
        &["NATIONAL:national-curator"],
        PASSWORD,
    );
    let client = reqwest::Client::new();
    let (mut olu, csrf) = signed_in(&base, "olu", PASSWORD).await;

    // The hub lists what olu administers, and nothing else; another trust's pages are refused.
    let (status, hub) = olu.get("/admin").await;
    assert_eq!(status, StatusCode::OK, "{hub}");
    assert!(
        hub.contains("/admin/RJ1/people") && !hub.contains("/admin/RQM/"),
        "{hub}"
    );
    for path in [
        "/admin/RQM/people",
        "/admin/RQM/settings",
        "/admin/RQM/entries",
        "/admin/RQM/review",
    ] {
        let (status, page) = olu.get(path).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {page}");
        assert!(page.contains("does not administer RQM"), "{path}: {page}");
    }
    let (status, people) = olu.get("/admin/RJ1/people").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        people.contains("ana") && !people.contains(">other</a>"),
        "{people}"
    );
    // Requesters have no administration at all.
    let (mut ana, _) = signed_in(&base, "ana", PASSWORD).await;
    let (status, _) = ana.get("/admin/RJ1/people").await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Adding a person to another trust is refused and creates nobody.
    let add = |username: &'static str, csrf: String| {
        vec![
            ("csrf_token", csrf),
            ("username", username.to_owned()),
            ("display_name", "Nina Newcomer".to_owned()),
            ("email", "nina@example.nhs.uk".to_owned()),
            ("role", "requester".to_owned()),
        ]
    };
    let form = add("nina", csrf.clone());
    let fields: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, _) = olu.post("/admin/RQM/people", &fields, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Without the CSRF token, or from another site, nothing happens either.
    let without: Vec<(&str, &str)> = fields
        .iter()
        .filter(|(k, _)| *k != "csrf_token")
        .copied()
        .collect();
    let (status, _) = olu.post("/admin/RJ1/people", &without, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = olu
        .post("/admin/RJ1/people", &fields, Some("https://evil.example"))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        !workspace.ok(&["admin", "user", "list"]).contains("nina"),
        "no account was made"
    );

    // The real add: a link to choose a password, from the public URL, shown once.
    let (status, page) = olu.post("/admin/RJ1/people", &fields, None).await;
    assert_eq!(status, StatusCode::CREATED, "{page}");
    let marker = format!("{base}/reset-password/");
    let start = page
        .find(&marker)
        .unwrap_or_else(|| panic!("a password link: {page}"));
    let link = page[start..].split('<').next().unwrap().to_owned();
    let path = link.trim_start_matches(&base).to_owned();
    let mut nina = Browser::new(&base);
    let (status, form_page) = nina.get(&path).await;
    assert_eq!(status, StatusCode::OK, "{form_page}");
    assert!(form_page.contains("nina"), "{form_page}");
    let (status, weak) = nina
        .post(
            &path,
            &[
                ("new_password", "password1234"),
                ("confirm_password", "password1234"),
            ],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{weak}");
    assert!(weak.contains("too easy to guess"), "{weak}");
    let (status, _) = nina
        .post(
            &path,
            &[
                ("new_password", NEW_PASSWORD),
                ("confirm_password", NEW_PASSWORD),
            ],
            Some("https://evil.example"),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "a cross-site post cannot use the link"
    );
    let (status, done) = nina
        .post(
            &path,
            &[
                ("new_password", NEW_PASSWORD),
                ("confirm_password", NEW_PASSWORD),
            ],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    let (status, again) = nina.get(&path).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "a link works once: {again}");
    let (mut nina, nina_csrf) = signed_in(&base, "nina", NEW_PASSWORD).await;

    // Granting a role: the CSRF token is needed, then it works.
    let nina_id = user_id(&mut olu, "RJ1", "Nina Newcomer").await;
    let person = format!("/admin/RJ1/people/{nina_id}");
    let (status, _) = olu
        .post(&format!("{person}/roles"), &[("role", "reviewer")], None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = olu
        .post(
            &format!("{person}/roles"),
            &[("csrf_token", &csrf), ("role", "reviewer")],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, page) = olu.get(&person).await;
    assert!(page.contains("Reviewer"), "{page}");
    // A national curator role cannot be granted in a trust.
    let (status, _) = olu
        .post(
            &format!("{person}/roles"),
            &[("csrf_token", &csrf), ("role", "national-curator")],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    // Nina's own tokens: an API token with a chosen expiry, shown once, that works.
    let (status, page) = nina
        .post(
            "/account/gateway-tokens",
            &[
                ("csrf_token", &nina_csrf),
                ("name", "report script"),
                ("scope", "api"),
                ("expires_days", "30"),
            ],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let secret_at = page.find("frm_").expect("the new token's secret");
    let secret: String = page[secret_at..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    let (status, me) = call(
        &client,
        &secret,
        "GET",
        format!("{base}/api/v1/me"),
        Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{me}");

    // Olu revokes it from nina's page; it stops working at once.
    let (_, page) = olu.get(&person).await;
    let revoke_at = page.find("/tokens/").expect("a revoke form");
    let token_id: String = page[revoke_at + "/tokens/".len()..]
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let (status, _) = olu
        .post(
            &format!("{person}/tokens/{token_id}/revoke"),
            &[("csrf_token", &csrf)],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (status, _) = call(
        &client,
        &secret,
        "GET",
        format!("{base}/api/v1/me"),
        Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Disabling ends nina's session; enabling lets her sign in again.
    let (status, _) = olu
        .post(&format!("{person}/disable"), &[("csrf_token", &csrf)], None)
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (status, _) = nina.get("/account").await;
    assert_eq!(
        status,
        StatusCode::SEE_OTHER,
        "a disabled account's session has ended"
    );
    let (status, _) = olu
        .post(&format!("{person}/enable"), &[("csrf_token", &csrf)], None)
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let _ = signed_in(&base, "nina", NEW_PASSWORD).await;

    // People of other trusts: not found from RJ1's pages; an account with a role elsewhere
    // cannot be disabled by RJ1's admin, though its RJ1 roles can be changed.
    let (mut cora, _) = signed_in(&base, "cora", PASSWORD).await;
    let other_id = user_id(&mut cora, "RQM", "other").await;
    let (status, _) = olu
        .post(
            &format!("/admin/RJ1/people/{other_id}/disable"),
            &[("csrf_token", &csrf)],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = olu
        .post(
            &format!("/admin/RQM/people/{other_id}/disable"),
            &[("csrf_token", &csrf)],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    workspace.ok(&["admin", "user", "grant", "ana", "--role", "RQM:requester"]);
    let ana_id = user_id(&mut olu, "RJ1", "ana").await;
    let (status, page) = olu
        .post(
            &format!("/admin/RJ1/people/{ana_id}/disable"),
            &[("csrf_token", &csrf)],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{page}");
    let (status, _) = olu
        .post(
            &format!("/admin/RJ1/people/{ana_id}/password-reset"),
            &[("csrf_token", &csrf)],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = olu
        .post(
            &format!("/admin/RJ1/people/{ana_id}/roles"),
            &[("csrf_token", &csrf), ("role", "reviewer")],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);

    // Settings: a loosening is refused with the reason and changes nothing; tightening works.
    let (status, page) = olu
        .post(
            "/admin/RJ1/settings/pypi",
            &[
                ("csrf_token", &csrf),
                ("stance", "open"),
                ("severity_threshold", "critical"),
                ("cooldown_days", "0"),
                ("allowed_licences", ""),
            ],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{page}");
    assert!(
        page.contains("may only tighten the national baseline"),
        "{page}"
    );
    let settings = |client: reqwest::Client, base: String| async move {
        let answer: Value = client
            .get(format!("{base}/api/v1/organisations/RJ1/settings"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        answer["pypi"].clone()
    };
    let before = settings(client.clone(), base.clone()).await;
    assert_eq!(before["severity_threshold"], "high", "{before}");
    let (status, _) = olu
        .post(
            "/admin/RQM/settings/pypi",
            &[
                ("csrf_token", &csrf),
                ("stance", "curated"),
                ("severity_threshold", "low"),
                ("cooldown_days", "14"),
                ("allowed_licences", ""),
            ],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = olu
        .post(
            "/admin/RJ1/settings/pypi",
            &[
                ("csrf_token", &csrf),
                ("stance", "open"),
                ("severity_threshold", "medium"),
                ("cooldown_days", "14"),
                ("allowed_licences", ""),
            ],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let after = settings(client.clone(), base.clone()).await;
    assert_eq!(after["severity_threshold"], "medium", "{after}");
    assert_eq!(after["cooldown_days"], 14, "{after}");

    // Entries: an exception needs an expiry; with one it is in force and listed.
    let exception = |expires: &'static str| {
        vec![
            ("csrf_token", csrf.clone()),
            ("component", "pkg:pypi/requests".to_owned()),
            ("range", "==2.19.1".to_owned()),
            ("status", "approved".to_owned()),
            (
                "reason",
                "Legacy pipeline until its migration; risk owner: CIO".to_owned(),
            ),
            ("waives", "PYSEC-2018-28".to_owned()),
            ("expires", expires.to_owned()),
        ]
    };
    let form = exception("");
    let fields: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, page) = olu.post("/admin/RJ1/entries", &fields, None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{page}");
    assert!(page.contains("exception needs an expiry"), "{page}");
    let (status, _) = olu.post("/admin/RQM/entries", &fields, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let form = exception("2099-12-31");
    let fields: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, _) = olu.post("/admin/RJ1/entries", &fields, None).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let entries: Value = client
        .get(format!("{base}/api/v1/entries?organisation=RJ1"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let entry = entries
        .as_array()
        .unwrap()
        .iter()
        .find(|entry| entry["waives"].to_string().contains("PYSEC-2018-28"))
        .unwrap_or_else(|| panic!("the exception is listed: {entries}"));
    assert_eq!(entry["expires"], "2099-12-31");
    assert_eq!(
        entry["decided_by"], "olu",
        "who decided is the signed-in admin"
    );

    // Everything above is in the audit log under olu's name, and the chain verifies.
    let audrey = login(&client, &base, "audrey").await;
    let actions = audit_actions(&client, &base, &audrey).await;
    for action in [
        "user.add",
        "user.password-reset-issued",
        "role.grant",
        "token.revoke",
        "user.disable",
        "user.enable",
        "settings.set",
        "entry.add",
    ] {
        assert!(
            actions
                .iter()
                .any(|(actor, done)| actor == "user:olu" && done == action),
            "{action} by user:olu missing from {actions:?}"
        );
    }
    let verified = workspace.run(&["audit", "verify"]);
    assert!(verified.status.success(), "{}", text(&verified.stdout));
}

crate::on_both_databases!(async fn unknown_addresses_answer_browsers_with_a_page_and_programs_with_problem_json);
async fn unknown_addresses_answer_browsers_with_a_page_and_programs_with_problem_json() {
    let (_workspace, _server, base) = setup();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for path in ["/no-such-page", "/admin"] {
        let answer = client
            .get(format!("{base}{path}"))
            .header("accept", "application/json")
            .send()
            .await
            .unwrap();
        let status = answer.status();
        let kind = answer.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            kind.starts_with("application/problem+json"),
            "{path}: {kind}"
        );
        assert!(
            status == StatusCode::NOT_FOUND || status == StatusCode::NOT_ACCEPTABLE,
            "{path}: {status}"
        );
    }
    let html = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
    let answer = client
        .get(format!("{base}/no-such-page"))
        .header("accept", html)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::NOT_FOUND);
    assert!(answer.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(answer.headers().contains_key("content-security-policy"));
    let body = answer.text().await.unwrap();
    assert!(
        body.contains("Page not found") && body.contains("Go to the home page"),
        "{body}"
    );
    let answer = client
        .get(format!("{base}/admin"))
        .header("accept", html)
        .send()
        .await
        .unwrap();
    assert_eq!(
        answer.status(),
        StatusCode::SEE_OTHER,
        "a browser signs in first"
    );
    assert!(answer.headers()["location"]
        .to_str()
        .unwrap()
        .starts_with("/sign-in"));
}
