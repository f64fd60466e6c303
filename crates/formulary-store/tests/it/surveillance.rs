//! Leases and advisory feeds, on SQLite and PostgreSQL.

use chrono::{Duration, Utc};
use formulary_core::policy::{FeedPolicy, OnStaleFeed};
use formulary_store::FeedSuccess;

use crate::store_test;

store_test!(
    one_replica_holds_the_sync_lease_until_it_expires,
    |database, _url| {
        let now = Utc::now();
        assert!(database
            .try_take_lease("advisory-sync", "a", now, now + Duration::minutes(5))
            .await
            .unwrap());
        assert!(
            !database
                .try_take_lease("advisory-sync", "b", now, now + Duration::minutes(5))
                .await
                .unwrap(),
            "b waits while a holds it"
        );
        assert!(
            !database
                .try_take_lease("advisory-sync", "a", now, now + Duration::minutes(5))
                .await
                .unwrap(),
            "not even a takes it again before it expires"
        );
        assert!(database
            .extend_lease("advisory-sync", "a", now + Duration::seconds(1))
            .await
            .unwrap());
        assert!(
            !database
                .extend_lease("advisory-sync", "b", now + Duration::hours(1))
                .await
                .unwrap(),
            "b cannot extend what it does not hold"
        );
        let later = now + Duration::seconds(2);
        assert!(
            database
                .try_take_lease("advisory-sync", "b", later, later + Duration::minutes(5))
                .await
                .unwrap(),
            "expired: b takes it"
        );
        assert_eq!(
            database
                .lease("advisory-sync")
                .await
                .unwrap()
                .unwrap()
                .holder,
            "b"
        );
        assert!(
            !database
                .extend_lease("advisory-sync", "a", later + Duration::hours(1))
                .await
                .unwrap(),
            "a lost it"
        );

        // Many replicas racing for an expired lease: exactly one wins.
        let far = later + Duration::minutes(10);
        let mut racers = Vec::new();
        for index in 0..8 {
            let database = database.clone();
            racers.push(tokio::spawn(async move {
                database
                    .try_take_lease(
                        "advisory-sync",
                        &format!("r{index}"),
                        far,
                        far + Duration::minutes(5),
                    )
                    .await
                    .unwrap()
            }));
        }
        let mut winners = 0;
        for racer in racers {
            winners += usize::from(racer.await.unwrap());
        }
        assert_eq!(winners, 1);
    }
);

store_test!(
    feeds_record_freshness_and_organisations_choose_what_a_stale_feed_does,
    |database, _url| {
        let sources = vec![
            "https://osv.example/PyPI/all.zip".to_owned(),
            "https://osv.example/CRAN/all.zip".to_owned(),
        ];
        database.configure_feeds(&sources).await.unwrap();
        database.configure_feeds(&sources).await.unwrap();
        let feeds = database.advisory_feeds().await.unwrap();
        assert_eq!(feeds.len(), 2);
        let configured = feeds[0].first_configured_at;
        assert_eq!(
            database.advisory_feed().await.unwrap().unwrap().current_at,
            configured,
            "never synced: counts from when configured"
        );

        let started = Utc::now() + Duration::seconds(5);
        let success = FeedSuccess {
            started_at: started,
            mode: "full",
            changed: 3,
            cursor: Some(started - Duration::days(1)),
            duration_ms: 12,
        };
        database
            .feed_succeeded(&sources[0], &success)
            .await
            .unwrap();
        database
            .feed_failed(&sources[1], started, "connection refused")
            .await
            .unwrap();
        let feed = database.advisory_feed().await.unwrap().unwrap();
        assert_eq!(feed.current_at, configured, "the oldest source decides");
        database
            .feed_succeeded(
                &sources[1],
                &FeedSuccess {
                    cursor: None,
                    changed: 0,
                    ..success.clone()
                },
            )
            .await
            .unwrap();
        let feeds = database.advisory_feeds().await.unwrap();
        assert!(feeds.iter().all(|feed| feed.last_error.is_none()));
        assert_eq!(feeds.iter().map(|feed| feed.total_changed).sum::<i64>(), 3);
        let feed = database.advisory_feed().await.unwrap().unwrap();
        assert_eq!(
            feed.current_at.timestamp_micros(),
            started.timestamp_micros()
        );

        // A source no longer configured no longer counts.
        database.configure_feeds(&sources[..1]).await.unwrap();
        assert_eq!(
            database
                .advisory_feeds()
                .await
                .unwrap()
                .iter()
                .filter(|feed| feed.active)
                .count(),
            1
        );
        database.configure_feeds(&[]).await.unwrap();
        assert_eq!(database.advisory_feed().await.unwrap(), None);

        let national = formulary_core::OrgCode::national();
        let hold = FeedPolicy {
            stale_after_hours: 6,
            on_stale: OnStaleFeed::Hold,
        };
        database
            .set_feed_policy(&national, hold, "test")
            .await
            .unwrap();
        assert_eq!(
            database.feed_policies().await.unwrap(),
            vec![(national.clone(), hold)]
        );
        let snapshot = database.policy_snapshot(Utc::now()).await.unwrap();
        assert_eq!(
            snapshot.feed_policy_for(&"RJ1".parse().unwrap()),
            hold,
            "organisations inherit the national rule"
        );
        assert!(database
            .set_feed_policy(
                &national,
                FeedPolicy {
                    stale_after_hours: 0,
                    ..hold
                },
                "test"
            )
            .await
            .is_err());
        assert!(
            database
                .set_feed_policy(&"ZZZ".parse().unwrap(), hold, "test")
                .await
                .is_err(),
            "unknown organisation"
        );
    }
);

store_test!(
    recalls_are_opened_once_and_people_drop_off_when_they_move,
    |database, _url| {
        use formulary_core::ecosystems::{Ecosystem, Version};
        use formulary_core::{Component, ComponentVersion, Organisation};
        use formulary_store::{Download, LedgerLine, NewRecall, NewReport};

        database
            .add_organisation(
                &Organisation {
                    code: "RJ1".parse().unwrap(),
                    name: "A trust".to_owned(),
                },
                "test",
            )
            .await
            .unwrap();
        let requests = Component::new(Ecosystem::Pypi, "requests").unwrap();
        let pinned = |version: &str| ComponentVersion {
            component: requests.clone(),
            version: Version::parse(Ecosystem::Pypi, version).unwrap(),
        };
        let download = |actor: &str, version: &str| {
            LedgerLine::new(Download {
                organisation: "RJ1".parse().unwrap(),
                component: requests.clone(),
                version: version.to_owned(),
                filename: format!("requests-{version}-py3-none-any.whl"),
                outcome: "served".to_owned(),
                client: "10.0.0.1".to_owned(),
                user_agent: "pip/25".to_owned(),
                actor: Some(actor.to_owned()),
            })
        };
        database
            .record_ledger_lines(&[download("user:jane", "2.19.1")])
            .await
            .unwrap();
        let report = |versions: &[&str]| NewReport {
            organisation: "RJ1".parse().unwrap(),
            environment: "etl".to_owned(),
            kind: "pipeline".to_owned(),
            reported_by: "token:t-1 (ci)".to_owned(),
            reported_by_name: "ci".to_owned(),
            format: "purls".to_owned(),
            components: versions.iter().map(|version| pinned(version)).collect(),
        };
        database
            .record_report(&report(&["2.19.1"]), "test")
            .await
            .unwrap();
        let holders = database.who_has(&requests, Some("2.19.1")).await.unwrap();
        assert_eq!(holders.len(), 2, "{holders:?}");

        let recall = NewRecall {
            cause: "advisory".to_owned(),
            cause_key: "PYSEC-2018-28".to_owned(),
            advisory_id: Some("PYSEC-2018-28".to_owned()),
            component: requests.clone(),
            versions: vec!["2.19.1".to_owned()],
            move_to: Some("2.32.3".to_owned()),
            reason: "PYSEC-2018-28 (high)".to_owned(),
            severity: Some("high".to_owned()),
            holders,
        };
        let first = database
            .open_recall(&recall, "system:recalls")
            .await
            .unwrap();
        assert!(first.opened && first.new_people == 2);
        let again = database
            .open_recall(&recall, "system:recalls")
            .await
            .unwrap();
        assert_eq!(
            (again.id.as_str(), again.opened, again.new_people),
            (first.id.as_str(), false, 0),
            "idempotent"
        );
        assert_eq!(database.recalls_for("user:jane").await.unwrap().len(), 1);

        // Nothing moved yet.
        assert_eq!(database.resolve_recalls().await.unwrap(), 0);
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        // Jane downloads the fixed version; the pipeline reports it moved.
        database
            .record_ledger_lines(&[download("user:jane", "2.32.3")])
            .await
            .unwrap();
        database
            .record_report(&report(&["2.32.3"]), "test")
            .await
            .unwrap();
        assert_eq!(database.resolve_recalls().await.unwrap(), 2);
        let (summary, people) = database.recall(&first.id).await.unwrap().unwrap();
        assert_eq!((summary.told, summary.resolved, summary.exposed), (2, 2, 0));
        assert!(summary.closed_at.is_some(), "nobody exposed: closed");
        assert!(
            people
                .iter()
                .all(|person| person.resolution.as_deref() == Some("moved")),
            "{people:?}"
        );
        assert!(database.recalls_for("user:jane").await.unwrap().is_empty());

        // A hand-opened recall; the person explains why they stay.
        database
            .record_ledger_lines(&[download("user:omar", "2.19.1")])
            .await
            .unwrap();
        let manual = database
            .open_recall(
                &NewRecall {
                    cause: "manual".to_owned(),
                    cause_key: "manual:2.19.1".to_owned(),
                    advisory_id: None,
                    holders: database.who_has(&requests, Some("2.19.1")).await.unwrap(),
                    ..recall.clone()
                },
                "cli:curator",
            )
            .await
            .unwrap();
        assert_eq!(
            database
                .explain_recall(
                    &manual.id,
                    "user:omar",
                    "exception E-12 signed by the SIRO until March",
                    None,
                )
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            database
                .explain_recall(&manual.id, "user:nobody", "not mine", None)
                .await
                .unwrap(),
            0
        );
        let (summary, _) = database.recall(&manual.id).await.unwrap().unwrap();
        assert_eq!(summary.exposed, summary.told - 1);

        // Metrics: the advisory recall closed at once; the manual one is open.
        let metrics = database
            .surveillance_metrics(chrono::Utc::now())
            .await
            .unwrap();
        assert_eq!((metrics.recalls, metrics.open, metrics.due), (2, 1, 1));
        assert_eq!(metrics.closed_within_14_days, Some(1.0));
        assert_eq!(metrics.timelines.len(), 2);
        let later = database
            .surveillance_metrics(chrono::Utc::now() + Duration::days(20))
            .await
            .unwrap();
        assert_eq!(later.due, 2, "the open recall is past 14 days");
        assert_eq!(later.closed_within_14_days, Some(0.5));
        assert_eq!(
            later.exposure[0].over_14_days, summary.exposed,
            "{:?}",
            later.exposure
        );

        // An explanation with a day counts until that day has passed; then the person is
        // exposed again.
        database
            .record_ledger_lines(&[download("user:pat", "2.19.1")])
            .await
            .unwrap();
        database
            .open_recall(
                &NewRecall {
                    cause: "manual".to_owned(),
                    cause_key: "manual:2.19.1".to_owned(),
                    advisory_id: None,
                    holders: database.who_has(&requests, Some("2.19.1")).await.unwrap(),
                    ..recall.clone()
                },
                "cli:curator",
            )
            .await
            .unwrap();
        let yesterday = chrono::Utc::now().date_naive() - Duration::days(1);
        assert_eq!(
            database
                .explain_recall(
                    &manual.id,
                    "user:pat",
                    "waiting for the vendor's fix",
                    Some(yesterday)
                )
                .await
                .unwrap(),
            1
        );
        database.resolve_recalls().await.unwrap();
        let again = database.recalls_for("user:pat").await.unwrap();
        assert_eq!(again.len(), 1, "the day has passed: {again:?}");
        assert_eq!(
            again[0].1.explanation.as_deref(),
            Some("waiting for the vendor's fix")
        );
        assert!(
            database.recalls_for("user:omar").await.unwrap().is_empty(),
            "no day: still explained"
        );
    }
);
