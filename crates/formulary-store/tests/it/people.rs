//! Accounts, sessions and requests on both backends, including concurrent reviewers racing for
//! the same stage and concurrent requesters racing for request numbers.

use chrono::{Duration, Utc};
use formulary_core::ecosystems::{Ecosystem, VersionRange};
use formulary_core::request::{DataClass, RequestDraft, RequestState, ReviewStage, SignOffVerdict};
use formulary_core::{Component, EntryDraft, Membership, OrgCode, Organisation, Role, Status};
use formulary_store::{DecisionRecord, EventKind, NewUser, StoreError, UserRef, LOCAL_PROVIDER};

use crate::store_test;

fn new_user(username: &str, role: Role) -> NewUser {
    NewUser {
        username: username.to_owned(),
        display_name: format!("{username} (test)"),
        email: None,
        password_hash: Some("$argon2id$stand-in".to_owned()),
        identity_provider: LOCAL_PROVIDER.to_owned(),
        external_subject: None,
        memberships: vec![Membership::new("RJ1".parse().expect("code"), role)],
    }
}

fn request(name: &str) -> RequestDraft {
    RequestDraft {
        organisation: "RJ1".parse().expect("code"),
        component: Component::new(Ecosystem::Cran, name).expect("name"),
        range: VersionRange::every(Ecosystem::Cran),
        problem: "Clean monthly returns".to_owned(),
        data_class: DataClass::Aggregate,
        environment: "Windows laptop".to_owned(),
        alternatives: String::new(),
        users: 4,
        credentials: String::new(),
    }
}

async fn trust(database: &formulary_store::Database) {
    database
        .add_organisation(
            &Organisation {
                code: "RJ1".parse().expect("code"),
                name: "Trust".to_owned(),
            },
            "cli:test",
        )
        .await
        .expect("organisation");
}

store_test!(accounts_roles_and_sessions_round_trip, |database, _url| {
    trust(&database).await;
    let ana = database
        .add_user(&new_user("Ana", Role::Requester), "cli:test")
        .await
        .expect("add");
    assert_eq!(ana.username, "ana", "usernames are kept in lower case");
    assert_eq!(
        ana.memberships,
        [Membership::new(
            "RJ1".parse().expect("code"),
            Role::Requester
        )]
    );
    let taken = database
        .add_user(&new_user("ANA", Role::Reviewer), "cli:test")
        .await
        .unwrap_err();
    assert!(matches!(taken, StoreError::Conflict(_)), "{taken}");
    let hostile = database
        .add_user(
            &new_user("ana'; DROP TABLE users;--", Role::Reviewer),
            "cli:test",
        )
        .await
        .unwrap_err();
    assert!(
        hostile.to_string().contains("2 to 64 characters"),
        "{hostile}"
    );
    database
        .grant_role(
            &ana.id,
            &Membership::new(OrgCode::national(), Role::Auditor),
            "cli:test",
        )
        .await
        .expect("grant");
    let (found, hash) = database
        .user_by_username(" ANA ")
        .await
        .expect("lookup")
        .expect("found");
    assert_eq!(found.memberships.len(), 2);
    assert_eq!(hash.as_deref(), Some("$argon2id$stand-in"));
    database
        .revoke_role(
            &ana.id,
            &Membership::new(OrgCode::national(), Role::Auditor),
            "cli:test",
        )
        .await
        .expect("revoke");
    assert!(database
        .revoke_role(
            &ana.id,
            &Membership::new(OrgCode::national(), Role::Auditor),
            "cli:test"
        )
        .await
        .is_err());

    let started = database
        .start_session(&ana, Duration::hours(1), "127.0.0.1")
        .await
        .expect("session");
    let session = database
        .session(&started.secret)
        .await
        .expect("lookup")
        .expect("live");
    assert_eq!(session.user.id, ana.id);
    assert_eq!(session.csrf_token, started.csrf_token);
    assert!(database
        .session(&"0".repeat(64))
        .await
        .expect("lookup")
        .is_none());
    assert!(database.session("not hex").await.expect("lookup").is_none());
    database.end_session(&started.secret).await.expect("end");
    assert!(
        database
            .session(&started.secret)
            .await
            .expect("lookup")
            .is_none(),
        "ended sessions stay ended"
    );
    let expired = database
        .start_session(&ana, Duration::seconds(-1), "127.0.0.1")
        .await
        .expect("session");
    assert!(database
        .session(&expired.secret)
        .await
        .expect("lookup")
        .is_none());

    for _ in 0..3 {
        database
            .record_sign_in_failure("ana", "10.0.0.9")
            .await
            .expect("failure");
    }
    database
        .record_sign_in_failure("rob", "10.0.0.9")
        .await
        .expect("failure");
    let since = Utc::now() - Duration::minutes(15);
    let tally = database
        .sign_in_failures_since("ANA", "10.0.0.9", since)
        .await
        .expect("count");
    assert_eq!(
        (
            tally.account.count,
            tally.account_from_client.count,
            tally.client.count
        ),
        (3, 3, 4)
    );
    let later = database
        .sign_in_failures_since("ana", "10.0.0.1", Utc::now() + Duration::minutes(1))
        .await
        .expect("count");
    assert_eq!(later, formulary_store::SignInFailures::default());
    let verification = database.verify_audit().await.expect("verify");
    assert!(verification.is_intact(), "{:?}", verification.problems);
});

store_test!(
    requests_move_through_review_to_a_decision_under_races,
    |database, _url| {
        trust(&database).await;
        let ana = database
            .add_user(&new_user("ana", Role::Requester), "cli:test")
            .await
            .expect("add");
        let requester = UserRef {
            id: ana.id.clone(),
            name: ana.display_name.clone(),
        };
        let mut submissions = Vec::new();
        for index in 0..8 {
            let (database, requester) = (database.clone(), requester.clone());
            submissions.push(tokio::spawn(async move {
                database
                    .submit_request(
                        &request(&format!("pkg{index}")),
                        &requester,
                        "user:ana",
                        None,
                    )
                    .await
            }));
        }
        let mut ids = Vec::new();
        for submission in submissions {
            ids.push(
                submission
                    .await
                    .expect("task")
                    .expect("every submission lands")
                    .id,
            );
        }
        ids.sort_unstable();
        assert_eq!(
            ids,
            (1..=8).collect::<Vec<i64>>(),
            "numbers are unique and without gaps"
        );

        let id = ids[0];
        let mut racers = Vec::new();
        for index in 0..6 {
            let database = database.clone();
            racers.push(tokio::spawn(async move {
                let reviewer = UserRef {
                    id: format!("u-rev-{index}"),
                    name: format!("Reviewer {index}"),
                };
                database
                    .sign_off_request(
                        id,
                        &reviewer,
                        "user:rev",
                        ReviewStage::Basic,
                        SignOffVerdict::Passed,
                        "docs fine",
                    )
                    .await
            }));
        }
        let mut landed = 0;
        for racer in racers {
            match racer.await.expect("task") {
                Ok(()) => landed += 1,
                Err(StoreError::Conflict(message)) => {
                    assert!(message.contains("already been signed off"), "{message}")
                }
                Err(other) => panic!("unexpected: {other}"),
            }
        }
        assert_eq!(landed, 1, "a stage is signed off exactly once");
        database
            .comment_on_request(id, &requester, "user:ana", "<b>thanks</b>")
            .await
            .expect("comment");

        let approver = UserRef {
            id: "u-app".to_owned(),
            name: "Approver".to_owned(),
        };
        let entry = EntryDraft {
            organisation: "RJ1".parse().expect("code"),
            component: Component::new(Ecosystem::Cran, "pkg0").expect("name"),
            range: VersionRange::every(Ecosystem::Cran),
            status: Status::Approved,
            constraints: None,
            review_date: None,
            expires: None,
            waives: Vec::new(),
            decided_by: "Approver".to_owned(),
            reason: "fine (request 1)".to_owned(),
            mentor: None,
        };
        let decision = DecisionRecord {
            state: RequestState::Approved,
            reason: "fine".to_owned(),
            scope: Some("organisation".to_owned()),
            entry: Some(entry),
            reused_from: None,
        };
        let written = database
            .decide_request(id, &approver, "user:app", &decision)
            .await
            .expect("decide")
            .expect("entry");
        let again = database
            .decide_request(id, &approver, "user:app", &decision)
            .await
            .unwrap_err();
        assert!(matches!(again, StoreError::Conflict(_)), "{again}");
        let stored = database.request(id).await.expect("read").expect("exists");
        assert_eq!(stored.state, RequestState::Approved);
        let recorded = stored.decision.expect("decision");
        assert_eq!(recorded.entry_id.as_deref(), Some(written.id.as_str()));
        assert!(!recorded.reused);
        assert_eq!(
            database
                .entry(&written.id)
                .await
                .expect("entry")
                .entry
                .draft
                .status,
            Status::Approved
        );
        let kinds: Vec<EventKind> = database
            .request_events(id)
            .await
            .expect("events")
            .iter()
            .map(|event| event.kind)
            .collect();
        assert_eq!(
            kinds,
            [
                EventKind::Submitted,
                EventKind::SignOff,
                EventKind::Comment,
                EventKind::Decision
            ]
        );
        assert!(database
            .withdraw_request(id, &requester, "user:ana", "")
            .await
            .is_err());
        database
            .withdraw_request(ids[1], &requester, "user:ana", "no longer needed")
            .await
            .expect("withdraw");

        let found = database
            .search_components("KG1", None, 10)
            .await
            .expect("search");
        assert_eq!(
            found.first().map(Component::purl).as_deref(),
            Some("pkg:cran/pkg1"),
            "{found:?}"
        );
        assert!(
            database
                .search_components("100%", None, 10)
                .await
                .expect("search")
                .is_empty(),
            "wildcards match literally"
        );
        let verification = database.verify_audit().await.expect("verify");
        assert!(verification.is_intact(), "{:?}", verification.problems);
    }
);

store_test!(token_scopes_are_kept_and_audited, |database, _url| {
    trust(&database).await;
    let ana = database
        .add_user(&new_user("ana", Role::Requester), "cli:test")
        .await
        .expect("add");
    let api = database
        .issue_user_token("laptop", &ana, None)
        .await
        .expect("api token");
    let gateway = database
        .issue_user_token_with_scope(
            "pip on laptop",
            &ana,
            formulary_store::TokenScope::Gateway,
            Some(Utc::now() + Duration::days(90)),
        )
        .await
        .expect("gateway token");
    let service = database
        .issue_gateway_service_token(
            "build server",
            &"RJ1".parse().expect("code"),
            None,
            "cli:test",
        )
        .await
        .expect("service token");
    for (issued, scope) in [
        (&api, formulary_store::TokenScope::Api),
        (&gateway, formulary_store::TokenScope::Gateway),
        (&service, formulary_store::TokenScope::Gateway),
    ] {
        let found = database
            .authenticate_token(&issued.secret)
            .await
            .expect("lookup")
            .expect("valid");
        assert_eq!(found.scope, scope, "{}", found.name);
    }
    let listed = database.user_tokens(&ana.id).await.expect("list");
    assert_eq!(listed.len(), 2);
    assert!(listed
        .iter()
        .any(|token| token.scope == formulary_store::TokenScope::Gateway));
    let audit = database
        .audit_for_subject(&gateway.token.id)
        .await
        .expect("audit");
    assert!(audit
        .iter()
        .any(|record| record.action == "token.issue" && record.details["scope"] == "gateway"));
});
