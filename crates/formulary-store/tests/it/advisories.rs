//! Advisory imports on both backends with real records whose optional columns differ from one
//! record to the next (sqlx's `Any` driver once bound a missing CVSS score as a 4-byte float on
//! PostgreSQL, so the next record's 8-byte score was refused: "incorrect binary data format in
//! bind parameter 7").

use std::path::{Path, PathBuf};

use formulary_core::advisory::{Advisory, OsvRecord, RecordFormat};
use formulary_core::ecosystems::Ecosystem;
use formulary_core::Component;
use formulary_store::{AdvisoryImport, ImportOutcome};

use sqlx::Connection;

use crate::store_test;

fn pypa(package: &str, id: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../test-data/osv/pypa-advisory-database/vulns")
        .join(package)
        .join(format!("{id}.yaml"))
}

fn import(path: &Path) -> AdvisoryImport {
    let bytes = std::fs::read(path).expect("record file");
    let record =
        OsvRecord::parse(&bytes, RecordFormat::Yaml, &path.display().to_string()).expect("parses");
    let advisory = Advisory::from_record(&record).expect("converts");
    AdvisoryImport { record, advisory }
}

store_test!(
    a_record_without_a_cvss_score_then_one_with_a_score_both_import,
    |database, url| {
        let unrated = import(&pypa("aiohttp", "PYSEC-2021-76"));
        let rated = import(&pypa("aiohttp", "PYSEC-2022-43059"));
        assert!(
            unrated.advisory.cvss_score.is_none(),
            "the first has no CVSS vector"
        );
        assert!(rated.advisory.cvss_score.is_some(), "the second has one");
        let outcomes = database
            .import_advisories(
                &[unrated.clone(), rated.clone()],
                "test",
                "cli:test",
                |_| {},
            )
            .await
            .expect("both import in one batch, on one connection");
        assert_eq!(outcomes, [ImportOutcome::Inserted, ImportOutcome::Inserted]);
        // And the other way round, and again after a score came first on the same connection.
        let mut newer_unrated = unrated.clone();
        newer_unrated.advisory.modified += chrono::Duration::days(1);
        let mut newer_rated = rated.clone();
        newer_rated.advisory.modified += chrono::Duration::days(1);
        let outcomes = database
            .import_advisories(&[newer_rated, newer_unrated], "test", "cli:test", |_| {})
            .await
            .expect("updates import");
        assert_eq!(outcomes, [ImportOutcome::Updated, ImportOutcome::Updated]);
        let stored = database
            .advisories_for(&Component::new(Ecosystem::Pypi, "aiohttp").expect("name"))
            .await
            .expect("listed");
        assert_eq!(stored.len(), 2, "{stored:?}");
        let rated_summary = stored
            .iter()
            .find(|summary| summary.id == "PYSEC-2022-43059")
            .expect("the rated record is stored");
        assert_eq!(
            rated_summary.severity, rated.advisory.severity,
            "{rated_summary:?}"
        );
        assert!(
            rated_summary.withdrawn.is_some(),
            "it is a withdrawn record"
        );
        let mut connection = sqlx::AnyConnection::connect(&url).await.expect("connects");
        let scores: Vec<(String, Option<f64>)> =
            sqlx::query_as("SELECT id, cvss_score FROM advisories ORDER BY id")
                .fetch_all(&mut connection)
                .await
                .expect("scores");
        assert_eq!(
            scores,
            [
                ("PYSEC-2021-76".to_owned(), None),
                ("PYSEC-2022-43059".to_owned(), rated.advisory.cvss_score)
            ],
            "a missing score stays NULL and a present one is kept exactly"
        );
        connection.close().await.expect("closes");
    }
);

store_test!(
    a_record_modified_to_the_nanosecond_is_unchanged_when_imported_again,
    |database, _url| {
        // OSV's malicious-package reports carry nanoseconds ("2026-09-04T00:47:46.156672516Z");
        // the store keeps microseconds, so the second import must not count as an update.
        let mut record = import(&pypa("aiohttp", "PYSEC-2021-76"));
        record.advisory.modified =
            chrono::DateTime::parse_from_rfc3339("2026-09-04T00:47:46.156672516Z")
                .expect("time")
                .with_timezone(&chrono::Utc);
        let first = database
            .import_advisories(std::slice::from_ref(&record), "test", "cli:test", |_| {})
            .await
            .expect("imports");
        assert_eq!(first, [ImportOutcome::Inserted]);
        let again = database
            .import_advisories(std::slice::from_ref(&record), "test", "cli:test", |_| {})
            .await
            .expect("imports again");
        assert_eq!(again, [ImportOutcome::Unchanged]);
    }
);
