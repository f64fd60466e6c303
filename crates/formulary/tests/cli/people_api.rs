//! The JSON API for managing people (issue 12, trust and identity), over HTTP against the real
//! binary: an organisation admin lists, adds, grants, revokes, disables, enables and issues
//! password links for the people of their own organisation only, with the same rules as the
//! administration pages; nobody can lock themselves out; errors are problem+json; every change
//! is audited under the caller's name. Run on SQLite and PostgreSQL.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::administration::audit_actions;
use crate::formulary_cli::text;
use crate::requests::{login, setup, PASSWORD};

/// A strong password for the account added through the API.
const NEW_PASSWORD: &str = "walnut harbour gentle sixteen";

/// Calls the API with a token: the status, the `Content-Type` and the JSON answer.
async fn api(
    client: &reqwest::Client,
    token: &str,
    method: &str,
    url: String,
    body: Option<Value>,
) -> (StatusCode, String, Value) {
    let request = match method {
        "GET" => client.get(url),
        "DELETE" => client.delete(url),
        _ => client.post(url),
    };
    let request = match body {
        Some(body) => request.json(&body),
        None => request,
    };
    let answer = request.bearer_auth(token).send().await.expect("API call");
    let status = answer.status();
    let kind = answer
        .headers()
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
        .to_owned();
    (status, kind, answer.json().await.unwrap_or(Value::Null))
}

/// The person called `username` in a list of people.
fn find<'a>(people: &'a Value, username: &str) -> &'a Value {
    people
        .as_array()
        .expect("a list of people")
        .iter()
        .find(|person| person["username"] == username)
        .unwrap_or_else(|| panic!("{username} is not listed: {people}"))
}

crate::on_both_databases!(async fn an_organisation_admin_manages_people_through_the_api_without_locking_anyone_out);
async fn an_organisation_admin_manages_people_through_the_api_without_locking_anyone_out() {
    let (workspace, _server, base) = setup();
    workspace.add_user(
        "cora",
        "Cora Curator",
        &["NATIONAL:national-curator"],
        PASSWORD,
    );
    let client = reqwest::Client::new();
    let people = |code: &str| format!("{base}/api/v1/organisations/{code}/people");
    // ana signs in on the web once, so she has a last sign-in.
    let mut browser = crate::requests::Browser::new(&base);
    let (status, _) = crate::requests::sign_in(&mut browser, "ana", PASSWORD).await;
    assert_eq!(status, StatusCode::SEE_OTHER);

    let olu = login(&client, &base, "olu").await;
    let ana_token = login(&client, &base, "ana").await;

    // The list: roles here and elsewhere, how each signs in, disabled, last sign-in.
    let (status, _, listed) = api(&client, &olu, "GET", people("RJ1"), None).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    let ana = find(&listed, "ana").clone();
    assert_eq!(ana["roles"], json!(["requester"]), "{ana}");
    assert_eq!(ana["sign_in"], "local", "{ana}");
    assert_eq!(ana["disabled"], false, "{ana}");
    assert!(ana["last_sign_in"].is_string(), "ana signed in: {ana}");
    assert!(
        find(&listed, "rob")["last_sign_in"].is_null(),
        "rob never signed in on the web: {listed}"
    );
    assert!(
        !listed.to_string().contains("\"other\""),
        "only RJ1's people: {listed}"
    );
    let ana_id = ana["id"].as_str().expect("an id").to_owned();

    // Others are refused, as problem+json: a requester, and olu for another trust.
    let (status, kind, problem) = api(&client, &ana_token, "GET", people("RJ1"), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
    assert!(kind.starts_with("application/problem+json"), "{kind}");
    let (status, _, problem) = api(&client, &olu, "GET", people("RQM"), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap_or("")
            .contains("does not administer RQM"),
        "{problem}"
    );
    let (status, _, _) = api(
        &client,
        &olu,
        "POST",
        people("RQM"),
        Some(json!({ "username": "mallory", "display_name": "Mallory", "role": "approver" })),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(!workspace.ok(&["admin", "user", "list"]).contains("mallory"));

    // Adding: a national curator cannot be made in a trust, a weak request says which field;
    // the real add answers with a link from the public URL that the person uses once.
    let (status, _, problem) = api(
        &client,
        &olu,
        "POST",
        people("RJ1"),
        Some(json!({ "username": "x", "display_name": " ", "role": "national-curator" })),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    let detail = problem["detail"].as_str().unwrap_or("");
    for field in ["username:", "display_name:", "role:"] {
        assert!(detail.contains(field), "{field} named in {problem}");
    }
    let (status, _, added) = api(
        &client,
        &olu,
        "POST",
        people("RJ1"),
        Some(json!({ "username": "Nia.New", "display_name": "Nia Newcomer", "email": "nia@example.nhs.uk", "role": "requester" })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{added}");
    assert_eq!(added["person"]["username"], "nia.new", "{added}");
    assert_eq!(added["person"]["roles"], json!(["requester"]), "{added}");
    let link = added["password_link"].as_str().expect("a link").to_owned();
    assert!(
        link.starts_with(&format!("{base}/reset-password/")),
        "{link}"
    );
    let (status, _, again) = api(
        &client,
        &olu,
        "POST",
        people("RJ1"),
        Some(json!({ "username": "nia.new", "display_name": "Someone", "role": "requester" })),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{again}");
    let mut nia = crate::requests::Browser::new(&base);
    let path = link.trim_start_matches(&base).to_owned();
    let (status, done) = nia
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
    let nia_id = added["person"]["id"].as_str().expect("an id").to_owned();
    let nia_url = format!("{}/{nia_id}", people("RJ1"));

    // Roles: granted and revoked here; the last role stays unless a national curator acts.
    let (status, _, granted) = api(
        &client,
        &olu,
        "POST",
        format!("{nia_url}/roles"),
        Some(json!({ "role": "reviewer" })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{granted}");
    assert_eq!(
        granted["roles"],
        json!(["requester", "reviewer"]),
        "{granted}"
    );
    let (status, _, revoked) = api(
        &client,
        &olu,
        "DELETE",
        format!("{nia_url}/roles/requester"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{revoked}");
    assert_eq!(revoked["roles"], json!(["reviewer"]), "{revoked}");
    let (status, _, problem) = api(
        &client,
        &olu,
        "DELETE",
        format!("{nia_url}/roles/reviewer"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap_or("")
            .contains("only role"),
        "{problem}"
    );

    // Nobody locks themselves out: olu cannot disable himself or drop his own admin role.
    let (_, _, me) = api(&client, &olu, "GET", format!("{base}/api/v1/me"), None).await;
    let olu_url = format!("{}/{}", people("RJ1"), me["id"].as_str().expect("olu's id"));
    let (status, _, problem) = api(&client, &olu, "POST", format!("{olu_url}/disable"), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap_or("")
            .contains("your own account"),
        "{problem}"
    );
    workspace.ok(&["admin", "user", "grant", "olu", "--role", "RJ1:approver"]);
    let (status, _, problem) = api(
        &client,
        &olu,
        "DELETE",
        format!("{olu_url}/roles/organisation-admin"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
    // The same rule holds on the administration page.
    let (mut olu_browser, csrf) = crate::administration::signed_in(&base, "olu", PASSWORD).await;
    let (status, page) = olu_browser
        .post(
            &format!(
                "/admin/RJ1/people/{}/roles/revoke",
                me["id"].as_str().unwrap()
            ),
            &[("csrf_token", &csrf), ("role", "organisation-admin")],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{page}");
    let (_, _, still) = api(&client, &olu, "GET", olu_url.clone(), None).await;
    assert!(
        still["roles"].to_string().contains("organisation-admin"),
        "{still}"
    );

    // Disabling ana: her token is refused at once; enabling lets it work again.
    let ana_url = format!("{}/{ana_id}", people("RJ1"));
    let (status, _, disabled) =
        api(&client, &olu, "POST", format!("{ana_url}/disable"), None).await;
    assert_eq!(status, StatusCode::OK, "{disabled}");
    assert_eq!(disabled["disabled"], true, "{disabled}");
    let (status, _, _) = api(
        &client,
        &ana_token,
        "GET",
        format!("{base}/api/v1/me"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, enabled) = api(&client, &olu, "POST", format!("{ana_url}/enable"), None).await;
    assert_eq!(status, StatusCode::OK, "{enabled}");
    let (status, _, _) = api(
        &client,
        &ana_token,
        "GET",
        format!("{base}/api/v1/me"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    // Whole-account actions need every organisation the account is in: with a role in RQM
    // too, ana can no longer be disabled or reset by RJ1's admin, though a curator can.
    workspace.ok(&["admin", "user", "grant", "ana", "--role", "RQM:requester"]);
    for action in ["disable", "password-reset"] {
        let (status, _, problem) =
            api(&client, &olu, "POST", format!("{ana_url}/{action}"), None).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{action}: {problem}");
    }
    let cora = login(&client, &base, "cora").await;
    let (status, _, reset) = api(
        &client,
        &cora,
        "POST",
        format!("{ana_url}/password-reset"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{reset}");
    assert!(
        reset["password_link"]
            .as_str()
            .unwrap_or("")
            .starts_with(&format!("{base}/reset-password/")),
        "{reset}"
    );
    // People of another trust are not found from RJ1, and unknown ids neither.
    let (_, _, theirs) = api(&client, &cora, "GET", people("RQM"), None).await;
    let other_id = find(&theirs, "other")["id"].as_str().unwrap().to_owned();
    for id in [other_id.as_str(), "no-such-person"] {
        let (status, kind, _) = api(
            &client,
            &olu,
            "POST",
            format!("{}/{id}/disable", people("RJ1")),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{id}");
        assert!(kind.starts_with("application/problem+json"), "{kind}");
    }
    // A curator cannot disable themselves or drop their own national curator role either.
    let (_, _, cora_me) = api(&client, &cora, "GET", format!("{base}/api/v1/me"), None).await;
    let cora_url = format!("{}/{}", people("NATIONAL"), cora_me["id"].as_str().unwrap());
    let (status, _, _) = api(&client, &cora, "POST", format!("{cora_url}/disable"), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = api(
        &client,
        &cora,
        "DELETE",
        format!("{cora_url}/roles/national-curator"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Everything is in the audit log under the caller's name, and the chain verifies.
    let audrey = login(&client, &base, "audrey").await;
    let actions = audit_actions(&client, &base, &audrey).await;
    for (actor, action) in [
        ("user:olu", "user.add"),
        ("user:olu", "user.password-reset-issued"),
        ("user:olu", "role.grant"),
        ("user:olu", "role.revoke"),
        ("user:olu", "user.disable"),
        ("user:olu", "user.enable"),
        ("user:cora", "user.password-reset-issued"),
    ] {
        assert!(
            actions
                .iter()
                .any(|(who, done)| who == actor && done == action),
            "{action} by {actor} missing from {actions:?}"
        );
    }
    let verified = workspace.run(&["audit", "verify"]);
    assert!(verified.status.success(), "{}", text(&verified.stdout));
}
