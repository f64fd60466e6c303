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
        let origin =
            Url::parse(&page.upstream).map_err(|error| formulary_store::StoreError::Corrupt {
                what: "cached upstream document",
                why: format!("its origin '{}' is not a URL: {error}", page.upstream),
            })?;
        Ok(Freshness::new(origin, page.etag.clone(), page.fetched_at))
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

/// The cache of one kind of document.
#[derive(Debug)]
pub(crate) struct Revalidating<T> {
    items: Mutex<HashMap<String, Arc<T>>>,
    flight: SingleFlight,
    revalidate_after: chrono::Duration,
}

impl<T: Revalidated> Revalidating<T> {
    /// A cache whose copies are revalidated once older than `revalidate_after` (ten minutes
    /// when the setting is too large to represent).
    pub(crate) fn new(revalidate_after: std::time::Duration) -> Revalidating<T> {
        Revalidating {
            items: Mutex::new(HashMap::new()),
            flight: SingleFlight::default(),
            revalidate_after: chrono::Duration::from_std(revalidate_after)
                .unwrap_or(chrono::Duration::minutes(10)),
        }
    }

    /// Keeps `item` as the current copy of `name`.
    pub(crate) fn remember(&self, name: &str, item: T) -> Arc<T> {
        let item = Arc::new(item);
        self.items
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(name.to_owned(), Arc::clone(&item));
        item
    }

    fn remembered(&self, name: &str) -> Option<Arc<T>> {
        self.items
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(name)
            .cloned()
    }

    fn fresh(&self, name: &str) -> Option<Arc<T>> {
        self.remembered(name).filter(|item| {
            let freshness = item.freshness();
            !freshness.stale && Utc::now() - freshness.checked_at < self.revalidate_after
        })
    }

    /// The current copy of `name`: from memory while fresh; else the stored copy (`load`, once)
    /// revalidated against each upstream in turn (`ask`, with the stored entity tag), a new
    /// document turned into a new copy (`build`).
    pub(crate) async fn get<'a, D>(
        &'a self,
        name: &'a str,
        upstreams: &'a [Url],
        load: Step<'a, Result<Option<T>, GatewayError>>,
        ask: impl Fn(Url, Option<String>) -> Step<'a, Result<Answer<D>, UpstreamFailure>>,
        build: impl Fn(Url, D, Option<Arc<T>>) -> Step<'a, Result<T, GatewayError>>,
    ) -> Result<Lookup<T>, GatewayError> {
        if let Some(item) = self.fresh(name) {
            return Ok(Lookup::Found(item));
        }
        let _flight = self.flight.lock(name).await;
        if let Some(item) = self.fresh(name) {
            return Ok(Lookup::Found(item));
        }
        if upstreams.is_empty() {
            // Only the store can change (`mirror import` in another process): read it again
            // once the copy in memory is as old as a revalidation would be.
            return Ok(match load.await? {
                Some(item) => Lookup::Found(self.remember(name, item.rechecked(Utc::now(), false))),
                None => match self.remembered(name) {
                    Some(item) => Lookup::Found(item),
                    None => Lookup::Absent(None),
                },
            });
        }
        let cached = match self.remembered(name) {
            Some(item) => Some(item),
            None => load.await?.map(|item| self.remember(name, item)),
        };
        let mut failure = None;
        for upstream in upstreams {
            let etag = cached
                .as_ref()
                .filter(|item| &item.freshness().origin == upstream)
                .and_then(|item| item.freshness().etag.clone());
            match ask(upstream.clone(), etag).await {
                Ok(Answer::Document(document)) => {
                    let item = build(upstream.clone(), document, cached.clone()).await?;
                    return Ok(Lookup::Found(self.remember(name, item)));
                }
                Ok(Answer::NotModified) => {
                    if let Some(item) = &cached {
                        return Ok(Lookup::Found(
                            self.remember(name, item.rechecked(Utc::now(), false)),
                        ));
                    }
                }
                Ok(Answer::Missing) => {}
                Err(error) => {
                    tracing::warn!(document = name, %error, "upstream failed");
                    failure = Some(error);
                }
            }
        }
        match (failure, cached) {
            // Try again soon, not at every request.
            (Some(_), Some(item)) => {
                let retry_at = Utc::now() - self.revalidate_after + chrono::Duration::seconds(30);
                Ok(Lookup::Found(
                    self.remember(name, item.rechecked(retry_at, true)),
                ))
            }
            (Some(error), None) => Err(GatewayError::Upstream(error)),
            (None, cached) => Ok(Lookup::Absent(cached)),
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
}
