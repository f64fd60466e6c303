//! The download ledger, written off the request path, and never in its way.
//!
//! Recording a download never waits: the line gets its id and time, goes into a bounded queue,
//! and one background task writes the queue to the database in batches. When the database fails
//! (or the queue is full), lines go to a local journal instead (`ledger-journal.jsonl`, one JSON
//! line each, fsynced once per batch), and the task replays the journal when the database answers
//! again. Lines keep the id they were given, and the database skips ids it already has, so a
//! replay repeated after a crash records nothing twice. The journal is bounded: when it is full,
//! one error says so and further lines are counted as dropped until there is room again.

mod journal;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use formulary_store::{Database, Download, LedgerLine};
use tokio::sync::mpsc;

use journal::Journal;

/// Lines queued at most before they go to the journal instead.
const QUEUE: usize = 4096;
/// Lines written at most per INSERT.
const BATCH: usize = 256;
/// How long one database write may take before the database is treated as down.
const WRITE_TIMEOUT: Duration = Duration::from_secs(3);
/// The first pause before the journal is tried again after a failure; it doubles up to
/// [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_millis(500);
/// The longest pause between two attempts to replay the journal.
const RETRY_MAX: Duration = Duration::from_secs(15);

/// Where the journal lives and how large it may grow.
#[derive(Debug, Clone)]
pub struct LedgerOptions {
    /// The journal file (`ledger-journal.jsonl` in the data folder); a second file beside it,
    /// with `.replaying` added, holds the part being replayed.
    pub journal: PathBuf,
    /// The most bytes the journal (both files) may hold; beyond it lines are dropped and counted.
    pub journal_max_bytes: u64,
}

/// What the ledger holds back from the database, for `/readyz`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LedgerStatus {
    /// Lines waiting in the journal for the database.
    pub journal_lines: u64,
    /// Lines dropped because the journal was full (since the server started).
    pub dropped: u64,
    /// True while the last database write failed.
    pub database_failing: bool,
}

/// What the writer did, reported when it stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LedgerSummary {
    /// Lines written to the database (directly or replayed from the journal).
    pub written: u64,
    /// Lines left in the journal for the next start.
    pub journal_lines: u64,
    /// Lines dropped because the journal was full.
    pub dropped: u64,
}

/// State shared by the recorders and the writer.
#[derive(Debug)]
struct Shared {
    journal: Mutex<Journal>,
    dropped: AtomicU64,
    database_failing: AtomicBool,
    /// Set once the journal is full, so that the error is logged once per episode.
    full_reported: AtomicBool,
}

impl Shared {
    /// Appends lines to the journal (without syncing); counts and reports what does not fit.
    fn spill(&self, lines: &[LedgerLine]) {
        let appended = match self.journal.lock() {
            Ok(mut journal) => journal.append(lines),
            Err(_) => 0,
        };
        let dropped = lines.len() - appended;
        if dropped > 0 {
            let total = self.dropped.fetch_add(dropped as u64, Ordering::Relaxed) + dropped as u64;
            if !self.full_reported.swap(true, Ordering::Relaxed) {
                tracing::error!(
                    dropped_so_far = total,
                    "the download ledger's local journal is full and the database is not taking lines: further downloads are served but not recorded (they are counted) until the database answers; raise ledger_journal_max_bytes or bring the database back"
                );
            }
        }
    }

    /// Flushes and fsyncs the journal.
    fn sync(&self) {
        if let Ok(mut journal) = self.journal.lock() {
            if let Err(error) = journal.sync() {
                tracing::error!(%error, "could not write the download ledger's local journal to disk");
            }
        }
    }

    fn journal_lines(&self) -> u64 {
        self.journal.lock().map_or(0, |journal| journal.lines())
    }
}

/// Where request handlers record downloads.
#[derive(Debug, Clone)]
pub struct DownloadLedger {
    sender: mpsc::Sender<LedgerLine>,
    shared: Arc<Shared>,
}

/// The background writer; [`LedgerWriter::finish`] writes what is queued and stops it.
#[derive(Debug)]
pub struct LedgerWriter {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<u64>,
    shared: Arc<Shared>,
}

impl DownloadLedger {
    /// Opens the journal (replaying what an earlier run left there once the database answers)
    /// and starts the background writer (inside a tokio runtime).
    pub fn start(
        database: Database,
        options: &LedgerOptions,
    ) -> std::io::Result<(DownloadLedger, LedgerWriter)> {
        let journal = Journal::open(&options.journal, options.journal_max_bytes)?;
        if journal.lines() > 0 {
            tracing::info!(
                lines = journal.lines(),
                "the download ledger's local journal holds lines from an earlier run; they are written to the database when it answers"
            );
        }
        let shared = Arc::new(Shared {
            journal: Mutex::new(journal),
            dropped: AtomicU64::new(0),
            database_failing: AtomicBool::new(false),
            full_reported: AtomicBool::new(false),
        });
        let (sender, receiver) = mpsc::channel(QUEUE);
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(
            Writer {
                database,
                shared: Arc::clone(&shared),
                written: 0,
                retry: RETRY_FIRST,
            }
            .run(receiver, stopped),
        );
        Ok((
            DownloadLedger {
                sender,
                shared: Arc::clone(&shared),
            },
            LedgerWriter { stop, task, shared },
        ))
    }

    /// Records a download without waiting: it is queued for the database, or written to the
    /// journal when the queue is full or the writer has stopped.
    pub fn record(&self, download: Download) {
        let line = LedgerLine::new(download);
        if let Err(
            mpsc::error::TrySendError::Full(line) | mpsc::error::TrySendError::Closed(line),
        ) = self.sender.try_send(line)
        {
            // Synced by the writer with its next batch or replay.
            self.shared.spill(std::slice::from_ref(&line));
        }
    }

    /// What the ledger holds back from the database now.
    pub fn status(&self) -> LedgerStatus {
        LedgerStatus {
            journal_lines: self.shared.journal_lines(),
            dropped: self.shared.dropped.load(Ordering::Relaxed),
            database_failing: self.shared.database_failing.load(Ordering::Relaxed),
        }
    }
}

impl LedgerWriter {
    /// Writes every queued line (to the database, or to the journal when the database does not
    /// take it), tries once to empty the journal, then stops.
    pub async fn finish(self) -> LedgerSummary {
        let _ = self.stop.send(());
        let written = self.task.await.unwrap_or_default();
        self.shared.sync();
        LedgerSummary {
            written,
            journal_lines: self.shared.journal_lines(),
            dropped: self.shared.dropped.load(Ordering::Relaxed),
        }
    }
}

/// The background task.
struct Writer {
    database: Database,
    shared: Arc<Shared>,
    written: u64,
    /// The pause before the next replay attempt after a failure.
    retry: Duration,
}

impl Writer {
    async fn run(
        mut self,
        mut receiver: mpsc::Receiver<LedgerLine>,
        mut stopped: tokio::sync::oneshot::Receiver<()>,
    ) -> u64 {
        let mut batch = Vec::with_capacity(BATCH);
        // Replay at once what an earlier run left in the journal.
        let mut next_replay = tokio::time::Instant::now();
        loop {
            let replay_due = self.shared.journal_lines() > 0;
            tokio::select! {
                count = receiver.recv_many(&mut batch, BATCH) => {
                    if count == 0 {
                        break;
                    }
                    self.write_batch(&batch).await;
                    batch.clear();
                }
                () = tokio::time::sleep_until(next_replay), if replay_due => {
                    if self.replay().await {
                        self.retry = RETRY_FIRST;
                    } else {
                        self.retry = (self.retry * 2).min(RETRY_MAX);
                    }
                    next_replay = tokio::time::Instant::now() + self.retry;
                }
                _ = &mut stopped => {
                    // The stop signal completes once; it is never polled again.
                    receiver.close();
                    while receiver.recv_many(&mut batch, BATCH).await > 0 {
                        self.write_batch(&batch).await;
                        batch.clear();
                    }
                    if self.shared.journal_lines() > 0 {
                        self.replay().await;
                    }
                    break;
                }
            }
        }
        self.written
    }

    /// Writes a batch to the database while it works; otherwise (or when it fails now) to the
    /// journal, fsynced once for the batch.
    async fn write_batch(&mut self, batch: &[LedgerLine]) {
        // While the database fails, lines go to the journal until a replay gets through; with an
        // empty journal (nothing to replay, or no room in it) the database is simply tried.
        if !self.shared.database_failing.load(Ordering::Relaxed) || self.shared.journal_lines() == 0
        {
            match self.insert(batch).await {
                Ok(()) => {
                    self.written += batch.len() as u64;
                    return;
                }
                Err(error) => {
                    tracing::warn!(
                        %error,
                        lines = batch.len(),
                        "could not write the download ledger to the database; keeping lines in the local journal until it answers"
                    );
                    self.shared.database_failing.store(true, Ordering::Relaxed);
                }
            }
        }
        let shared = Arc::clone(&self.shared);
        let lines = batch.to_vec();
        let spilled = tokio::task::spawn_blocking(move || {
            shared.spill(&lines);
            shared.sync();
        })
        .await;
        if spilled.is_err() {
            tracing::error!(
                lines = batch.len(),
                "the download ledger's journal writer panicked; these lines are lost"
            );
        }
    }

    async fn insert(&self, lines: &[LedgerLine]) -> Result<(), String> {
        match tokio::time::timeout(WRITE_TIMEOUT, self.database.record_ledger_lines(lines)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) => Err(error.to_string()),
            Err(_) => Err(format!(
                "the database did not answer within {} s",
                WRITE_TIMEOUT.as_secs()
            )),
        }
    }

    /// Writes the journal to the database, a batch at a time; true when it is empty afterwards.
    /// A failure leaves the part being replayed in place, to be replayed again from its start
    /// (lines already written are skipped by id).
    async fn replay(&mut self) -> bool {
        let Some(path) = self.shared.journal.lock().ok().and_then(|mut journal| {
            journal
                .begin_replay()
                .map_err(|error| tracing::error!(%error, "could not set the download ledger's journal aside for replay"))
                .ok()
                .flatten()
        }) else {
            return true;
        };
        let mut reader = match journal::Reader::open(&path).await {
            Ok(reader) => reader,
            Err(error) => {
                tracing::error!(%error, path = %path.display(), "could not read the download ledger's journal");
                return false;
            }
        };
        let mut replayed = 0u64;
        loop {
            let lines = match reader.next_batch(BATCH).await {
                Ok(lines) if lines.is_empty() => break,
                Ok(lines) => lines,
                Err(error) => {
                    tracing::error!(%error, path = %path.display(), "could not read the download ledger's journal");
                    return false;
                }
            };
            if let Err(error) = self.insert(&lines).await {
                if !self.shared.database_failing.swap(true, Ordering::Relaxed) {
                    tracing::warn!(%error, "could not replay the download ledger's journal; trying again later");
                }
                return false;
            }
            replayed += lines.len() as u64;
        }
        self.written += replayed;
        if reader.skipped() > 0 {
            tracing::warn!(
                skipped = reader.skipped(),
                "lines of the download ledger's journal could not be read (cut short by a crash?) and were skipped"
            );
        }
        if let Ok(mut journal) = self.shared.journal.lock() {
            if let Err(error) = journal.end_replay() {
                tracing::error!(%error, "could not remove the replayed download ledger journal; it will be replayed again (nothing is recorded twice)");
            }
        }
        let was_failing = self.shared.database_failing.swap(false, Ordering::Relaxed);
        if was_failing || replayed > 0 {
            tracing::info!(
                replayed,
                "the database takes download ledger lines again; the local journal was written to it"
            );
        }
        let dropped = self.shared.dropped.load(Ordering::Relaxed);
        if self.shared.full_reported.swap(false, Ordering::Relaxed) {
            tracing::error!(
                dropped,
                "download ledger lines dropped while the journal was full"
            );
        }
        self.shared.journal_lines() == 0
    }
}

#[cfg(test)]
mod tests;
