//! Channel notices on both backends: a notice round-trips with every field, reads back per
//! organisation oldest first, is withdrawn once (a second withdrawal is a conflict that says
//! when and by whom), and both changes are in the audit log under the notice's id.

use chrono::NaiveDate;
use formulary_core::channel_notice::{ChannelNoticeDraft, NoticeLevel};
use formulary_core::{OrgCode, Organisation};
use formulary_store::StoreError;

use crate::store_test;

store_test!(
    channel_notices_round_trip_and_are_withdrawn_once,
    |database, _url| {
        let rj1: OrgCode = "RJ1".parse().expect("code");
        database
            .add_organisation(
                &Organisation {
                    code: rj1.clone(),
                    name: "Trust".to_owned(),
                },
                "cli:test",
            )
            .await
            .expect("organisation");
        let national = ChannelNoticeDraft {
            organisation: OrgCode::national(),
            channel: None,
            level: NoticeLevel::Critical,
            message: "Mirror maintenance <tonight>: \"installs\" may fail".to_owned(),
            expires: None,
        };
        let local = ChannelNoticeDraft {
            organisation: rj1.clone(),
            channel: Some("conda-forge".to_owned()),
            level: NoticeLevel::Info,
            message: "RJ1 uses conda-forge only".to_owned(),
            expires: Some(NaiveDate::from_ymd_opt(2030, 1, 31).expect("day")),
        };
        let first = database
            .add_channel_notice(&national, "user:cora")
            .await
            .expect("add");
        let second = database
            .add_channel_notice(&local, "user:olu")
            .await
            .expect("add");
        assert!(first.id.starts_with("cn-") && first.id != second.id);
        let both = database
            .channel_notices_of(&[rj1.clone(), OrgCode::national()])
            .await
            .expect("read");
        assert_eq!(
            both,
            [first.clone(), second.clone()],
            "oldest first, as written"
        );
        assert_eq!(
            database
                .channel_notices_of(std::slice::from_ref(&rj1))
                .await
                .expect("read"),
            std::slice::from_ref(&second)
        );

        let withdrawn = database
            .withdraw_channel_notice(&first.id, "user:cora")
            .await
            .expect("withdraw");
        assert_eq!(withdrawn.withdrawn_by.as_deref(), Some("user:cora"));
        assert_eq!(
            database.channel_notice(&first.id).await.expect("read"),
            withdrawn
        );
        let again = database
            .withdraw_channel_notice(&first.id, "user:cora")
            .await
            .expect_err("withdrawn once");
        assert!(
            matches!(&again, StoreError::Conflict(text) if text.contains("already withdrawn") && text.contains("user:cora")),
            "{again}"
        );
        assert!(matches!(
            database.channel_notice("cn-missing").await,
            Err(StoreError::NotFound(_))
        ));

        let audit = database.audit_for_subject(&first.id).await.expect("audit");
        let actions: Vec<(&str, &str)> = audit
            .iter()
            .map(|row| (row.actor.as_str(), row.action.as_str()))
            .collect();
        assert_eq!(
            actions,
            [
                ("user:cora", "channel-notice.add"),
                ("user:cora", "channel-notice.withdraw")
            ]
        );
        assert_eq!(audit[0].details["level"], "critical");
        assert_eq!(audit[0].details["channel"], serde_json::Value::Null);
    }
);
