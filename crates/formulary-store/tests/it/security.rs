//! Security-relevant storage rules on both backends: request state transitions are
//! compare-and-set in SQL (a sign-off racing a decision never reopens a decided request),
//! account lifecycle (disable ends sessions, owners list and revoke their own tokens), and the
//! sign-in failure counts the throttle reads.

use chrono::{Duration, Utc};
use formulary_core::ecosystems::{Ecosystem, VersionRange};
use formulary_core::request::{DataClass, RequestDraft, RequestState, ReviewStage, SignOffVerdict};
use formulary_core::{Membership, Organisation, Role};
use formulary_store::{DecisionRecord, NewUser, StoreError, UserRef, LOCAL_PROVIDER};

use crate::store_test;

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
        component: formulary_core::Component::new(Ecosystem::Cran, name).expect("name"),
        range: VersionRange::every(Ecosystem::Cran),
        problem: "Clean monthly returns".to_owned(),
        data_class: DataClass::Aggregate,
        environment: "Windows laptop".to_owned(),
        alternatives: String::new(),
        users: 4,
        credentials: String::new(),
    }
}

store_test!(
    a_sign_off_racing_a_decision_never_reopens_the_request,
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
        let rejection = DecisionRecord {
            state: RequestState::Rejected,
            reason: "not needed".to_owned(),
            scope: None,
            entry: None,
            reused_from: None,
        };
        for round in 0..40 {
            let id = database
                .submit_request(
                    &request(&format!("race{round}")),
                    &requester,
                    "user:ana",
                    None,
                )
                .await
                .expect("submit")
                .id;
            let reviewer = {
                let database = database.clone();
                tokio::spawn(async move {
                    let reviewer = UserRef {
                        id: "u-rev".to_owned(),
                        name: "Reviewer".to_owned(),
                    };
                    database
                        .sign_off_request(
                            id,
                            &reviewer,
                            "user:rev",
                            ReviewStage::Basic,
                            SignOffVerdict::Passed,
                            "fine",
                        )
                        .await
                })
            };
            let approver = {
                let (database, rejection) = (database.clone(), rejection.clone());
                tokio::spawn(async move {
                    let approver = UserRef {
                        id: "u-app".to_owned(),
                        name: "Approver".to_owned(),
                    };
                    database
                        .decide_request(id, &approver, "user:app", &rejection)
                        .await
                })
            };
            let signed = reviewer.await.expect("task");
            let decided = approver.await.expect("task");
            assert!(decided.is_ok(), "the decision lands: {decided:?}");
            if let Err(error) = &signed {
                assert!(
                    matches!(error, StoreError::Conflict(_)),
                    "a late sign-off is a conflict: {error}"
                );
            }
            let stored = database.request(id).await.expect("read").expect("exists");
            assert_eq!(
                stored.state,
                RequestState::Rejected,
                "round {round}: a decided request stays decided (sign-off: {signed:?})"
            );
        }
        let late = database
            .sign_off_request(
                1,
                &requester,
                "user:ana",
                ReviewStage::Technical,
                SignOffVerdict::Passed,
                "late",
            )
            .await
            .unwrap_err();
        assert!(matches!(late, StoreError::Conflict(_)), "{late}");
        let missing = database
            .comment_on_request(9999, &requester, "user:ana", "hello")
            .await
            .unwrap_err();
        assert!(matches!(missing, StoreError::NotFound(_)), "{missing}");
        let verification = database.verify_audit().await.expect("verify");
        assert!(verification.is_intact(), "{:?}", verification.problems);
    }
);

store_test!(
    disabling_ends_sessions_and_password_changes_end_the_other_sessions,
    |database, _url| {
        trust(&database).await;
        let ana = database
            .add_user(&new_user("ana", Role::Requester), "cli:test")
            .await
            .expect("add");
        let first = database
            .start_session(&ana, Duration::hours(1), "10.0.0.1")
            .await
            .expect("session");
        let second = database
            .start_session(&ana, Duration::hours(1), "10.0.0.2")
            .await
            .expect("session");
        database
            .set_password_hash(&ana.id, "$argon2id$new", Some(&first.secret), "user:ana")
            .await
            .expect("change");
        assert!(
            database
                .session(&first.secret)
                .await
                .expect("read")
                .is_some(),
            "the session that changed it stays"
        );
        assert!(
            database
                .session(&second.secret)
                .await
                .expect("read")
                .is_none(),
            "every other session ends"
        );

        database
            .set_user_disabled(&ana.id, true, "cli:admin")
            .await
            .expect("disable");
        let again = database
            .set_user_disabled(&ana.id, true, "cli:admin")
            .await
            .unwrap_err();
        assert!(matches!(again, StoreError::Conflict(_)), "{again}");
        assert!(database
            .session(&first.secret)
            .await
            .expect("read")
            .is_none());
        database
            .set_user_disabled(&ana.id, false, "cli:admin")
            .await
            .expect("enable");
        assert!(
            database
                .session(&first.secret)
                .await
                .expect("read")
                .is_none(),
            "sessions of a disabled account stay ended after it is enabled again"
        );
        let (user, hash) = database
            .user_by_username("ana")
            .await
            .expect("read")
            .expect("exists");
        assert!(user.disabled_at.is_none());
        assert_eq!(hash.as_deref(), Some("$argon2id$new"));
        let actions: Vec<String> = database
            .audit_for_subject(&ana.id)
            .await
            .expect("audit")
            .into_iter()
            .map(|record| record.action)
            .collect();
        for action in ["user.password", "user.disable", "user.enable"] {
            assert!(
                actions.iter().any(|done| done == action),
                "{action} in {actions:?}"
            );
        }
    }
);

store_test!(
    people_list_and_revoke_only_their_own_tokens,
    |database, _url| {
        trust(&database).await;
        let ana = database
            .add_user(&new_user("ana", Role::Requester), "cli:test")
            .await
            .expect("add");
        let rob = database
            .add_user(&new_user("rob", Role::Reviewer), "cli:test")
            .await
            .expect("add");
        let laptop = database
            .issue_user_token("laptop", &ana, None)
            .await
            .expect("issue");
        let robs = database
            .issue_user_token("rob's", &rob, None)
            .await
            .expect("issue");
        let service = database
            .issue_token(
                "ci",
                &"RJ1".parse().expect("code"),
                Role::Requester,
                None,
                "cli:test",
            )
            .await
            .expect("issue");
        let listed: Vec<String> = database
            .user_tokens(&ana.id)
            .await
            .expect("list")
            .into_iter()
            .map(|token| token.id)
            .collect();
        assert_eq!(listed, std::slice::from_ref(&laptop.token.id));
        for foreign in [&robs.token.id, &service.token.id, &"t-nothing".to_owned()] {
            let refused = database
                .revoke_user_token(&ana.id, foreign, "user:ana")
                .await
                .unwrap_err();
            assert!(matches!(refused, StoreError::NotFound(_)), "{refused}");
        }
        assert!(database
            .authenticate_token(&robs.secret)
            .await
            .expect("auth")
            .is_some());
        database
            .revoke_user_token(&ana.id, &laptop.token.id, "user:ana")
            .await
            .expect("revoke");
        assert!(database
            .authenticate_token(&laptop.secret)
            .await
            .expect("auth")
            .is_none());
        let verification = database.verify_audit().await.expect("verify");
        assert!(verification.is_intact(), "{:?}", verification.problems);
    }
);

store_test!(
    sign_in_failures_are_tallied_per_account_address_and_pair,
    |database, _url| {
        for (username, client) in [
            ("ana", "10.0.0.1"),
            ("ana", "10.0.0.1"),
            ("ana", "10.0.0.2"),
            ("rob", "10.0.0.1"),
        ] {
            database
                .record_sign_in_failure(username, client)
                .await
                .expect("record");
        }
        let since = Utc::now() - Duration::minutes(15);
        let tally = database
            .sign_in_failures_since(" Ana ", "10.0.0.1", since)
            .await
            .expect("tally");
        assert_eq!(tally.account.count, 3);
        assert_eq!(tally.account_from_client.count, 2);
        assert_eq!(tally.client.count, 3);
        let latest = tally.account.latest.expect("latest");
        assert!(latest <= Utc::now() && latest > since, "{latest}");
    }
);
