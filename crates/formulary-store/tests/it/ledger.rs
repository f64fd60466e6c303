//! The download ledger, written one line or a batch at a time.

use formulary_core::ecosystems::Ecosystem;
use formulary_core::Component;
use formulary_store::{Download, LedgerLine};

use crate::store_test;

fn line(version: &str, outcome: &str) -> Download {
    Download {
        organisation: "NATIONAL".parse().expect("code"),
        component: Component::new(Ecosystem::Cran, "readxl").expect("name"),
        version: version.to_owned(),
        filename: format!("readxl_{version}.tar.gz"),
        outcome: outcome.to_owned(),
        client: "127.0.0.1".to_owned(),
        user_agent: "R (4.2.2 x86_64-pc-linux-gnu x86_64 linux-gnu)".to_owned(),
        actor: None,
    }
}

store_test!(batched_ledger_lines_are_all_recorded, |database, _url| {
    let mut lines: Vec<Download> = (0..600)
        .map(|index| line(&format!("1.{index}"), "served"))
        .collect();
    lines.push(line("1.4.1", "refused"));
    database.record_downloads(&lines).await.expect("batch");
    database
        .record_download(&line("1.4.0", "served"))
        .await
        .expect("one line");
    database
        .record_downloads(&[])
        .await
        .expect("an empty batch");
    let recorded = database
        .downloads_of(&Component::new(Ecosystem::Cran, "readxl").expect("name"))
        .await
        .expect("ledger");
    assert_eq!(
        recorded.len(),
        602,
        "batches of more than 256 lines are split"
    );
    let mut versions: Vec<&str> = recorded
        .iter()
        .map(|download| download.version.as_str())
        .collect();
    versions.sort_unstable();
    versions.dedup();
    assert_eq!(versions.len(), 602, "every line kept its own values");
    assert!(recorded
        .iter()
        .any(|download| download.version == "1.4.1" && download.outcome == "refused"));
});

store_test!(
    ledger_lines_written_twice_are_recorded_once,
    |database, _url| {
        let lines: Vec<LedgerLine> = (0..300)
            .map(|index| LedgerLine::new(line(&format!("2.{index}"), "served")))
            .collect();
        assert_eq!(
            database.record_ledger_lines(&lines).await.expect("first"),
            300
        );
        // A journal replayed after a crash repeats lines already written, and adds new ones.
        let mut again = lines[250..].to_vec();
        again.push(LedgerLine::new(line("3.0", "served")));
        assert_eq!(
            database.record_ledger_lines(&again).await.expect("again"),
            1,
            "only the new line is inserted"
        );
        assert_eq!(database.download_count().await.expect("count"), 301);
        let recorded = database
            .downloads_of(&Component::new(Ecosystem::Cran, "readxl").expect("name"))
            .await
            .expect("ledger");
        assert_eq!(recorded.len(), 301);
    }
);
