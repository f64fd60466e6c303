//! The local copy's background writer: it writes the copy at most every few seconds after a
//! change. When a write fails (a full disk, a read-only mount), the previous copy on disk stays
//! whole (every file is written to a temporary file and renamed), the writer says so once, at
//! WARN, and tries again every [`RETRY_EVERY`] until a write succeeds, which it also says.

use std::sync::Arc;
use std::time::Duration;

use super::LocalCopy;

/// How long after a failed write the writer tries again, changed or not.
const RETRY_EVERY: Duration = Duration::from_secs(30);

/// Whether writes are failing, so that a failure is reported once rather than at every attempt.
#[derive(Debug, Default)]
pub(super) struct Trouble {
    failed_attempts: u64,
}

impl Trouble {
    /// True while the last attempt failed.
    pub(super) fn is_failing(&self) -> bool {
        self.failed_attempts > 0
    }

    /// Records a failed attempt: true for the first of a run (the one to report).
    pub(super) fn failed(&mut self) -> bool {
        self.failed_attempts += 1;
        self.failed_attempts == 1
    }

    /// Records a successful write: how many attempts had failed before it, if any.
    pub(super) fn succeeded(&mut self) -> Option<u64> {
        let failed = std::mem::take(&mut self.failed_attempts);
        (failed > 0).then_some(failed)
    }
}

impl LocalCopy {
    /// Writes the copy to disk at most every `debounce` after it changes, until the task is
    /// aborted; after a failed write, tries again every 30 s (see the module documentation).
    pub fn keep_written(self: &Arc<Self>, debounce: Duration) -> tokio::task::JoinHandle<()> {
        self.keep_written_retrying(debounce, RETRY_EVERY)
    }

    pub(super) fn keep_written_retrying(
        self: &Arc<Self>,
        debounce: Duration,
        retry: Duration,
    ) -> tokio::task::JoinHandle<()> {
        let copy = Arc::clone(self);
        tokio::spawn(async move {
            let mut trouble = Trouble::default();
            loop {
                if trouble.is_failing() {
                    tokio::time::sleep(retry).await;
                } else {
                    copy.changed.notified().await;
                    tokio::time::sleep(debounce).await;
                }
                match copy.write_now().await {
                    Ok(()) => {
                        if let Some(failed) = trouble.succeeded() {
                            tracing::warn!(
                                folder = %copy.folder.display(),
                                failed_attempts = failed,
                                "the local copy is written again"
                            );
                        }
                    }
                    Err(error) => {
                        if trouble.failed() {
                            tracing::warn!(
                                %error,
                                folder = %copy.folder.display(),
                                retry_seconds = retry.as_secs(),
                                "could not write the local copy: a start with the database down would serve the previous one, which is kept whole; trying again until it succeeds (said once)"
                            );
                        } else {
                            tracing::debug!(%error, "the local copy still cannot be written");
                        }
                    }
                }
            }
        })
    }
}
