//! `formulary serve` with the database down at start: the local copy is loaded (if its seal
//! and the audit checkpoints allow), what it holds is served, and the database is retried in
//! the background until it answers; then its schema is brought up to date and the server goes
//! on normally, without a restart.

use std::sync::Arc;
use std::time::Duration;

use formulary_server::SnapshotHolder;
use formulary_store::{Database, LocalCopy, StoreError};

use super::Context;

/// How often the database is asked again while it is down.
const RETRY_EVERY: Duration = Duration::from_secs(2);
/// How long one such attempt may take.
const ATTEMPT_FOR: Duration = Duration::from_secs(2);
/// How often the local copy is compared in full with the database (what other replicas cached).
const SYNC_EVERY: Duration = Duration::from_secs(600);
/// The shortest time between two writes of the local copy to disk.
const WRITE_AT_MOST_EVERY: Duration = Duration::from_secs(2);

/// Opens the database; when it cannot be reached within `database_start_timeout_seconds`,
/// an offline database over the local copy, and the policy snapshot the copy holds.
pub(crate) async fn open(context: &Context) -> anyhow::Result<(Database, Option<SnapshotHolder>)> {
    let settings = &context.settings;
    let key = formulary_store::AuditKey::load_or_create(&settings.audit_key_file())?;
    let folder = settings.local_copy_dir();
    let deadline = Duration::from_secs(settings.database_start_timeout_seconds.max(1));
    let failure = match tokio::time::timeout(deadline, context.database()).await {
        Ok(Ok(database)) => {
            database.attach_local_copy(LocalCopy::open(&folder, key));
            return Ok((database, None));
        }
        // A database that answers but cannot be used (its schema, the URL) is not an outage.
        Ok(Err(error))
            if !matches!(
                error.downcast_ref::<StoreError>(),
                Some(StoreError::Connect { .. })
            ) =>
        {
            return Err(error)
        }
        Ok(Err(error)) => format!("{error:#}"),
        Err(_) => format!(
            "it did not answer within {} s (database_start_timeout_seconds)",
            deadline.as_secs()
        ),
    };
    let newest = match context.checkpoint_log()?.newest_genuine() {
        Ok(newest) => newest,
        Err(error) => {
            anyhow::bail!("the database cannot be reached ({failure}), and the audit checkpoints that vouch for the local copy cannot be read ({error}); not serving from it")
        }
    };
    let copy = LocalCopy::load(&folder, key, newest.as_ref()).map_err(|why| {
        tracing::error!(%why, "the local copy is refused");
        anyhow::anyhow!("the database cannot be reached ({failure}), and the local copy cannot be used instead: {why}. Bring the database back (check `database_url`) and start again")
    })?;
    let Some((counter, snapshot)) = copy.policy_snapshot()? else {
        anyhow::bail!("the local copy holds no policy snapshot");
    };
    let database = Database::open_deferred(&settings.database_url())?;
    database.attach_local_copy(Arc::clone(&copy));
    let (documents, files) = copy.counts();
    tracing::error!(
        database = %formulary_store::redact_url(&settings.database_url()),
        error = %failure,
        local_copy = %folder.display(),
        written_at = ?copy.written_at(),
        policy_at_audit_row = counter,
        documents,
        files,
        "the database cannot be reached: serving only what this server holds, from its local copy. Cached package indexes and files are served with the policy the copy records; signing in, requests and changes answer 503 until the database returns. It is retried every 2 s and taken back without a restart"
    );
    Ok((
        database,
        Some(SnapshotHolder::from_snapshot(counter, snapshot)),
    ))
}

/// Keeps the local copy written, retries an offline database until it answers (then brings
/// its schema up to date and goes online), and compares the copy with the database every
/// [`SYNC_EVERY`].
pub(crate) fn keep_local_copy(
    database: &Database,
) -> Option<(tokio::task::JoinHandle<()>, tokio::task::JoinHandle<()>)> {
    let copy = database.local_copy()?;
    let writer = copy.keep_written(WRITE_AT_MOST_EVERY);
    let database = database.clone();
    let follower = tokio::spawn(async move {
        if database.is_offline() {
            reconnect(&database).await;
        }
        loop {
            match database.sync_local_copy().await {
                Ok(summary) => tracing::debug!(
                    read = summary.documents_read,
                    documents = summary.documents,
                    files = summary.files,
                    "the local copy matches the database"
                ),
                Err(error) => {
                    tracing::warn!(%error, "could not compare the local copy with the database; trying again later")
                }
            }
            tokio::time::sleep(SYNC_EVERY).await;
        }
    });
    Some((writer, follower))
}

/// Asks the database every [`RETRY_EVERY`] until it answers, then migrates and goes online.
async fn reconnect(database: &Database) {
    let started = std::time::Instant::now();
    loop {
        tokio::time::sleep(RETRY_EVERY).await;
        if !matches!(
            tokio::time::timeout(ATTEMPT_FOR, database.probe()).await,
            Ok(Ok(()))
        ) {
            continue;
        }
        match database.migrate().await {
            Ok(()) => {
                database.go_online();
                tracing::warn!(
                    down_for_s = started.elapsed().as_secs(),
                    "the database answers again: serving normally (sign-in, requests and changes work; the download ledger's journal is written to it)"
                );
                return;
            }
            Err(error) => {
                tracing::error!(%error, "the database answers but its schema cannot be brought up to date; still serving from the local copy");
            }
        }
    }
}
