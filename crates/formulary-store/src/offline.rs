//! Serving while the database is down at start: a [`Database`] opened with
//! [`Database::open_deferred`] is *offline* until [`Database::go_online`]. While offline, the
//! reads serving needs (cached upstream documents, cached file identities, release evidence)
//! are answered from the [`LocalCopy`] at once, and everything else (every change, every other
//! read) fails at once with [`StoreError::Unavailable`] instead of waiting for connections that
//! cannot be made.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use crate::database::Database;
use crate::error::StoreError;
use crate::local_copy::LocalCopy;

/// Shared by every clone of a [`Database`].
#[derive(Debug, Default)]
pub(crate) struct OfflineState {
    offline: AtomicBool,
    copy: OnceLock<Arc<LocalCopy>>,
}

impl OfflineState {
    pub(crate) fn set_offline(&self, offline: bool) {
        self.offline.store(offline, Ordering::SeqCst);
    }
}

impl Database {
    /// True while the database has not been reached since an offline start: the local copy
    /// answers what it can, the rest fails with [`StoreError::Unavailable`].
    pub fn is_offline(&self) -> bool {
        self.offline.offline.load(Ordering::SeqCst)
    }

    /// Ends the offline state: the database answers and its schema is up to date.
    pub fn go_online(&self) {
        self.offline.set_offline(false);
    }

    /// Keeps `copy` up to date with what serving reads from now on (and, while offline,
    /// answers from it). Only the first copy attached counts.
    pub fn attach_local_copy(&self, copy: Arc<LocalCopy>) {
        let _ = self.offline.copy.set(copy);
    }

    /// The local copy attached, if any.
    pub fn local_copy(&self) -> Option<&Arc<LocalCopy>> {
        self.offline.copy.get()
    }

    /// The local copy when this database is offline (reads answer from it).
    pub(crate) fn offline_copy(&self) -> Result<Option<&Arc<LocalCopy>>, StoreError> {
        if !self.is_offline() {
            return Ok(None);
        }
        match self.local_copy() {
            Some(copy) => Ok(Some(copy)),
            None => Err(unavailable()),
        }
    }

    /// Fails at once while offline.
    pub(crate) fn ensure_online(&self) -> Result<(), StoreError> {
        if self.is_offline() {
            Err(unavailable())
        } else {
            Ok(())
        }
    }
}

fn unavailable() -> StoreError {
    StoreError::Unavailable("it could not be reached when this server started".to_owned())
}
