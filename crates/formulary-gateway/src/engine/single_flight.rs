//! One lock per key: concurrent requests for the same uncached thing do the work once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// One lock per key, so that concurrent requests for the same uncached file fetch it once: the
/// first holder fetches, the others wait and then find it cached.
#[derive(Debug, Default)]
pub(crate) struct SingleFlight {
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl SingleFlight {
    /// Takes the lock for `key`, waiting while another task holds it.
    pub(crate) async fn lock(&self, key: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self
                .locks
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            // Drop locks nobody holds or waits for, so the map does not grow without bound.
            locks.retain(|_, lock| Arc::strong_count(lock) > 1);
            Arc::clone(locks.entry(key.to_owned()).or_default())
        };
        lock.lock_owned().await
    }

    /// Takes the lock for `key` if nobody holds it.
    pub(crate) fn try_lock(&self, key: &str) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        let lock = {
            let mut locks = self
                .locks
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            locks.retain(|_, lock| Arc::strong_count(lock) > 1);
            Arc::clone(locks.entry(key.to_owned()).or_default())
        };
        lock.try_lock_owned().ok()
    }
}
