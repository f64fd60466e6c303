use std::sync::Arc;

use formulary_core::OrgCode;
use formulary_gateway::PypiGateway;
use formulary_store::{BlobStore, Database};

use crate::snapshot::SnapshotHolder;

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The record store.
    pub database: Database,
    /// The blob store (cached package files).
    pub blobs: BlobStore,
    /// The policy snapshot in force.
    pub snapshot: Arc<SnapshotHolder>,
    /// The PyPI gateway, when configured.
    pub pypi: Option<Arc<PypiGateway>>,
    /// The CRAN gateway, when configured.
    pub cran: Option<Arc<formulary_gateway::CranGateway>>,
    /// Gateways of organisations that pull from upstreams of their own.
    pub pypi_by_organisation: std::collections::HashMap<OrgCode, Arc<PypiGateway>>,
    /// The organisation whose view the unprefixed gateway paths (`/pypi/…`) serve.
    pub default_organisation: OrgCode,
    /// The download ledger's batching writer; without one, lines are written one by one.
    pub ledger: Option<formulary_gateway::DownloadLedger>,
    /// The blob folder, when blobs live in a local folder: `/readyz` checks it can be written.
    pub blob_dir: Option<std::path::PathBuf>,
    /// A short description of where records live (`SQLite` or `PostgreSQL`), for the landing page.
    pub storage_label: String,
}

impl AppState {
    /// State over an opened database, with a freshly loaded snapshot.
    pub async fn new(
        database: Database,
        blobs: BlobStore,
        pypi: Option<Arc<PypiGateway>>,
        default_organisation: OrgCode,
    ) -> Result<AppState, formulary_store::StoreError> {
        let snapshot = Arc::new(SnapshotHolder::load(&database).await?);
        let storage_label = if database.is_sqlite() {
            "SQLite"
        } else {
            "PostgreSQL"
        }
        .to_owned();
        Ok(AppState {
            database,
            blobs,
            snapshot,
            pypi,
            cran: None,
            pypi_by_organisation: std::collections::HashMap::new(),
            default_organisation,
            ledger: None,
            blob_dir: None,
            storage_label,
        })
    }
}
