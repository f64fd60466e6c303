use super::*;
use formulary_core::ecosystems::Ecosystem;
use formulary_core::Component;

fn download(index: usize) -> Download {
    Download {
        organisation: "NATIONAL".parse().expect("code"),
        component: Component::new(Ecosystem::Cran, "cellar").expect("name"),
        version: format!("1.0.{index}"),
        filename: format!("cellar_1.0.{index}.tar.gz"),
        outcome: "served".to_owned(),
        client: "127.0.0.1".to_owned(),
        user_agent: "R".to_owned(),
        actor: None,
    }
}

async fn sqlite(folder: &std::path::Path) -> Database {
    Database::open(&format!("sqlite://{}", folder.join("ledger.db").display()))
        .await
        .expect("SQLite")
}

fn options(folder: &std::path::Path, max_bytes: u64) -> LedgerOptions {
    LedgerOptions {
        journal: folder.join("ledger-journal.jsonl"),
        journal_max_bytes: max_bytes,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_queued_line_is_written_by_shutdown() {
    let folder = tempfile::tempdir().expect("temporary folder");
    let database = sqlite(folder.path()).await;
    let (ledger, writer) =
        DownloadLedger::start(database.clone(), &options(folder.path(), 1 << 20)).expect("starts");
    let mut tasks = Vec::new();
    for index in 0..1000 {
        let ledger = ledger.clone();
        tasks.push(tokio::spawn(async move { ledger.record(download(index)) }));
    }
    for task in tasks {
        task.await.expect("recorded");
    }
    let summary = writer.finish().await;
    assert_eq!(summary.written, 1000, "{summary:?}");
    assert_eq!(summary.journal_lines, 0);
    assert_eq!(database.download_count().await.expect("count"), 1000);
    database.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recording_never_waits_for_a_database_that_is_gone_and_the_journal_is_replayed_once() {
    let folder = tempfile::tempdir().expect("temporary folder");
    let database = sqlite(folder.path()).await;
    // The database goes away: every write fails.
    database.close().await;
    let (ledger, writer) =
        DownloadLedger::start(database.clone(), &options(folder.path(), 1 << 24)).expect("starts");
    let started = std::time::Instant::now();
    // More than the queue holds: none of these may wait.
    for index in 0..(QUEUE + 1000) {
        ledger.record(download(index));
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "recording waited: {:?}",
        started.elapsed()
    );
    let summary = writer.finish().await;
    assert_eq!(summary.written, 0, "{summary:?}");
    assert_eq!(
        summary.journal_lines,
        (QUEUE + 1000) as u64,
        "every line is in the journal: {summary:?}"
    );
    assert_eq!(summary.dropped, 0);

    // The database is back (a new start): the journal is replayed, and replaying it again (as
    // after a crash between writing and removing it) records nothing twice.
    let database = sqlite(folder.path()).await;
    let journal = folder.path().join("ledger-journal.jsonl");
    let copy = folder.path().join("copy.jsonl");
    // The last replay attempt set the journal aside: keep a copy of everything waiting.
    let waiting: Vec<u8> = ["ledger-journal.jsonl", "ledger-journal.jsonl.replaying"]
        .iter()
        .flat_map(|name| std::fs::read(folder.path().join(name)).unwrap_or_default())
        .collect();
    std::fs::write(&copy, waiting).expect("copy");
    let (ledger, writer) =
        DownloadLedger::start(database.clone(), &options(folder.path(), 1 << 24)).expect("starts");
    ledger.record(download(99_999));
    // The replay runs in the background: wait for it (a loaded machine takes seconds), then stop.
    let expected = (QUEUE + 1001) as i64;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while database.download_count().await.expect("count") < expected
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let summary = writer.finish().await;
    assert_eq!(summary.journal_lines, 0, "{summary:?}");
    assert_eq!(
        database.download_count().await.expect("count"),
        (QUEUE + 1001) as i64
    );
    std::fs::rename(&copy, &journal).expect("the same journal again");
    let (_ledger, writer) =
        DownloadLedger::start(database.clone(), &options(folder.path(), 1 << 24)).expect("starts");
    let summary = writer.finish().await;
    assert_eq!(summary.journal_lines, 0, "{summary:?}");
    assert_eq!(
        database.download_count().await.expect("count"),
        (QUEUE + 1001) as i64,
        "a replayed line is never recorded twice"
    );
    database.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_journal_drops_and_counts_what_does_not_fit() {
    let folder = tempfile::tempdir().expect("temporary folder");
    let database = sqlite(folder.path()).await;
    database.close().await;
    let line_size = serde_json::to_vec(&LedgerLine::new(download(100)))
        .expect("json")
        .len() as u64
        + 1;
    let (ledger, writer) =
        DownloadLedger::start(database.clone(), &options(folder.path(), line_size * 10))
            .expect("starts");
    for index in 100..130 {
        ledger.record(download(index));
    }
    let summary = writer.finish().await;
    assert!(
        (8..=10).contains(&summary.journal_lines),
        "about ten lines fit: {summary:?}"
    );
    assert_eq!(summary.journal_lines + summary.dropped, 30, "{summary:?}");
}

#[test]
fn a_line_cut_short_by_a_crash_is_skipped_without_spoiling_the_next() {
    let folder = tempfile::tempdir().expect("temporary folder");
    let path = folder.path().join("ledger-journal.jsonl");
    let mut journal = Journal::open(&path, 1 << 20).expect("opens");
    assert_eq!(journal.append(&[LedgerLine::new(download(1))]), 1);
    journal.sync().expect("sync");
    drop(journal);
    // A crash in the middle of the second line.
    let mut text = std::fs::read(&path).expect("read");
    text.extend_from_slice(b"{\"id\":\"d-cut");
    std::fs::write(&path, text).expect("write");
    let mut journal = Journal::open(&path, 1 << 20).expect("opens again");
    assert_eq!(journal.lines(), 2, "the cut line is counted until replayed");
    assert_eq!(journal.append(&[LedgerLine::new(download(3))]), 1);
    journal.sync().expect("sync");
    let replaying = journal.begin_replay().expect("set aside").expect("lines");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (lines, skipped) = runtime.block_on(async {
        let mut reader = journal::Reader::open(&replaying).await.expect("reader");
        let lines = reader.next_batch(10).await.expect("batch");
        (lines, reader.skipped())
    });
    let versions: Vec<&str> = lines
        .iter()
        .map(|line| line.download.version.as_str())
        .collect();
    assert_eq!(versions, ["1.0.1", "1.0.3"]);
    assert_eq!(skipped, 1);
    journal.end_replay().expect("removed");
    assert_eq!(journal.lines(), 0);
}
