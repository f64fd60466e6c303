//! Accounts of people who sign in through an OpenID provider, on both backends: found only by
//! (issuer, subject), roles from the provider added and removed while roles granted in
//! Formulary stay, disabled accounts left alone, pending sign-ins used once and expiring.

use chrono::{Duration, Utc};
use formulary_core::{Membership, Organisation, Role};
use formulary_store::{ExternalIdentity, ExternalOutcome, NewUser, PendingLogin, LOCAL_PROVIDER};

use crate::store_test;

const ISSUER: &str = "https://am.nhsidentity.example/realms/Healthcare";

fn member(organisation: &str, role: Role) -> Membership {
    Membership::new(organisation.parse().expect("code"), role)
}

fn identity(subject: &str, memberships: Vec<Membership>) -> ExternalIdentity {
    ExternalIdentity {
        issuer: ISSUER.to_owned(),
        subject: subject.to_owned(),
        username_hint: "nia.nurse".to_owned(),
        display_name: "Nia Nurse".to_owned(),
        email: Some("nia.nurse@nhs.net".to_owned()),
        memberships,
    }
}

fn applied(outcome: ExternalOutcome) -> formulary_store::ExternalSignIn {
    match outcome {
        ExternalOutcome::Applied(applied) => applied,
        other => panic!("expected the sign-in to apply, got {other:?}"),
    }
}

store_test!(
    provider_accounts_are_linked_by_subject_and_roles_follow_the_provider,
    |database, _url| {
        for code in ["RJ1", "RRK"] {
            database
                .add_organisation(
                    &Organisation {
                        code: code.parse().expect("code"),
                        name: code.to_owned(),
                    },
                    "cli:test",
                )
                .await
                .expect("organisation");
        }
        // A local account already has the username the provider's person asks for.
        database
            .add_user(
                &NewUser {
                    username: "nia.nurse".to_owned(),
                    display_name: "Someone Else".to_owned(),
                    email: Some("nia.nurse@nhs.net".to_owned()),
                    password_hash: Some("$argon2id$stand-in".to_owned()),
                    identity_provider: LOCAL_PROVIDER.to_owned(),
                    external_subject: None,
                    memberships: vec![member("RJ1", Role::Approver)],
                },
                "cli:test",
            )
            .await
            .expect("local account");

        // No role and no account: nothing is made.
        let nothing = database
            .apply_external_sign_in(&identity("555001", Vec::new()), false, "oidc:cis2")
            .await
            .expect("applied");
        assert!(matches!(nothing, ExternalOutcome::NoAccount));

        let first = applied(
            database
                .apply_external_sign_in(
                    &identity(
                        "555001",
                        vec![
                            member("RJ1", Role::Requester),
                            member("RJ1", Role::Reviewer),
                        ],
                    ),
                    true,
                    "oidc:cis2",
                )
                .await
                .expect("applied"),
        );
        assert!(first.created);
        assert_eq!(
            first.user.username, "nia.nurse-2",
            "never linked to the local account by name or email"
        );
        assert_eq!(first.user.identity_provider, ISSUER);
        assert_eq!(first.granted.len(), 2);

        // A role granted in Formulary stays; the provider's roles follow the provider.
        database
            .grant_role(&first.user.id, &member("RRK", Role::Auditor), "cli:test")
            .await
            .expect("local grant");
        let second = applied(
            database
                .apply_external_sign_in(
                    &identity(
                        "555001",
                        vec![
                            member("RJ1", Role::Requester),
                            member("RRK", Role::Reviewer),
                        ],
                    ),
                    true,
                    "oidc:cis2",
                )
                .await
                .expect("applied"),
        );
        assert!(!second.created);
        assert_eq!(second.user.id, first.user.id, "found again by subject");
        assert_eq!(second.granted, vec![member("RRK", Role::Reviewer)]);
        assert_eq!(second.revoked, vec![member("RJ1", Role::Reviewer)]);
        let mut held = second.user.memberships.clone();
        held.sort_by_key(|membership| format!("{}{}", membership.organisation, membership.role));
        assert_eq!(
            held,
            vec![
                member("RJ1", Role::Requester),
                member("RRK", Role::Auditor),
                member("RRK", Role::Reviewer)
            ]
        );

        // Another subject is another person, even with the same name and email.
        let other = applied(
            database
                .apply_external_sign_in(
                    &identity("555002", vec![member("RJ1", Role::Requester)]),
                    true,
                    "oidc:cis2",
                )
                .await
                .expect("applied"),
        );
        assert_ne!(other.user.id, first.user.id);
        assert_eq!(other.user.username, "nia.nurse-3");

        // A disabled account stays disabled, and its roles are left alone.
        database
            .set_user_disabled(&first.user.id, true, "cli:test")
            .await
            .expect("disabled");
        let refused = database
            .apply_external_sign_in(&identity("555001", Vec::new()), true, "oidc:cis2")
            .await
            .expect("applied");
        match refused {
            ExternalOutcome::Disabled(user) => assert_eq!(user.memberships.len(), 3),
            other => panic!("expected Disabled, got {other:?}"),
        }

        let audit = database.audit_page(0, 1000).await.expect("audit");
        let revoked = audit
            .iter()
            .filter(|row| row.action == "role.revoke" && row.actor == "oidc:cis2")
            .count();
        assert_eq!(revoked, 1);
        assert!(database.verify_audit().await.expect("verify").is_intact());
    }
);

store_test!(
    pending_sign_ins_are_used_once_and_expire,
    |database, _url| {
        let pending = |minutes: i64| PendingLogin {
            provider: "cis2".to_owned(),
            nonce: "n-1".to_owned(),
            pkce_verifier: "v-1".to_owned(),
            next_path: "/requests".to_owned(),
            expires_at: Utc::now() + Duration::minutes(minutes),
        };
        database
            .start_oidc_login("state-live", &pending(10))
            .await
            .expect("stored");
        database
            .start_oidc_login("state-old", &pending(-1))
            .await
            .expect("stored");
        let taken = database
            .take_oidc_login("state-live")
            .await
            .expect("read")
            .expect("there");
        assert_eq!(taken.next_path, "/requests");
        assert_eq!(taken.nonce, "n-1");
        assert!(
            database
                .take_oidc_login("state-live")
                .await
                .expect("read")
                .is_none(),
            "used once"
        );
        assert!(database
            .take_oidc_login("state-tampered")
            .await
            .expect("read")
            .is_none());
        let old = database
            .take_oidc_login("state-old")
            .await
            .expect("read")
            .expect("returned to say it expired");
        assert!(old.expires_at < Utc::now());
    }
);
