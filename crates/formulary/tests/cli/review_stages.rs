//! Review that means something (issue 12, item 6) over HTTP against the real binary: an
//! organisation's review policy (set in the browser, read by the API) asks for a different
//! reviewer per stage and the information governance role for that stage; a stage claimed or
//! assigned is signed off by its assignee only; the queue shows outstanding stages and "Ready to
//! decide". Run on SQLite and PostgreSQL.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::administration::{audit_actions, signed_in};
use crate::requests::{call, login, request_body, setup, PASSWORD};

crate::on_both_databases!(async fn review_stages_need_distinct_reviewers_named_roles_and_respect_claims);
async fn review_stages_need_distinct_reviewers_named_roles_and_respect_claims() {
    let (workspace, _server, base) = setup();
    workspace.add_user("rita", "rita", &["RJ1:reviewer"], PASSWORD);
    workspace.add_user("ray", "ray", &["RJ1:reviewer"], PASSWORD);
    workspace.add_user("ivy", "ivy", &["RJ1:information-governance"], PASSWORD);
    let client = reqwest::Client::new();
    let mut tokens = std::collections::HashMap::new();
    for name in ["ana", "rob", "rita", "ray", "ivy", "aisha"] {
        tokens.insert(name, login(&client, &base, name).await);
    }
    let (mut olu, csrf) = signed_in(&base, "olu", PASSWORD).await;
    let (status, _) = olu
        .post(
            "/admin/RJ1/review",
            &[
                ("csrf_token", &csrf),
                ("distinct_reviewers", "yes"),
                ("information_governance_role", "yes"),
            ],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, page) = olu.get("/admin/RJ1/review").await;
    assert!(
        page.contains("each stage is signed off by a different person"),
        "{page}"
    );

    // The API reads the same policy; RJ1's admin cannot change RQM's.
    let (status, policy) = call(
        &client,
        &tokens["rob"],
        "GET",
        format!("{base}/api/v1/organisations/RJ1/review-policy"),
        Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{policy}");
    assert_eq!(policy["distinct_reviewers"], true, "{policy}");
    let olu_token = login(&client, &base, "olu").await;
    let response = client
        .put(format!("{base}/api/v1/organisations/RQM/review-policy"))
        .bearer_auth(&olu_token)
        .json(&json!({ "distinct_reviewers": false }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);

    let mut body = request_body("tomli");
    body["data_class"] = json!("personal");
    let (status, created) = call(
        &client,
        &tokens["ana"],
        "POST",
        format!("{base}/api/v1/requests"),
        body,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_i64().unwrap();
    let sign = |who: &'static str, stage: &'static str| {
        let (client, token, url) = (
            client.clone(),
            tokens[who].clone(),
            format!("{base}/api/v1/requests/{id}/sign-offs"),
        );
        async move {
            call(
                &client,
                &token,
                "POST",
                url,
                json!({ "stage": stage, "verdict": "passed", "note": "checked" }),
            )
            .await
        }
    };

    // The information governance role holder hears of a request with personal data.
    let (status, told) = call(
        &client,
        &tokens["ivy"],
        "GET",
        format!("{base}/api/v1/me/notifications"),
        Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{told}");
    assert!(
        told.to_string().contains("review.waiting"),
        "ivy should be told: {told}"
    );

    // One reviewer cannot sign off two stages; the IG stage needs the IG role.
    assert_eq!(sign("rob", "basic").await.0, StatusCode::OK);
    let (status, answer) = sign("rob", "technical").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    assert!(
        answer["detail"]
            .as_str()
            .unwrap()
            .contains("different reviewer"),
        "{answer}"
    );
    let (status, answer) = sign("rita", "information-governance").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    assert!(
        answer["detail"]
            .as_str()
            .unwrap()
            .contains("information governance role"),
        "{answer}"
    );
    assert_eq!(
        sign("ivy", "information-governance").await.0,
        StatusCode::OK
    );
    let (status, _) = sign("ivy", "technical").await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "the IG role alone does not make a reviewer"
    );
    assert_eq!(sign("rita", "technical").await.0, StatusCode::OK);

    // The queue shows what is outstanding, and who has claimed it.
    let (mut rita, rita_csrf) = signed_in(&base, "rita", PASSWORD).await;
    let (status, _) = rita
        .post(
            &format!("/requests/{id}/assignments"),
            &[("csrf_token", &rita_csrf), ("claim_stage", "security")],
            None,
        )
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "rita signed off technical, so she cannot claim security"
    );
    let (mut ray, ray_csrf) = signed_in(&base, "ray", PASSWORD).await;
    let (status, _) = ray
        .post(
            &format!("/requests/{id}/assignments"),
            &[("claim_stage", "security")],
            None,
        )
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "a claim needs the CSRF token"
    );
    let (status, _) = ray
        .post(
            &format!("/requests/{id}/assignments"),
            &[("csrf_token", &ray_csrf), ("claim_stage", "security")],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (mut aisha, aisha_csrf) = signed_in(&base, "aisha", PASSWORD).await;
    let (_, queue) = aisha.get("/requests").await;
    assert!(
        queue.contains("Security review (ray)") && !queue.contains("Ready to decide"),
        "{queue}"
    );
    let (status, listed) = call(
        &client,
        &tokens["aisha"],
        "GET",
        format!("{base}/api/v1/requests?scope=queue"),
        Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    let review = &listed[0]["review"];
    assert_eq!(review["ready_to_decide"], false, "{listed}");
    assert!(
        review["outstanding"]
            .as_array()
            .unwrap()
            .iter()
            .any(|stage| stage["stage"] == "security" && stage["assigned_to"] == "ray"),
        "{listed}"
    );

    // A claimed stage is signed off by its claimant; an approver may reassign it.
    workspace.add_user("sol", "sol", &["RJ1:reviewer"], PASSWORD);
    let sol = login(&client, &base, "sol").await;
    let url = format!("{base}/api/v1/requests/{id}/sign-offs");
    let stage = json!({ "stage": "security", "verdict": "passed", "note": "checked" });
    let (status, answer) = call(&client, &sol, "POST", url.clone(), stage.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    assert!(
        answer["detail"]
            .as_str()
            .unwrap()
            .contains("assigned to ray"),
        "{answer}"
    );
    let (status, _) = rita
        .post(
            &format!("/requests/{id}/assignments"),
            &[
                ("csrf_token", &rita_csrf),
                ("assign_stage", "security"),
                ("assignee", "sol"),
            ],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a reviewer cannot assign");
    let (status, _) = aisha
        .post(
            &format!("/requests/{id}/assignments"),
            &[
                ("csrf_token", &aisha_csrf),
                ("assign_stage", "security"),
                ("assignee", "ana"),
            ],
            None,
        )
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "the requester cannot be assigned"
    );
    let (status, _) = aisha
        .post(
            &format!("/requests/{id}/assignments"),
            &[
                ("csrf_token", &aisha_csrf),
                ("assign_stage", "security"),
                ("assignee", "sol"),
            ],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(
        call(&client, &sol, "POST", url, stage).await.0,
        StatusCode::OK
    );
    let (_, queue) = aisha.get("/requests").await;
    assert!(queue.contains("Ready to decide"), "{queue}");
    let (_, listed) = call(
        &client,
        &tokens["aisha"],
        "GET",
        format!("{base}/api/v1/requests?scope=queue"),
        Value::Null,
    )
    .await;
    assert_eq!(listed[0]["review"]["ready_to_decide"], true, "{listed}");
    let (_, page) = aisha.get(&format!("/requests/{id}")).await;
    assert!(page.contains("id=\"ready\""), "{page}");
    let (status, decided) = call(
        &client,
        &tokens["aisha"],
        "POST",
        format!("{base}/api/v1/requests/{id}/decision"),
        json!({ "outcome": "approved", "reason": "Reviewed by four people" }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{decided}");
    let audrey = login(&client, &base, "audrey").await;
    let actions = audit_actions(&client, &base, &audrey).await;
    assert!(
        actions
            .iter()
            .any(|(actor, action)| actor == "user:olu" && action == "review-policy.set"),
        "{actions:?}"
    );
    assert!(
        actions
            .iter()
            .any(|(actor, action)| actor == "user:aisha" && action == "request.assign"),
        "{actions:?}"
    );
    let _ = &mut ray;
}
