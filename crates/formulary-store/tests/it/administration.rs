//! Password reset links and review policies on both backends: a link works once, before it
//! expires, not for a disabled account, and a newer link retires an older one; using it ends
//! every session; review policies and stage assignments round-trip and are audited.

use chrono::Duration;
use formulary_core::ecosystems::{Ecosystem, VersionRange};
use formulary_core::request::{DataClass, RequestDraft, ReviewPolicy, ReviewStage};
use formulary_core::{Component, Membership, Organisation, Role};
use formulary_store::{NewUser, UserRef, LOCAL_PROVIDER};

use crate::store_test;

async fn trust_with(database: &formulary_store::Database, username: &str) -> formulary_store::User {
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
    database
        .add_user(
            &NewUser {
                username: username.to_owned(),
                display_name: format!("{username} (test)"),
                email: None,
                password_hash: Some("$argon2id$old".to_owned()),
                identity_provider: LOCAL_PROVIDER.to_owned(),
                external_subject: None,
                memberships: vec![Membership::new(
                    "RJ1".parse().expect("code"),
                    Role::Reviewer,
                )],
            },
            "cli:test",
        )
        .await
        .expect("user")
}

store_test!(
    reset_links_work_once_before_expiry_and_end_sessions,
    |database, _url| {
        let user = trust_with(&database, "nina").await;
        let session = database
            .start_session(&user, Duration::hours(1), "127.0.0.1")
            .await
            .expect("session");
        let older = database
            .issue_password_reset(&user.id, Duration::days(7), "user:olu")
            .await
            .expect("link");
        let newer = database
            .issue_password_reset(&user.id, Duration::days(7), "user:olu")
            .await
            .expect("link");
        assert!(
            database
                .password_reset_user(&older.secret)
                .await
                .expect("read")
                .is_none(),
            "a newer link retires the older one"
        );
        assert!(database
            .password_reset_user("not-a-link")
            .await
            .expect("read")
            .is_none());
        let used = database
            .complete_password_reset(&newer.secret, "$argon2id$new")
            .await
            .expect("reset");
        assert_eq!(used.map(|user| user.id), Some(user.id.clone()));
        assert!(
            database
                .session(&session.secret)
                .await
                .expect("read")
                .is_none(),
            "using the link ends every session"
        );
        let (_, hash) = database
            .user_by_username("nina")
            .await
            .expect("read")
            .expect("user");
        assert_eq!(hash.as_deref(), Some("$argon2id$new"));
        assert!(
            database
                .complete_password_reset(&newer.secret, "$argon2id$again")
                .await
                .expect("second use")
                .is_none(),
            "a link works once"
        );
        let expired = database
            .issue_password_reset(&user.id, Duration::seconds(-1), "user:olu")
            .await
            .expect("link");
        assert!(database
            .password_reset_user(&expired.secret)
            .await
            .expect("read")
            .is_none());
        let fresh = database
            .issue_password_reset(&user.id, Duration::days(1), "user:olu")
            .await
            .expect("link");
        database
            .set_user_disabled(&user.id, true, "user:olu")
            .await
            .expect("disable");
        assert!(
            database
                .password_reset_user(&fresh.secret)
                .await
                .expect("read")
                .is_none(),
            "a disabled account's link does not work"
        );
        assert!(database
            .issue_password_reset(&user.id, Duration::days(1), "user:olu")
            .await
            .is_err());
        let actions: Vec<String> = database
            .audit_for_subject(&user.id)
            .await
            .expect("audit")
            .into_iter()
            .map(|record| record.action)
            .collect();
        assert!(
            actions.contains(&"user.password-reset-issued".to_owned()),
            "{actions:?}"
        );
        assert!(actions.contains(&"user.password".to_owned()), "{actions:?}");
    }
);

store_test!(
    review_policies_and_assignments_round_trip,
    |database, _url| {
        let user = trust_with(&database, "rita").await;
        let code = "RJ1".parse().expect("code");
        assert_eq!(
            database.review_policy(&code).await.expect("read"),
            ReviewPolicy::default()
        );
        let strict = ReviewPolicy {
            distinct_reviewers: true,
            information_governance_role: true,
            clinical_safety_role: false,
            clinical_safety_for_clinical_data: true,
        };
        database
            .set_review_policy(&code, &strict, "user:olu")
            .await
            .expect("set");
        assert_eq!(database.review_policy(&code).await.expect("read"), strict);
        let draft = RequestDraft {
            organisation: code.clone(),
            component: Component::new(Ecosystem::Cran, "readxl").expect("name"),
            range: VersionRange::every(Ecosystem::Cran),
            problem: "Read returns".to_owned(),
            data_class: DataClass::Aggregate,
            environment: "Laptop".to_owned(),
            alternatives: String::new(),
            users: 2,
            credentials: String::new(),
        };
        let requester = UserRef {
            id: user.id.clone(),
            name: user.display_name.clone(),
        };
        let request = database
            .submit_request(&draft, &requester, &user.actor(), None)
            .await
            .expect("request");
        database
            .assign_review_stage(request.id, ReviewStage::Security, &user.id, "user:aisha")
            .await
            .expect("assign");
        database
            .assign_review_stage(request.id, ReviewStage::Security, &user.id, "user:aisha")
            .await
            .expect("reassigning replaces");
        let assignments = database.review_assignments(request.id).await.expect("read");
        assert_eq!(assignments.len(), 1);
        assert_eq!(assignments[0].stage, ReviewStage::Security);
        assert_eq!(assignments[0].user_name, "rita (test)");
    }
);

store_test!(
    an_organisations_people_come_with_all_their_roles,
    |database, _url| {
        let rita = trust_with(&database, "rita").await;
        database
            .add_organisation(
                &Organisation {
                    code: "RQM".parse().expect("code"),
                    name: "Other".to_owned(),
                },
                "cli:test",
            )
            .await
            .expect("organisation");
        database
            .grant_role(
                &rita.id,
                &Membership::new("RQM".parse().expect("code"), Role::Approver),
                "cli:test",
            )
            .await
            .expect("grant");
        let outsider = database
            .add_user(
                &NewUser {
                    username: "omar".to_owned(),
                    display_name: "Omar".to_owned(),
                    email: None,
                    password_hash: None,
                    identity_provider: LOCAL_PROVIDER.to_owned(),
                    external_subject: None,
                    memberships: vec![Membership::new(
                        "RQM".parse().expect("code"),
                        Role::Requester,
                    )],
                },
                "cli:test",
            )
            .await
            .expect("user");
        let people = database
            .users_in_organisation(&"RJ1".parse().expect("code"))
            .await
            .expect("people");
        assert_eq!(people.len(), 1, "{people:?}");
        assert_eq!(people[0].id, rita.id);
        assert_eq!(
            people[0].memberships.len(),
            2,
            "every role of the person, elsewhere too: {people:?}"
        );
        let others = database
            .users_in_organisation(&"RQM".parse().expect("code"))
            .await
            .expect("people");
        let ids: Vec<&str> = others.iter().map(|user| user.id.as_str()).collect();
        assert!(
            ids.contains(&outsider.id.as_str()) && ids.contains(&rita.id.as_str()),
            "{ids:?}"
        );
    }
);
