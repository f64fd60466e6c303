//! Sessions signed in through an identity provider, on both backends: signing out hands back
//! the provider and its ID token once (for single logout), a local session hands back nothing,
//! a session already ended by disabling the account hands back nothing, and "last sign-in" is
//! the newest session of each person of an organisation.

use chrono::Duration;
use formulary_core::{Membership, Organisation, Role};
use formulary_store::{NewUser, ProviderSession, LOCAL_PROVIDER};

use crate::store_test;

store_test!(
    sign_out_hands_back_the_provider_session_once_and_last_sign_ins_follow_sessions,
    |database, _url| {
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
        let add = |username: &str| NewUser {
            username: username.to_owned(),
            display_name: username.to_owned(),
            email: None,
            password_hash: None,
            identity_provider: LOCAL_PROVIDER.to_owned(),
            external_subject: None,
            memberships: vec![Membership::new(
                "RJ1".parse().expect("code"),
                Role::Requester,
            )],
        };
        let kim = database
            .add_user(&add("kim"), "cli:test")
            .await
            .expect("kim");
        let rob = database
            .add_user(&add("rob"), "cli:test")
            .await
            .expect("rob");
        let rj1 = "RJ1".parse().expect("code");
        assert!(database.last_sign_ins(&rj1).await.expect("last").is_empty());
        assert_eq!(database.last_sign_in(&kim.id).await.expect("last"), None);

        let provider = ProviderSession {
            provider: "cis2".to_owned(),
            id_token: "header.claims.signature".to_owned(),
        };
        let through = database
            .start_session_through(&kim, Duration::hours(1), "127.0.0.1", Some(&provider))
            .await
            .expect("session");
        let local = database
            .start_session(&kim, Duration::hours(1), "127.0.0.1")
            .await
            .expect("session");
        assert_eq!(
            database
                .end_session_for_logout(&through.secret)
                .await
                .expect("ended"),
            Some(provider.clone())
        );
        assert_eq!(
            database
                .end_session_for_logout(&through.secret)
                .await
                .expect("ended"),
            None,
            "an ended session hands back nothing, so its ID token is used once"
        );
        assert!(database
            .session(&through.secret)
            .await
            .expect("read")
            .is_none());
        assert_eq!(
            database
                .end_session_for_logout(&local.secret)
                .await
                .expect("ended"),
            None,
            "a local session has no provider"
        );

        // Disabling the account ends its sessions: nothing is left to hand back.
        let again = database
            .start_session_through(&kim, Duration::hours(1), "127.0.0.1", Some(&provider))
            .await
            .expect("session");
        database
            .set_user_disabled(&kim.id, true, "user:olu")
            .await
            .expect("disabled");
        assert_eq!(
            database
                .end_session_for_logout(&again.secret)
                .await
                .expect("ended"),
            None
        );

        let last = database.last_sign_ins(&rj1).await.expect("last");
        assert!(
            last.contains_key(&kim.id) && !last.contains_key(&rob.id),
            "{last:?}"
        );
        assert_eq!(
            database.last_sign_in(&kim.id).await.expect("last"),
            last.get(&kim.id).copied()
        );
        assert_eq!(database.last_sign_in(&rob.id).await.expect("last"), None);
        let verified = database.verify_audit().await.expect("verify");
        assert!(verified.is_intact(), "{verified:?}");
    }
);
