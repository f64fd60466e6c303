//! Index documents cached from upstreams and kept fresh: fresh copies come from memory; one
//! refresh at a time per document; entity-tag revalidation; several upstreams in order; and when
//! every upstream fails, the cached copy, marked stale. Shared by every front-end (a PyPI project
//! page, a CRAN `PACKAGES` tree).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use url::Url;

use crate::engine::single_flight::SingleFlight;
use crate::engine::upstream::UpstreamFailure;
use crate::error::GatewayError;

/// Where a cached document came from and when it was last checked: the part every cached
/// document has, whatever the front-end.
#[derive(Debug, Clone)]
pub(crate) struct Freshness {
    /// The upstream it came from (`formulary-blob:…` for imported files).
    pub(crate) origin: Url,
    /// The upstream's entity tag for it.
    pub(crate) etag: Option<String>,
    /// When it was last fetched or confirmed.
    pub(crate) checked_at: DateTime<Utc>,
    /// True when the upstream could not be reached at the last check.
    pub(crate) stale: bool,
}

impl Freshness {
    /// A document fetched (or stored) at `checked_at`.
    pub(crate) fn new(origin: Url, etag: Option<String>, checked_at: DateTime<Utc>) -> Freshness {
        Freshness {
            origin,
            etag,
            checked_at,
            stale: false,
        }
    }

    /// The freshness of a document as the store kept it.
    pub(crate) fn stored(
        page: &formulary_store::UpstreamDocument,
    ) -> Result<Freshness, GatewayError> {
        Freshness::stored_ref(page.as_ref())
    }

    /// As [`Freshness::stored`], for a document lent by the store.
    pub(crate) fn stored_ref(
        page: formulary_store::UpstreamDocumentRef<'_>,
    ) -> Result<Freshness, GatewayError> {
        let origin =
            Url::parse(page.upstream).map_err(|error| formulary_store::StoreError::Corrupt {
                what: "cached upstream document",
                why: format!("its origin '{}' is not a URL: {error}", page.upstream),
            })?;
        Ok(Freshness::new(
            origin,
            page.etag.map(str::to_owned),
            page.fetched_at,
        ))
    }
}

/// What a front-end caches for one document: its content and its [`Freshness`].
pub(crate) trait Revalidated: Sized {
    /// Where it came from and when it was last checked.
    fn freshness(&self) -> &Freshness;
    /// The same content with another freshness (cheap: content is shared, not copied).
    fn with_freshness(&self, freshness: Freshness) -> Self;

    /// The same content, checked at `at`.
    fn rechecked(&self, at: DateTime<Utc>, stale: bool) -> Self {
        self.with_freshness(Freshness {
            checked_at: at,
            stale,
            ..self.freshness().clone()
        })
    }
}

/// One step a front-end contributes to a lookup (load, ask, build), as a boxed future.
pub(crate) type Step<'a, R> = std::pin::Pin<Box<dyn std::future::Future<Output = R> + Send + 'a>>;

/// What an upstream answered.
pub(crate) enum Answer<D> {
    /// A new document.
    Document(D),
    /// The cached copy is still current.
    NotModified,
    /// The upstream does not have it.
    Missing,
}

/// The outcome of a lookup.
pub(crate) enum Lookup<T> {
    /// Serve this.
    Found(Arc<T>),
    /// Every upstream says the document does not exist; the stored copy, if any, is given so
    /// that the front-end can decide (imported files still count).
    Absent(Option<Arc<T>>),
}

/// After a failed or unfinished revalidation, how long the cached copy is served without asking
/// the upstream again (an unfinished refresh that completes ends it early).
const RETRY_AFTER_FAILURE: std::time::Duration = std::time::Duration::from_secs(30);

/// The most names remembered as absent upstream at once.
const ABSENT_AT_MOST: usize = 10_000;

/// A refresh running behind the request that started it, its answer type erased.
type Pending = tokio::task::JoinHandle<Box<dyn std::any::Any + Send>>;

/// The cache of one kind of document.
#[derive(Debug)]
pub(crate) struct Revalidating<T> {
    items: Mutex<HashMap<String, Arc<T>>>,
    flight: SingleFlight,
    revalidate_after: chrono::Duration,
    /// How long a request that has a cached copy waits for the upstream before it is served the
    /// cached copy (the refresh goes on behind it).
    patience: std::time::Duration,
    /// Until when a document's cached copy is served without asking (after a failure).
    quiet: Mutex<HashMap<String, tokio::time::Instant>>,
    /// Refreshes that outlived the request that started them, by document and upstream.
    pending: Mutex<HashMap<(String, Url), Pending>>,
    /// Documents every upstream said it does not have, and when: asked again only once that
    /// answer is as old as a revalidation would be (negative caching, as proxies cache a 404),
    /// so that repeated requests for something absent neither query the store nor the
    /// upstreams each time.
    absent: Mutex<HashMap<String, chrono::DateTime<Utc>>>,
    /// When set, a request waits at most the patience even with nothing cached (the fetch goes
    /// on behind, and the request goes on without the document).
    always_within_patience: bool,
}

/// What waiting for an upstream gave.
enum Waited<D> {
    /// Its answer.
    Answer(Result<Answer<D>, UpstreamFailure>),
    /// No answer within the request's patience; the refresh goes on.
    Pending,
}

fn lock<V>(mutex: &Mutex<V>) -> std::sync::MutexGuard<'_, V> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl<T: Revalidated> Revalidating<T> {
    /// A cache whose copies are revalidated once older than `revalidate_after` (ten minutes
    /// when the setting is too large to represent), where a request that has a cached copy waits
    /// at most `patience` for the upstream.
    pub(crate) fn new(
        revalidate_after: std::time::Duration,
        patience: std::time::Duration,
    ) -> Revalidating<T> {
        Revalidating {
            items: Mutex::new(HashMap::new()),
            flight: SingleFlight::default(),
            revalidate_after: chrono::Duration::from_std(revalidate_after)
                .unwrap_or(chrono::Duration::minutes(10)),
            patience,
            quiet: Mutex::default(),
            pending: Mutex::default(),
            absent: Mutex::default(),
            always_within_patience: false,
        }
    }

    /// The same cache, for documents a request can do without: with nothing cached, a request
    /// still waits at most the patience, and is answered as if the document did not exist
    /// ([`Lookup::Absent`]) while the fetch goes on behind; the next request after it finishes
    /// gets it.
    pub(crate) fn answering_within_patience(mut self) -> Revalidating<T> {
        self.always_within_patience = true;
        self
    }

    /// How long a request that has a cached copy waits for the upstream.
    pub(crate) fn patience(&self) -> std::time::Duration {
        self.patience
    }

    /// Keeps `item` as the current copy of `name`.
    pub(crate) fn remember(&self, name: &str, item: T) -> Arc<T> {
        lock(&self.absent).remove(name);
        let item = Arc::new(item);
        lock(&self.items).insert(name.to_owned(), Arc::clone(&item));
        item
    }

    /// Makes the copy of `name` in memory due for revalidation at the next request (it is still
    /// served while the upstream is asked, within the patience). Also ends a quiet period.
    pub(crate) fn expire(&self, name: &str) {
        lock(&self.quiet).remove(name);
        lock(&self.absent).remove(name);
        let mut items = lock(&self.items);
        if let Some(item) = items.get(name) {
            let long_ago = item.freshness().checked_at - self.revalidate_after;
            let expired = Arc::new(item.rechecked(long_ago, item.freshness().stale));
            items.insert(name.to_owned(), expired);
        }
    }

    fn remembered(&self, name: &str) -> Option<Arc<T>> {
        lock(&self.items).get(name).cloned()
    }

    /// The copy of `name` in memory while it needs no revalidation (what [`Revalidating::get`]
    /// answers first; a front-end's hot path can ask this before preparing a lookup).
    pub(crate) fn fresh(&self, name: &str) -> Option<Arc<T>> {
        self.remembered(name).filter(|item| {
            let freshness = item.freshness();
            !freshness.stale && Utc::now() - freshness.checked_at < self.revalidate_after
        })
    }

    /// True while every upstream's answer that `name` does not exist is recent enough to stand.
    fn recently_absent(&self, name: &str) -> bool {
        lock(&self.absent)
            .get(name)
            .is_some_and(|at| Utc::now() - *at < self.revalidate_after)
    }

    /// Remembers that every upstream said `name` does not exist (a bounded memory: beyond
    /// [`ABSENT_AT_MOST`] names it is emptied, so made-up names cannot grow it without end).
    fn remember_absent(&self, name: &str) {
        let mut absent = lock(&self.absent);
        if absent.len() >= ABSENT_AT_MOST {
            absent.clear();
        }
        absent.insert(name.to_owned(), Utc::now());
    }

    /// True while the cached copy of `name` is served without asking: within the quiet period
    /// after a failure, unless a refresh left running has finished since.
    fn quiet(&self, name: &str) -> bool {
        let until = lock(&self.quiet).get(name).copied();
        let Some(until) = until else {
            return false;
        };
        if tokio::time::Instant::now() >= until {
            lock(&self.quiet).remove(name);
            return false;
        }
        !lock(&self.pending)
            .iter()
            .any(|((document, _), task)| document == name && task.is_finished())
    }

    /// Serves `item` marked stale, and asks again only after the quiet period.
    fn serve_stale(&self, name: &str, item: &T) -> Lookup<T> {
        lock(&self.quiet).insert(
            name.to_owned(),
            tokio::time::Instant::now() + RETRY_AFTER_FAILURE,
        );
        Lookup::Found(self.remember(name, item.rechecked(item.freshness().checked_at, true)))
    }

    /// Asks `upstream` (or takes the answer of a refresh left running), waiting until
    /// `deadline` when there is one.
    async fn ask_upstream<D: Send + 'static>(
        &self,
        name: &str,
        upstream: &Url,
        etag: Option<String>,
        ask: &impl Fn(Url, Option<String>) -> Step<'static, Result<Answer<D>, UpstreamFailure>>,
        deadline: Option<tokio::time::Instant>,
    ) -> Waited<D> {
        let key = (name.to_owned(), upstream.clone());
        let left_running = lock(&self.pending).remove(&key);
        let mut task = left_running.unwrap_or_else(|| {
            let asking = ask(upstream.clone(), etag);
            tokio::spawn(async move { Box::new(asking.await) as Box<dyn std::any::Any + Send> })
        });
        let outcome = match deadline {
            None => (&mut task).await,
            Some(deadline) => match tokio::time::timeout_at(deadline, &mut task).await {
                Ok(outcome) => outcome,
                Err(_) => {
                    lock(&self.pending).insert(key, task);
                    return Waited::Pending;
                }
            },
        };
        let failed = |why: String| {
            Waited::Answer(Err(UpstreamFailure::Unreachable {
                url: upstream.to_string(),
                why,
            }))
        };
        match outcome {
            Ok(answer) => match answer.downcast::<Result<Answer<D>, UpstreamFailure>>() {
                Ok(answer) => Waited::Answer(*answer),
                Err(_) => failed("a refresh left running gave another kind of document".to_owned()),
            },
            Err(error) => failed(format!("the refresh stopped: {error}")),
        }
    }

    /// The current copy of `name`: from memory while fresh; else the stored copy (`load`, once)
    /// revalidated against each upstream in turn (`ask`, with the stored entity tag), a new
    /// document turned into a new copy (`build`).
    ///
    /// A request that has a cached copy waits at most the patience for the upstreams, then is
    /// served the cached copy marked stale while the refresh goes on behind it; the next request
    /// after it finishes uses its answer. After a failure the cached copy is served without
    /// asking for a while. A new document that cannot be stored (database or disk down) leaves
    /// the cached copy served.
    pub(crate) async fn get<'a, D: Send + 'static>(
        &'a self,
        name: &'a str,
        upstreams: &'a [Url],
        load: Step<'a, Result<Option<T>, GatewayError>>,
        ask: impl Fn(Url, Option<String>) -> Step<'static, Result<Answer<D>, UpstreamFailure>>,
        build: impl Fn(Url, D, Option<Arc<T>>) -> Step<'a, Result<T, GatewayError>>,
    ) -> Result<Lookup<T>, GatewayError> {
        if let Some(item) = self.fresh(name) {
            return Ok(Lookup::Found(item));
        }
        if self.recently_absent(name) {
            return Ok(Lookup::Absent(self.remembered(name)));
        }
        let _flight = self.flight.lock(name).await;
        if let Some(item) = self.fresh(name) {
            return Ok(Lookup::Found(item));
        }
        if self.recently_absent(name) {
            return Ok(Lookup::Absent(self.remembered(name)));
        }
        if upstreams.is_empty() {
            // Only the store can change (`mirror import` in another process): read it again
            // once the copy in memory is as old as a revalidation would be.
            return Ok(match load.await {
                Ok(Some(item)) => {
                    Lookup::Found(self.remember(name, item.rechecked(Utc::now(), false)))
                }
                Ok(None) => match self.remembered(name) {
                    Some(item) => Lookup::Found(item),
                    None => Lookup::Absent(None),
                },
                // The store is down: what is in memory is still served.
                Err(error) => match self.remembered(name) {
                    Some(item) => {
                        tracing::warn!(document = name, %error, "could not read the store; serving the copy in memory");
                        Lookup::Found(item)
                    }
                    None => return Err(error),
                },
            });
        }
        let cached = match self.remembered(name) {
            Some(item) => Some(item),
            None => load.await?.map(|item| self.remember(name, item)),
        };
        if let Some(item) = &cached {
            if self.quiet(name) {
                return Ok(Lookup::Found(Arc::clone(item)));
            }
        }
        let deadline = (cached.is_some() || self.always_within_patience)
            .then(|| tokio::time::Instant::now() + self.patience);
        let mut failure = None;
        let mut unanswered = false;
        for upstream in upstreams {
            let etag = cached
                .as_ref()
                .filter(|item| &item.freshness().origin == upstream)
                .and_then(|item| item.freshness().etag.clone());
            let answer = match self
                .ask_upstream(name, upstream, etag, &ask, deadline)
                .await
            {
                Waited::Answer(answer) => answer,
                Waited::Pending => {
                    if let Some(item) = &cached {
                        tracing::info!(document = name, %upstream, patience_ms = self.patience.as_millis() as u64, "the upstream is slow: serving the cached copy while the refresh goes on");
                        return Ok(self.serve_stale(name, item));
                    }
                    tracing::info!(document = name, %upstream, patience_ms = self.patience.as_millis() as u64, "the upstream is slow: going on without this document while it is fetched behind");
                    unanswered = true;
                    continue;
                }
            };
            match answer {
                Ok(Answer::Document(document)) => {
                    // Storing it is bounded too when a cached copy can be served instead: a
                    // database that hangs must not hold the client (at least half a second,
                    // so that a sound store always finishes).
                    let building = build(upstream.clone(), document, cached.clone());
                    let built = match deadline {
                        None => Some(building.await),
                        Some(deadline) => {
                            let deadline = deadline.max(
                                tokio::time::Instant::now() + std::time::Duration::from_millis(500),
                            );
                            tokio::time::timeout_at(deadline, building).await.ok()
                        }
                    };
                    let Some(built) = built else {
                        tracing::error!(document = name, "could not store a new upstream document in time (database slow or down?); serving the cached copy");
                        if let Some(item) = &cached {
                            return Ok(self.serve_stale(name, item));
                        }
                        unanswered = true;
                        continue;
                    };
                    match built {
                        Ok(item) => {
                            lock(&self.quiet).remove(name);
                            return Ok(Lookup::Found(self.remember(name, item)));
                        }
                        Err(GatewayError::HeldBack { why }) => {
                            // The cached copy stays, as current: the upstream answered.
                            tracing::warn!(document = name, %upstream, %why, "a suspicious upstream document is held back; the cached copy stays");
                            unanswered = true;
                            if let Some(item) = &cached {
                                return Ok(Lookup::Found(
                                    self.remember(name, item.rechecked(Utc::now(), false)),
                                ));
                            }
                        }
                        Err(GatewayError::Store(error)) if cached.is_some() => {
                            tracing::error!(document = name, %error, "could not store a new upstream document (database or disk down?); serving the cached copy");
                            if let Some(item) = &cached {
                                return Ok(self.serve_stale(name, item));
                            }
                        }
                        Err(error) => return Err(error),
                    }
                }
                Ok(Answer::NotModified) => {
                    if let Some(item) = &cached {
                        lock(&self.quiet).remove(name);
                        return Ok(Lookup::Found(
                            self.remember(name, item.rechecked(Utc::now(), false)),
                        ));
                    }
                    // "Not modified" with nothing cached answers nothing.
                    unanswered = true;
                }
                Ok(Answer::Missing) => {}
                Err(error) => {
                    tracing::warn!(document = name, %error, "upstream failed");
                    failure = Some(error);
                }
            }
        }
        match (failure, cached) {
            (Some(_), Some(item)) => Ok(self.serve_stale(name, &item)),
            (Some(error), None) => Err(GatewayError::Upstream(error)),
            (None, cached) => {
                if !unanswered {
                    self.remember_absent(name);
                }
                Ok(Lookup::Absent(cached))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Page {
        freshness: Freshness,
        text: String,
    }

    impl Revalidated for Page {
        fn freshness(&self) -> &Freshness {
            &self.freshness
        }

        fn with_freshness(&self, freshness: Freshness) -> Page {
            Page {
                freshness,
                text: self.text.clone(),
            }
        }
    }

    #[test]
    fn stored_origins_of_upstreams_and_imports_are_read_and_rechecks_keep_them() {
        for origin in [
            "https://pypi.org/simple/",
            "formulary-blob:mirror",
            crate::cran::imported::MIRROR_UPSTREAM,
        ] {
            let stored = formulary_store::UpstreamDocument {
                upstream: origin.to_owned(),
                document: String::new(),
                etag: Some("\"v1\"".to_owned()),
                fetched_at: Utc::now(),
            };
            let freshness = Freshness::stored(&stored).expect(origin);
            assert_eq!(freshness.origin.as_str(), origin);
            let page = Page {
                freshness,
                text: "body".to_owned(),
            };
            let later = Utc::now() + chrono::Duration::minutes(5);
            let rechecked = page.rechecked(later, true);
            assert_eq!(rechecked.freshness.origin.as_str(), origin);
            assert_eq!(rechecked.freshness.etag.as_deref(), Some("\"v1\""));
            assert_eq!(rechecked.freshness.checked_at, later);
            assert!(rechecked.freshness.stale);
            assert_eq!(rechecked.text, "body");
        }
        let broken = formulary_store::UpstreamDocument {
            upstream: "not a url".to_owned(),
            document: String::new(),
            etag: None,
            fetched_at: Utc::now(),
        };
        let error = Freshness::stored(&broken).unwrap_err().to_string();
        assert!(error.contains("'not a url' is not a URL"), "{error}");
    }

    /// Asks for `name` with a store that holds nothing and upstreams that say it does not
    /// exist (or, with `have` set, that have it from then on), counting the store's and the
    /// upstreams' calls.
    async fn ask_for(
        cache: &Revalidating<Page>,
        name: &str,
        loads: &std::sync::atomic::AtomicUsize,
        asks: &Arc<std::sync::atomic::AtomicUsize>,
        have: bool,
    ) -> bool {
        use std::sync::atomic::Ordering;
        let upstreams = [Url::parse("http://upstream.invalid/").expect("URL")];
        let lookup = cache
            .get(
                name,
                &upstreams,
                Box::pin(async move {
                    loads.fetch_add(1, Ordering::SeqCst);
                    Ok(None)
                }),
                |_upstream, _etag| {
                    let asks = Arc::clone(asks);
                    Box::pin(async move {
                        asks.fetch_add(1, Ordering::SeqCst);
                        Ok(if have {
                            Answer::Document("text".to_owned())
                        } else {
                            Answer::Missing
                        })
                    })
                },
                |upstream, text: String, _previous| {
                    Box::pin(async move {
                        Ok(Page {
                            freshness: Freshness {
                                origin: upstream,
                                etag: None,
                                checked_at: Utc::now(),
                                stale: false,
                            },
                            text,
                        })
                    })
                },
            )
            .await
            .expect("no failure");
        matches!(lookup, Lookup::Found(_))
    }

    #[tokio::test]
    async fn a_document_no_upstream_has_is_asked_for_again_only_after_the_revalidation_time() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let cache: Revalidating<Page> = Revalidating::new(
            std::time::Duration::from_secs(600),
            std::time::Duration::from_secs(5),
        );
        let (loads, asks) = (AtomicUsize::new(0), Arc::new(AtomicUsize::new(0)));
        for _ in 0..5 {
            assert!(!ask_for(&cache, "absent", &loads, &asks, false).await);
        }
        assert_eq!(
            (loads.load(Ordering::SeqCst), asks.load(Ordering::SeqCst)),
            (1, 1),
            "five requests for a missing document: one store read, one upstream request"
        );
        // Another name is its own question.
        assert!(!ask_for(&cache, "other", &loads, &asks, false).await);
        assert_eq!(asks.load(Ordering::SeqCst), 2);
        // Expiring it (as a refresh does) asks again; once the upstream has it, it is found.
        cache.expire("absent");
        assert!(ask_for(&cache, "absent", &loads, &asks, true).await);
        assert_eq!(asks.load(Ordering::SeqCst), 3);
        assert!(ask_for(&cache, "absent", &loads, &asks, true).await);
        assert_eq!(
            asks.load(Ordering::SeqCst),
            3,
            "then served fresh from memory"
        );

        // With no revalidation time, every request asks, as it does for a found document.
        let eager: Revalidating<Page> =
            Revalidating::new(std::time::Duration::ZERO, std::time::Duration::from_secs(5));
        let (loads, asks) = (AtomicUsize::new(0), Arc::new(AtomicUsize::new(0)));
        for _ in 0..3 {
            assert!(!ask_for(&eager, "absent", &loads, &asks, false).await);
        }
        assert_eq!(asks.load(Ordering::SeqCst), 3);
    }
}
