use std::sync::Arc;

use formulary_store::Database;

use crate::snapshot::SnapshotHolder;

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The record store.
    pub database: Database,
    /// The policy snapshot in force.
    pub snapshot: Arc<SnapshotHolder>,
    /// A short description of where records live (`SQLite` or `PostgreSQL`), for the landing page.
    pub storage_label: String,
}

impl AppState {
    /// State over an opened database, with a freshly loaded snapshot.
    pub async fn new(database: Database) -> Result<AppState, formulary_store::StoreError> {
        let snapshot = Arc::new(SnapshotHolder::load(&database).await?);
        let storage_label = if database.is_sqlite() {
            "SQLite"
        } else {
            "PostgreSQL"
        }
        .to_owned();
        Ok(AppState {
            database,
            snapshot,
            storage_label,
        })
    }
}
