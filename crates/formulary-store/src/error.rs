use thiserror::Error;

/// Everything that can go wrong in storage, worded for the person who has to fix it.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The database could not be reached or opened.
    #[error("could not open the database at {url}: {source}. Check `database_url` and that the database server is running and reachable")]
    Connect {
        /// The database URL with any password removed.
        url: String,
        /// What the driver said.
        #[source]
        source: sqlx::Error,
    },
    /// The URL names a database kind Formulary does not use.
    #[error("unsupported database URL '{0}': use sqlite://PATH or postgres://USER@HOST/DATABASE")]
    UnsupportedUrl(String),
    /// Applying the schema migrations failed.
    #[error("could not bring the database schema up to date: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A query failed.
    #[error("database error: {0}")]
    Database(sqlx::Error),
    /// A stored row could not be read back (it was written by a newer version, or edited by hand).
    #[error("a stored {what} could not be read: {why}")]
    Corrupt {
        /// What kind of record.
        what: &'static str,
        /// What is wrong with it.
        why: String,
    },
    /// The thing asked for does not exist.
    #[error("{0} was not found")]
    NotFound(String),
    /// The change conflicts with what is stored.
    #[error("{0}")]
    Conflict(String),
    /// The domain refused the input.
    #[error(transparent)]
    Invalid(#[from] formulary_core::CoreError),
    /// Object storage failed.
    #[error("blob storage error: {0}")]
    Blob(#[from] object_store::Error),
    /// The object storage holding blobs did not answer in time, or refused the connection: a
    /// condition expected to pass (the full error is logged where it happened).
    #[error("the blob store {store} is unavailable: {why}")]
    BlobUnavailable {
        /// The store, as configured (never with credentials).
        store: String,
        /// What happened, in words safe to show a client.
        why: String,
    },
    /// A blob's content does not match the digest it was announced with.
    #[error("content digest mismatch: expected {algorithm} {expected}, got {actual}; the file was not stored")]
    DigestMismatch {
        /// The algorithm (`sha256`, `md5` …).
        algorithm: &'static str,
        /// The digest the source announced.
        expected: String,
        /// The digest of the bytes received.
        actual: String,
    },
    /// The content matches its digests but is not the file it claims to be (not a zip, a
    /// tarball of another package …).
    #[error("the file is not what it claims to be: {why}; it was not stored")]
    Rejected {
        /// What the format check found.
        why: String,
    },
    /// The stream that fed a blob failed before it ended.
    #[error("the download was interrupted after {bytes} bytes: {why}; nothing was stored")]
    Interrupted {
        /// How many bytes arrived.
        bytes: u64,
        /// What the source said.
        why: String,
    },
    /// The database cannot be reached and this server runs from its local copy
    /// (`formulary serve` started with the database down): what the copy does not hold, and
    /// every change, must wait for the database.
    #[error("the database is unavailable ({0}); this server only serves what it already holds until it returns")]
    Unavailable(String),
    /// The local copy (`<data_dir>/local-copy/`) could not be written (a full disk, say): the
    /// copy on disk is the previous one, whole, and the writer tries again later.
    #[error("could not write the local copy's {path}: {source}{hint}; the previous copy on disk is kept whole and writing is tried again later")]
    LocalCopyWrite {
        /// The file that could not be written.
        path: String,
        /// What the file system said.
        #[source]
        source: std::io::Error,
        /// What to do about it, when known (", the disk is full: free space on it").
        hint: &'static str,
    },
    /// A write kept conflicting with concurrent writers.
    #[error("the change could not be saved after {0} attempts because other writers kept changing the same records; try again")]
    Contended(u32),
}

impl StoreError {
    pub(crate) fn corrupt(what: &'static str, why: impl ToString) -> StoreError {
        StoreError::Corrupt {
            what,
            why: why.to_string(),
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> StoreError {
        match error {
            // Only the pool used while offline is ever closed before shutdown.
            sqlx::Error::PoolClosed => StoreError::Unavailable(
                "it could not be reached when this server started".to_owned(),
            ),
            other => StoreError::Database(other),
        }
    }
}
