//! Records on both backends: organisations, settings, entries, advisories, tokens, audit chain,
//! concurrent writers.

use chrono::{Duration, Utc};
use formulary_core::advisory::{Advisory, OsvRecord, RecordFormat};
use formulary_core::ecosystems::{Ecosystem, VersionRange};
use formulary_core::policy::{evaluate_version, View};
use formulary_core::{
    Component, EcosystemSettings, EntryDraft, OrgCode, Organisation, Role, Severity, Stance, Status,
};
use formulary_store::{AdvisoryImport, EntryFilter, ImportOutcome, StoreError};

use crate::store_test;

fn trust() -> Organisation {
    Organisation {
        code: "RJ1".parse().expect("code"),
        name: "Guy's and St Thomas'".to_owned(),
    }
}

fn draft(organisation: &str, name: &str, range: &str, status: Status) -> EntryDraft {
    let component = Component::new(Ecosystem::Pypi, name).expect("name");
    EntryDraft {
        organisation: organisation.parse().expect("code"),
        range: VersionRange::parse(Ecosystem::Pypi, range).expect("range"),
        component,
        status,
        constraints: None,
        review_date: None,
        expires: None,
        waives: Vec::new(),
        decided_by: "National curation board".to_owned(),
        reason: "Widely used; maintained".to_owned(),
        mentor: Some("A. Analyst".to_owned()),
    }
}

fn import(yaml: &str) -> AdvisoryImport {
    let record = OsvRecord::parse(yaml.as_bytes(), RecordFormat::Yaml, "inline").expect("parses");
    let advisory = Advisory::from_record(&record).expect("converts");
    AdvisoryImport { record, advisory }
}

const REQUESTS_ADVISORY: &str = "id: PYSEC-2018-28\nmodified: 2024-01-01T00:00:00Z\naliases: [CVE-2018-18074]\ndetails: leaks credentials\naffected:\n- package: {ecosystem: PyPI, name: requests}\n  ranges:\n  - type: ECOSYSTEM\n    events: [{introduced: '0'}, {fixed: 2.20.0}]\n";

store_test!(
    migrations_create_the_national_organisation,
    |database, _url| {
        let organisations = database.organisations().await.expect("list");
        assert_eq!(organisations.len(), 1);
        assert!(organisations[0].code.is_national());
        database.ping().await.expect("ping");
    }
);

store_test!(organisations_and_settings_round_trip, |database, _url| {
    database
        .add_organisation(&trust(), "cli:test")
        .await
        .expect("add");
    let duplicate = database
        .add_organisation(&trust(), "cli:test")
        .await
        .unwrap_err();
    assert!(
        duplicate.to_string().contains("already exists"),
        "{duplicate}"
    );
    let settings = EcosystemSettings {
        stance: Stance::Curated,
        severity_threshold: Severity::Medium,
        allowed_licences: vec!["MIT".to_owned()],
        cooldown_days: 14,
        install_scripts: formulary_core::InstallScripts::Deny,
    };
    let code: OrgCode = "RJ1".parse().expect("code");
    // An overlay only tightens the national baseline (the defaults here: 7 days' cooldown).
    let looser = EcosystemSettings {
        cooldown_days: 3,
        ..settings.clone()
    };
    let refused = database
        .set_ecosystem_settings(&code, Ecosystem::Pypi, &looser, "cli:test")
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("only tighten"), "{refused}");
    database
        .set_ecosystem_settings(&code, Ecosystem::Pypi, &settings, "cli:test")
        .await
        .expect("set");
    database
        .set_ecosystem_settings(&code, Ecosystem::Pypi, &settings, "cli:test")
        .await
        .expect("set again (upsert)");
    let stored = database.ecosystem_settings().await.expect("list");
    assert_eq!(stored, vec![(code.clone(), Ecosystem::Pypi, settings)]);
    let bad = EcosystemSettings {
        allowed_licences: vec!["NotALicence".to_owned()],
        ..EcosystemSettings::default()
    };
    assert!(database
        .set_ecosystem_settings(&code, Ecosystem::Pypi, &bad, "cli:test")
        .await
        .is_err());
    let unknown: OrgCode = "ZZZ".parse().expect("code");
    let error = database
        .set_ecosystem_settings(
            &unknown,
            Ecosystem::Pypi,
            &EcosystemSettings::default(),
            "cli:test",
        )
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("formulary org add ZZZ"),
        "{error}"
    );
});

store_test!(
    entries_are_added_listed_and_removed_with_history,
    |database, _url| {
        database
            .add_organisation(&trust(), "cli:test")
            .await
            .expect("add org");
        let national = database
            .add_entry(
                &draft("NATIONAL", "requests", ">=2.31,<3", Status::Approved),
                "cli:curator",
            )
            .await
            .expect("add");
        let local = database
            .add_entry(
                &draft("RJ1", "Requests", "<2.31", Status::Prohibited),
                "cli:admin",
            )
            .await
            .expect("add");
        let all = database
            .list_entries(&EntryFilter::default())
            .await
            .expect("list");
        assert_eq!(all.len(), 2);
        let stored = database.entry(&national.id).await.expect("get");
        assert_eq!(
            stored.entry, national,
            "an entry reads back exactly as written"
        );
        assert_eq!(stored.created_by, "cli:curator");
        let only_trust = database
            .list_entries(&EntryFilter {
                organisation: Some("RJ1".parse().expect("code")),
                ..EntryFilter::default()
            })
            .await
            .expect("filter");
        assert_eq!(only_trust.len(), 1);
        assert_eq!(
            only_trust[0].entry.draft.component.name.as_str(),
            "requests"
        );

        let before_removal = Utc::now();
        database
            .remove_entry(&local.id, "cli:admin", "superseded")
            .await
            .expect("remove");
        assert!(
            database
                .remove_entry(&local.id, "cli:admin", "again")
                .await
                .is_err(),
            "removing twice is refused"
        );
        assert!(
            database
                .remove_entry(&national.id, "cli:admin", " ")
                .await
                .is_err(),
            "a removal needs a reason"
        );
        assert_eq!(
            database
                .list_entries(&EntryFilter::default())
                .await
                .expect("list")
                .len(),
            1
        );
        let with_removed = database
            .list_entries(&EntryFilter {
                include_removed: true,
                ..EntryFilter::default()
            })
            .await
            .expect("list");
        assert_eq!(with_removed.len(), 2);

        let history = database
            .audit_for_subject(&local.id)
            .await
            .expect("history");
        let actions: Vec<&str> = history.iter().map(|row| row.action.as_str()).collect();
        assert_eq!(actions, ["entry.add", "entry.remove"]);
        assert_eq!(history[1].actor, "cli:admin");

        // The formulary as it stood before the removal still has the prohibition.
        let then = database
            .policy_snapshot(before_removal)
            .await
            .expect("snapshot then");
        let now = database
            .policy_snapshot(Utc::now())
            .await
            .expect("snapshot now");
        let requests = Component::new(Ecosystem::Pypi, "requests").expect("name");
        assert_eq!(then.entries_for(&requests).len(), 2);
        assert_eq!(now.entries_for(&requests).len(), 1);
    }
);

store_test!(
    invalid_entries_are_refused_and_nothing_is_written,
    |database, _url| {
        let mut pilot = draft("NATIONAL", "requests", "*", Status::Pilot);
        pilot.expires = None;
        let error = database.add_entry(&pilot, "cli:test").await.unwrap_err();
        assert!(matches!(error, StoreError::Invalid(_)), "{error}");
        let unknown_org = draft("ZZZ", "requests", "*", Status::Approved);
        let error = database
            .add_entry(&unknown_org, "cli:test")
            .await
            .unwrap_err();
        assert!(error.to_string().contains("organisation ZZZ"), "{error}");
        assert!(database
            .list_entries(&EntryFilter::default())
            .await
            .expect("list")
            .is_empty());
        assert_eq!(database.verify_audit().await.expect("verify").rows, 0);
    }
);

store_test!(
    advisory_import_is_idempotent_and_follows_modified,
    |database, _url| {
        let first = import(REQUESTS_ADVISORY);
        let outcomes = database
            .import_advisories(std::slice::from_ref(&first), "test", "cli:test", |_| {})
            .await
            .expect("import");
        assert_eq!(outcomes, [ImportOutcome::Inserted]);
        let again = database
            .import_advisories(&[first], "test", "cli:test", |_| {})
            .await
            .expect("import again");
        assert_eq!(again, [ImportOutcome::Unchanged]);
        let newer = import(
            &REQUESTS_ADVISORY
                .replace("2024-01-01", "2025-01-01")
                .replace("2.20.0", "2.21.0"),
        );
        assert_eq!(
            database
                .import_advisories(&[newer], "test", "cli:test", |_| {})
                .await
                .expect("update"),
            [ImportOutcome::Updated]
        );
        let older = import(&REQUESTS_ADVISORY.replace("2024-01-01", "2023-01-01"));
        assert_eq!(
            database
                .import_advisories(&[older], "test", "cli:test", |_| {})
                .await
                .expect("older"),
            [ImportOutcome::Unchanged]
        );

        let in_force = database.advisories_in_force().await.expect("load");
        assert_eq!(in_force.len(), 1);
        assert_eq!(
            in_force[0].fixed_versions(&Component::new(Ecosystem::Pypi, "requests").expect("name")),
            ["2.21.0"]
        );

        let withdrawn = import(&format!(
            "{}withdrawn: 2025-06-01T00:00:00Z\n",
            REQUESTS_ADVISORY.replace("2024-01-01", "2025-06-01")
        ));
        database
            .import_advisories(&[withdrawn], "test", "cli:test", |_| {})
            .await
            .expect("withdraw");
        assert!(
            database
                .advisories_in_force()
                .await
                .expect("load")
                .is_empty(),
            "a withdrawn advisory is out of force"
        );
        assert_eq!(database.advisory_counts().await.expect("counts"), (1, 0));
        let summaries = database
            .advisories_for(&Component::new(Ecosystem::Pypi, "requests").expect("name"))
            .await
            .expect("for");
        assert_eq!(summaries[0].aliases, ["CVE-2018-18074"]);
        assert!(summaries[0].withdrawn.is_some());
    }
);

store_test!(
    the_snapshot_explains_a_block_from_stored_data,
    |database, _url| {
        database
            .import_advisories(&[import(REQUESTS_ADVISORY)], "test", "cli:test", |_| {})
            .await
            .expect("import");
        let snapshot = database
            .policy_snapshot(Utc::now())
            .await
            .expect("snapshot");
        let requests = Component::new(Ecosystem::Pypi, "requests").expect("name");
        let version =
            formulary_core::ecosystems::Version::parse(Ecosystem::Pypi, "2.19.1").expect("version");
        let view = View {
            organisation: OrgCode::national(),
            at: Utc::now(),
        };
        let decision = evaluate_version(&snapshot, &view, &requests, &version, &[]);
        assert!(!decision.allowed);
        assert_eq!(
            decision.reasons[0].advisory.as_deref(),
            Some("PYSEC-2018-28")
        );
    }
);

store_test!(
    tokens_authenticate_until_revoked_or_expired,
    |database, _url| {
        let national = OrgCode::national();
        let issued = database
            .issue_token("ci", &national, Role::NationalCurator, None, "cli:test")
            .await
            .expect("issue");
        assert!(issued.secret.starts_with("frm_"));
        let found = database
            .authenticate_token(&issued.secret)
            .await
            .expect("auth")
            .expect("valid");
        assert_eq!(found.role, Role::NationalCurator);
        assert!(database
            .authenticate_token("frm_wrong")
            .await
            .expect("auth")
            .is_none());
        assert!(database
            .authenticate_token("not-a-token")
            .await
            .expect("auth")
            .is_none());
        database
            .revoke_token(&issued.token.id, "cli:test")
            .await
            .expect("revoke");
        assert!(
            database
                .authenticate_token(&issued.secret)
                .await
                .expect("auth")
                .is_none(),
            "revoked"
        );
        let expired = database
            .issue_token(
                "old",
                &national,
                Role::Auditor,
                Some(Utc::now() - Duration::seconds(1)),
                "cli:test",
            )
            .await
            .expect("issue");
        assert!(
            database
                .authenticate_token(&expired.secret)
                .await
                .expect("auth")
                .is_none(),
            "expired"
        );
        let audit = database.audit_page(0, 100).await.expect("audit");
        assert!(
            audit
                .iter()
                .all(|row| !row.details.to_string().contains(&issued.secret)),
            "no secret reaches the audit log"
        );
    }
);

store_test!(
    the_audit_chain_detects_edits_and_deletions,
    |database, url| {
        for name in ["requests", "numpy", "pandas"] {
            database
                .add_entry(&draft("NATIONAL", name, "*", Status::Approved), "cli:test")
                .await
                .expect("add");
        }
        let verification = database.verify_audit().await.expect("verify");
        assert!(verification.is_intact(), "{:?}", verification.problems);
        assert_eq!(verification.rows, 3);
        tamper(
            &url,
            "UPDATE audit_log SET actor = 'someone-else' WHERE seq = 2",
        )
        .await;
        let edited = database.verify_audit().await.expect("verify");
        assert_eq!(edited.problems.len(), 1, "{:?}", edited.problems);
        assert!(
            edited.problems[0].contains("row 2"),
            "{:?}",
            edited.problems
        );
        tamper(&url, "DELETE FROM audit_log WHERE seq = 2").await;
        let deleted = database.verify_audit().await.expect("verify");
        assert!(
            deleted
                .problems
                .iter()
                .any(|problem| problem.contains("missing")),
            "{:?}",
            deleted.problems
        );
    }
);

/// Edits the database behind Formulary's back, as an intruder with database access would.
async fn tamper(url: &str, sql: &str) {
    let mut connection = <sqlx::AnyConnection as sqlx::Connection>::connect(url)
        .await
        .expect("connect");
    sqlx::Executor::execute(&mut connection, sql)
        .await
        .expect("tamper");
}

store_test!(
    concurrent_writers_keep_every_change_and_the_chain,
    |database, _url| {
        let mut tasks = Vec::new();
        for index in 0..16 {
            let database = database.clone();
            tasks.push(tokio::spawn(async move {
                database
                    .add_entry(
                        &draft(
                            "NATIONAL",
                            &format!("package-{index}"),
                            "*",
                            Status::Approved,
                        ),
                        &format!("cli:writer-{index}"),
                    )
                    .await
            }));
        }
        for task in tasks {
            task.await
                .expect("task")
                .expect("every concurrent write lands");
        }
        assert_eq!(
            database
                .list_entries(&EntryFilter::default())
                .await
                .expect("list")
                .len(),
            16
        );
        let verification = database.verify_audit().await.expect("verify");
        assert_eq!(verification.rows, 16);
        assert!(verification.is_intact(), "{:?}", verification.problems);
    }
);
