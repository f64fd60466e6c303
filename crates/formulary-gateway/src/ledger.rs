//! The download ledger, written off the request path: lines go into a bounded queue and one
//! background task writes them in batches (one INSERT per batch). When the queue is full,
//! recording waits, so bursts slow down rather than lose lines; at shutdown the task writes
//! everything queued before it stops.

use formulary_store::{Database, Download};
use tokio::sync::mpsc;

/// Lines queued at most before recording waits.
const QUEUE: usize = 4096;
/// Lines written at most per INSERT.
const BATCH: usize = 256;

/// Where request handlers record downloads.
#[derive(Debug, Clone)]
pub struct DownloadLedger {
    sender: mpsc::Sender<Download>,
}

/// The background writer; [`LedgerWriter::finish`] writes what is queued and stops it.
#[derive(Debug)]
pub struct LedgerWriter {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<usize>,
}

impl DownloadLedger {
    /// Starts the background writer (inside a tokio runtime).
    pub fn start(database: Database) -> (DownloadLedger, LedgerWriter) {
        let (sender, receiver) = mpsc::channel(QUEUE);
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(write_batches(database, receiver, stopped));
        (DownloadLedger { sender }, LedgerWriter { stop, task })
    }

    /// Queues a line, waiting while the queue is full. A line that arrives after shutdown is
    /// written directly.
    pub async fn record(&self, line: Download, database: &Database) {
        if let Err(mpsc::error::SendError(line)) = self.sender.send(line).await {
            if let Err(error) = database.record_download(&line).await {
                tracing::warn!(%error, "could not write the download ledger");
            }
        }
    }
}

impl LedgerWriter {
    /// Writes every queued line, then stops; returns how many lines the writer wrote in all.
    pub async fn finish(self) -> usize {
        let _ = self.stop.send(());
        self.task.await.unwrap_or_default()
    }
}

async fn write_batches(
    database: Database,
    mut receiver: mpsc::Receiver<Download>,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
) -> usize {
    let mut written = 0;
    let mut batch = Vec::with_capacity(BATCH);
    let mut stopping = false;
    loop {
        let received = if stopping {
            // Closed: drain what is queued, then `recv_many` answers 0.
            receiver.recv_many(&mut batch, BATCH).await
        } else {
            tokio::select! {
                count = receiver.recv_many(&mut batch, BATCH) => count,
                _ = &mut stopped => {
                    // The stop signal completes once; it is never polled again.
                    stopping = true;
                    receiver.close();
                    receiver.recv_many(&mut batch, BATCH).await
                }
            }
        };
        if received == 0 {
            return written;
        }
        written += write_with_retries(&database, &batch).await;
        batch.clear();
    }
}

/// Writes one batch, trying again a few times (a busy database, a failover) before giving up
/// with a warning that says how many lines were lost.
async fn write_with_retries(database: &Database, batch: &[Download]) -> usize {
    const ATTEMPTS: u32 = 4;
    for attempt in 1..=ATTEMPTS {
        match database.record_downloads(batch).await {
            Ok(()) => return batch.len(),
            Err(error) if attempt == ATTEMPTS => {
                tracing::error!(%error, lines = batch.len(), "could not write the download ledger; these lines are lost");
            }
            Err(error) => {
                tracing::warn!(%error, attempt, "could not write the download ledger; trying again");
                tokio::time::sleep(std::time::Duration::from_millis(100 * u64::from(attempt)))
                    .await;
            }
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;
    use formulary_core::ecosystems::Ecosystem;
    use formulary_core::Component;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_queued_line_is_written_by_shutdown() {
        let folder = tempfile::tempdir().expect("temporary folder");
        let database = Database::open(&format!(
            "sqlite://{}",
            folder.path().join("ledger.db").display()
        ))
        .await
        .expect("SQLite");
        let (ledger, writer) = DownloadLedger::start(database.clone());
        let component = Component::new(Ecosystem::Cran, "cellar").expect("name");
        let mut tasks = Vec::new();
        for index in 0..1000 {
            let (ledger, database, component) =
                (ledger.clone(), database.clone(), component.clone());
            tasks.push(tokio::spawn(async move {
                let line = Download {
                    organisation: "NATIONAL".parse().expect("code"),
                    component,
                    version: format!("1.0.{index}"),
                    filename: format!("cellar_1.0.{index}.tar.gz"),
                    outcome: "served".to_owned(),
                    client: "127.0.0.1".to_owned(),
                    user_agent: "R".to_owned(),
                    actor: None,
                };
                ledger.record(line, &database).await;
            }));
        }
        for task in tasks {
            task.await.expect("recorded");
        }
        assert_eq!(writer.finish().await, 1000);
        let recorded = database.downloads_of(&component).await.expect("ledger");
        assert_eq!(recorded.len(), 1000);
        database.close().await;
    }
}
