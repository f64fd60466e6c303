//! Documents built for one view (an organisation at a moment) from cached upstream documents:
//! built once, reused while the policy snapshot (its generation) and the upstream documents they
//! were built from are the same, for a short while (time-based rules such as cooldowns and pilot
//! expiries change without either). One build at a time per document and view; while a document
//! is merely old, the others keep getting the old one instead of waiting.

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use formulary_core::OrgCode;

use crate::engine::single_flight::SingleFlight;

/// Which built document: the front-end's own key (a project, a tree) in one view.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct ViewKey {
    /// The front-end's key for the document (including anything that changes its bytes, such as
    /// a files base path).
    pub(crate) document: String,
    /// The organisation.
    pub(crate) organisation: OrgCode,
    /// The snapshot day of a dated view; `None` for now.
    pub(crate) day: Option<NaiveDate>,
}

/// What a built document was built from: a snapshot generation and the cached upstream
/// documents (compared by identity: a revalidation that changed nothing keeps the same one).
#[derive(Clone)]
pub(crate) struct Sources {
    generation: i64,
    documents: Vec<Arc<dyn Any + Send + Sync>>,
}

impl Sources {
    /// Sources: the snapshot generation and the documents used.
    pub(crate) fn new(generation: i64, documents: Vec<Arc<dyn Any + Send + Sync>>) -> Sources {
        Sources {
            generation,
            documents,
        }
    }

    fn same_as(&self, other: &Sources) -> bool {
        self.generation == other.generation
            && self.documents.len() == other.documents.len()
            && self
                .documents
                .iter()
                .zip(&other.documents)
                .all(|(left, right)| {
                    std::ptr::eq(
                        Arc::as_ptr(left).cast::<()>(),
                        Arc::as_ptr(right).cast::<()>(),
                    )
                })
    }
}

struct Built<V> {
    sources: Sources,
    at: Instant,
    served: Arc<V>,
}

/// The built documents of one kind.
pub(crate) struct Views<V> {
    built: Mutex<HashMap<ViewKey, Built<V>>>,
    building: SingleFlight,
    reuse: Duration,
    capacity: usize,
    /// Whether a copy built from other sources is served while it is rebuilt (documents), or
    /// never (decisions that refuse files: a policy change must reach every request at once).
    previous_while_building: bool,
}

impl<V> std::fmt::Debug for Views<V> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Views")
            .field("reuse", &self.reuse)
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl<V: Send + Sync> Views<V> {
    /// Built documents reused for `reuse`, at most `capacity` kept.
    pub(crate) fn new(reuse: Duration, capacity: usize) -> Views<V> {
        Views {
            built: Mutex::new(HashMap::new()),
            building: SingleFlight::default(),
            reuse,
            capacity,
            previous_while_building: true,
        }
    }

    /// Like [`Views::new`], but a copy built from other sources (an older policy) is never
    /// served: a request arriving during a rebuild waits for it.
    pub(crate) fn exact(reuse: Duration, capacity: usize) -> Views<V> {
        Views {
            previous_while_building: false,
            ..Views::new(reuse, capacity)
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ViewKey, Built<V>>> {
        self.built
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The document built for `key` from the same sources, and whether it is still within its
    /// reuse period.
    fn current(&self, key: &ViewKey, sources: &Sources) -> Option<(Arc<V>, bool)> {
        self.lock()
            .get(key)
            .filter(|built| built.sources.same_as(sources))
            .map(|built| (Arc::clone(&built.served), built.at.elapsed() < self.reuse))
    }

    /// The document built for `key` from the same sources while it is within its reuse period
    /// (what [`Views::get_or_build`] answers first, without preparing a build).
    pub(crate) fn reusable(&self, key: &ViewKey, sources: &Sources) -> Option<Arc<V>> {
        self.current(key, sources)
            .and_then(|(served, reusable)| reusable.then_some(served))
    }

    /// The last document built for `key`, whatever it was built from (so that a rebuild that
    /// changes nothing can keep the same bytes).
    pub(crate) fn previous(&self, key: &ViewKey) -> Option<Arc<V>> {
        self.lock().get(key).map(|built| Arc::clone(&built.served))
    }

    /// The document for `key` built from `sources`: reused when it can be, else built by
    /// `build` (one build at a time per key; while it runs, other requests get the previous
    /// copy, and only the request that started it waits for it).
    pub(crate) async fn get_or_build<E, F>(
        &self,
        key: ViewKey,
        sources: Sources,
        build: F,
    ) -> Result<Arc<V>, E>
    where
        F: Future<Output = Result<V, E>>,
    {
        let current = self.current(&key, &sources);
        if let Some((served, true)) = current {
            // The common case, answered without building the flight key.
            return Ok(served);
        }
        let flight_key = format!(
            "{}\u{0}{}\u{0}{:?}",
            key.document, key.organisation, key.day
        );
        let _building = match current {
            Some((served, true)) => return Ok(served),
            Some((served, false)) => match self.building.try_lock(&flight_key) {
                Some(guard) => guard,
                None => return Ok(served),
            },
            // Built from other sources (the policy or an upstream document changed): while
            // someone else rebuilds it, the previous copy is served rather than waited on.
            None => {
                let previous = self
                    .previous_while_building
                    .then(|| self.previous(&key))
                    .flatten();
                let guard = match (self.building.try_lock(&flight_key), previous) {
                    (Some(guard), _) => guard,
                    (None, Some(previous)) => return Ok(previous),
                    (None, None) => self.building.lock(&flight_key).await,
                };
                if let Some((served, true)) = self.current(&key, &sources) {
                    return Ok(served);
                }
                guard
            }
        };
        let served = Arc::new(build.await?);
        let mut built = self.lock();
        if built.len() >= self.capacity {
            built.clear();
        }
        built.insert(
            key,
            Built {
                sources,
                at: Instant::now(),
                served: Arc::clone(&served),
            },
        );
        Ok(served)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(document: &str) -> ViewKey {
        ViewKey {
            document: document.to_owned(),
            organisation: "RJ1".parse().expect("code"),
            day: None,
        }
    }

    #[tokio::test]
    async fn a_document_is_rebuilt_when_the_policy_or_the_upstream_changes() {
        let views: Views<String> = Views::new(Duration::from_secs(60), 10);
        let upstream: Arc<dyn Any + Send + Sync> = Arc::new(1u8);
        let build = |text: &'static str| async move { Ok::<_, ()>(text.to_owned()) };
        let first = views
            .get_or_build(
                key("a"),
                Sources::new(1, vec![Arc::clone(&upstream)]),
                build("one"),
            )
            .await
            .expect("built");
        let again = views
            .get_or_build(
                key("a"),
                Sources::new(1, vec![Arc::clone(&upstream)]),
                build("two"),
            )
            .await
            .expect("reused");
        assert!(Arc::ptr_eq(&first, &again), "same sources: reused");
        let new_policy = views
            .get_or_build(
                key("a"),
                Sources::new(2, vec![Arc::clone(&upstream)]),
                build("three"),
            )
            .await
            .expect("rebuilt");
        assert_eq!(*new_policy, "three");
        let new_upstream: Arc<dyn Any + Send + Sync> = Arc::new(1u8);
        let rebuilt = views
            .get_or_build(key("a"), Sources::new(2, vec![new_upstream]), build("four"))
            .await
            .expect("rebuilt");
        assert_eq!(*rebuilt, "four");
        assert_eq!(
            views.previous(&key("a")).as_deref(),
            Some(&"four".to_owned())
        );
    }

    #[tokio::test]
    async fn while_a_view_rebuilds_other_requests_get_the_previous_copy() {
        let views: Arc<Views<String>> = Arc::new(Views::new(Duration::from_secs(60), 10));
        let upstream: Arc<dyn Any + Send + Sync> = Arc::new(1u8);
        views
            .get_or_build(
                key("a"),
                Sources::new(1, vec![Arc::clone(&upstream)]),
                async { Ok::<_, ()>("old".to_owned()) },
            )
            .await
            .expect("built");
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        let rebuilding = tokio::spawn({
            let (views, upstream) = (Arc::clone(&views), Arc::clone(&upstream));
            async move {
                views
                    .get_or_build(key("a"), Sources::new(2, vec![upstream]), async {
                        released.await.ok();
                        Ok::<_, ()>("new".to_owned())
                    })
                    .await
            }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let meanwhile = views
            .get_or_build(
                key("a"),
                Sources::new(2, vec![Arc::clone(&upstream)]),
                async { Ok::<_, ()>("should not be built".to_owned()) },
            )
            .await
            .expect("served");
        assert_eq!(*meanwhile, "old", "the previous copy, without waiting");
        release.send(()).expect("the build waits");
        assert_eq!(*rebuilding.await.expect("joined").expect("built"), "new");
    }

    #[tokio::test]
    async fn exact_views_never_serve_a_copy_built_from_an_older_policy() {
        let views: Arc<Views<String>> = Arc::new(Views::exact(Duration::from_secs(60), 10));
        let upstream: Arc<dyn Any + Send + Sync> = Arc::new(1u8);
        views
            .get_or_build(
                key("a"),
                Sources::new(1, vec![Arc::clone(&upstream)]),
                async { Ok::<_, ()>("old".to_owned()) },
            )
            .await
            .expect("built");
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        let rebuilding = tokio::spawn({
            let (views, upstream) = (Arc::clone(&views), Arc::clone(&upstream));
            async move {
                views
                    .get_or_build(key("a"), Sources::new(2, vec![upstream]), async {
                        released.await.ok();
                        Ok::<_, ()>("new".to_owned())
                    })
                    .await
            }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let meanwhile = tokio::spawn({
            let (views, upstream) = (Arc::clone(&views), Arc::clone(&upstream));
            async move {
                views
                    .get_or_build(key("a"), Sources::new(2, vec![upstream]), async {
                        Ok::<_, ()>("built again".to_owned())
                    })
                    .await
            }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!meanwhile.is_finished(), "waits for the rebuild");
        release.send(()).expect("the build waits");
        assert_eq!(*rebuilding.await.expect("joined").expect("built"), "new");
        assert_eq!(
            *meanwhile.await.expect("joined").expect("served"),
            "new",
            "the rebuilt copy, not the old one"
        );
    }
}
