//! A value read from the store at most once per time-to-live, shared by every request in
//! between, and kept when the store fails: for listings (the PyPI root) that would otherwise
//! ask the database on every request.

use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// The last value computed, and when.
#[derive(Debug)]
pub(crate) struct Timed<T> {
    ttl: Duration,
    current: RwLock<Option<(Instant, Arc<T>)>>,
    /// One computation at a time; the others wait for it and share its value.
    computing: tokio::sync::Mutex<()>,
}

impl<T> Timed<T> {
    /// Nothing computed yet; values are reused for `ttl`.
    pub(crate) fn new(ttl: Duration) -> Timed<T> {
        Timed {
            ttl,
            current: RwLock::new(None),
            computing: tokio::sync::Mutex::new(()),
        }
    }

    fn fresh(&self) -> Option<Arc<T>> {
        let current = self
            .current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        current
            .as_ref()
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, value)| Arc::clone(value))
    }

    /// The value, computed by `compute` when the last one is older than the time-to-live (or
    /// was invalidated). When `compute` fails, the last value is served if there is one.
    pub(crate) async fn get<F, Fut, E>(&self, compute: F) -> Result<Arc<T>, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: std::fmt::Display,
    {
        if let Some(value) = self.fresh() {
            return Ok(value);
        }
        let _computing = self.computing.lock().await;
        if let Some(value) = self.fresh() {
            return Ok(value);
        }
        match compute().await {
            Ok(value) => {
                let value = Arc::new(value);
                *self
                    .current
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) =
                    Some((Instant::now(), Arc::clone(&value)));
                Ok(value)
            }
            Err(error) => {
                let last = self
                    .current
                    .read()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .as_ref()
                    .map(|(_, value)| Arc::clone(value));
                match last {
                    Some(value) => {
                        tracing::warn!("serving the last listing computed: {error}");
                        Ok(value)
                    }
                    None => Err(error),
                }
            }
        }
    }

    /// The next `get` computes again (the last value stays as the fallback).
    pub(crate) fn invalidate(&self) {
        let mut current = self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((at, _)) = current.as_mut() {
            *at = Instant::now()
                .checked_sub(self.ttl)
                .unwrap_or_else(Instant::now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn computes_once_per_ttl_and_keeps_the_last_value_when_the_store_fails() {
        let timed = Timed::new(Duration::from_secs(60));
        let calls = AtomicUsize::new(0);
        let compute = |value: u32| {
            calls.fetch_add(1, Ordering::SeqCst);
            async move { Ok::<u32, String>(value) }
        };
        assert_eq!(*timed.get(|| compute(1)).await.unwrap(), 1);
        assert_eq!(*timed.get(|| compute(2)).await.unwrap(), 1, "reused");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        timed.invalidate();
        assert_eq!(
            *timed.get(|| compute(3)).await.unwrap(),
            3,
            "computed again"
        );
        timed.invalidate();
        let failed = timed
            .get(|| async { Err::<u32, String>("database down".to_owned()) })
            .await;
        assert_eq!(*failed.unwrap(), 3, "the last value when the store fails");
        let empty: Timed<u32> = Timed::new(Duration::from_secs(60));
        assert!(empty
            .get(|| async { Err::<u32, String>("database down".to_owned()) })
            .await
            .is_err());
    }
}
