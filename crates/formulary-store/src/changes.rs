//! Change notifications between replicas. Every change of state appends an audit row (the change
//! counter); on PostgreSQL the same transaction also sends `NOTIFY formulary_changes, '<seq>'`,
//! which PostgreSQL delivers to every listening connection when (and only if) the transaction
//! commits. Replicas listen on a connection of their own and rebuild their policy snapshot at
//! once, instead of waiting for the next poll of the counter. SQLite has no such channel: a
//! single-file database has one server process, so polling stays its only mechanism.

use sqlx::postgres::PgListener;
use sqlx::AnyConnection;

use crate::database::Database;
use crate::error::StoreError;

/// The PostgreSQL channel on which each new audit row's position is announced.
pub const CHANGES_CHANNEL: &str = "formulary_changes";

/// Announces the audit row `seq` inside the caller's transaction (PostgreSQL only; the
/// notification is delivered at commit and dropped on rollback, so listeners never hear of a
/// change that did not happen).
pub(crate) async fn announce(connection: &mut AnyConnection, seq: i64) -> Result<(), StoreError> {
    if connection.backend_name() != "PostgreSQL" {
        return Ok(());
    }
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CHANGES_CHANNEL)
        .bind(seq.to_string())
        .execute(&mut *connection)
        .await?;
    Ok(())
}

/// What a [`ChangeListener`] heard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeEvent {
    /// A change committed; its audit position (the newest one, when several arrived together).
    Changed(i64),
    /// The listening connection was lost and is being re-established: changes made meanwhile
    /// were not announced, so the listener must re-read the counter.
    Lost,
}

/// A dedicated PostgreSQL connection listening on [`CHANGES_CHANNEL`].
pub struct ChangeListener {
    listener: PgListener,
}

impl std::fmt::Debug for ChangeListener {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("ChangeListener")
    }
}

impl ChangeListener {
    /// Waits for the next change. Notifications that arrived together are folded into one
    /// event carrying the newest position, so a burst of writes costs one snapshot rebuild.
    pub async fn next(&mut self) -> Result<ChangeEvent, StoreError> {
        let Some(first) = self.listener.try_recv().await? else {
            return Ok(ChangeEvent::Lost);
        };
        let mut newest = first.payload().parse::<i64>().unwrap_or(0);
        while let Some(more) = self.listener.next_buffered() {
            newest = newest.max(more.payload().parse::<i64>().unwrap_or(0));
        }
        Ok(ChangeEvent::Changed(newest))
    }
}

impl Database {
    /// Opens a connection that listens for changes made by any replica (or the CLI), or `None`
    /// on SQLite, which has no notifications (poll [`Database::change_counter`] instead).
    pub async fn listen_for_changes(&self) -> Result<Option<ChangeListener>, StoreError> {
        let Some(url) = self.listen_url() else {
            return Ok(None);
        };
        let mut listener = PgListener::connect(url).await?;
        listener.listen(CHANGES_CHANNEL).await?;
        Ok(Some(ChangeListener { listener }))
    }
}
