//! Upstream files in the blob store: fetched once each (concurrent requests wait for the one
//! fetch), checked against every digest the index published and against the format's own
//! sanity check before they enter the cache, optionally streamed to the first client while they
//! are stored, and remembered in the store (upstream URL, digests, size, blob) so that a
//! restarted server serves them with no upstream. Shared by every front-end.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use formulary_store::{BlobRef, BlobStore, CachedFile, Database, Digests, FormatCheck, StoreError};
use futures::StreamExt;
use url::Url;

use crate::engine::single_flight::SingleFlight;
use crate::engine::upstream::{UpstreamClient, UpstreamFailure};
use crate::error::GatewayError;

/// A file's bytes as they arrive.
pub(crate) type FileBody =
    futures::stream::BoxStream<'static, Result<bytes::Bytes, std::io::Error>>;

/// What [`FileCache::fetch_streaming`] gives.
pub(crate) enum Streamed {
    /// The file is cached: serve this blob.
    Cached(BlobRef),
    /// The bytes as they arrive from upstream, and the length the index or the upstream gave.
    Arriving {
        /// The bytes.
        body: FileBody,
        /// The length, when known.
        length: Option<u64>,
    },
}

/// One upstream file: where it is, what the index says about it, and how to check its format.
#[derive(Clone)]
pub(crate) struct UpstreamFile<'a> {
    /// Its URL.
    pub(crate) url: &'a str,
    /// Its name, for messages.
    pub(crate) filename: &'a str,
    /// Every digest the index published.
    pub(crate) digests: Digests,
    /// The size the index published, if any.
    pub(crate) size: Option<u64>,
    /// The format's own sanity check, if it has one.
    pub(crate) check: Option<FormatCheck>,
}

impl<'a> UpstreamFile<'a> {
    /// A file with no digest and no check yet.
    pub(crate) fn new(url: &'a str, filename: &'a str) -> UpstreamFile<'a> {
        UpstreamFile {
            url,
            filename,
            digests: Digests::none(),
            size: None,
            check: None,
        }
    }
}

/// How long a blob the store said it holds is taken as still there without asking again: a
/// store lookup per download (a file-system call on a blocking thread, or a request to object
/// storage) otherwise costs more than the rest of serving a small file. Blobs are immutable and
/// addressed by digest; one removed meanwhile (quarantined) fails to open and is answered as an
/// error, never with other bytes.
const PRESENT_FOR: Duration = Duration::from_secs(5);
/// At most this many blobs are remembered as present (the memory is cleared beyond it).
const PRESENT_MAX: usize = 16_384;

/// The shared file cache.
#[derive(Debug)]
pub(crate) struct FileCache {
    database: Database,
    blobs: BlobStore,
    client: UpstreamClient,
    flight: SingleFlight,
    /// Files fetched, by URL (a memory of the store's `cached_files`).
    fetched: Arc<Mutex<HashMap<String, (Digests, BlobRef)>>>,
    /// Blobs the store said it holds, and when it said so.
    present: Mutex<HashMap<String, Instant>>,
}

impl FileCache {
    pub(crate) fn new(database: Database, blobs: BlobStore, client: UpstreamClient) -> FileCache {
        FileCache {
            database,
            blobs,
            client,
            flight: SingleFlight::default(),
            fetched: Arc::default(),
            present: Mutex::default(),
        }
    }

    /// The blob store behind the cache.
    pub(crate) fn blobs(&self) -> &BlobStore {
        &self.blobs
    }

    /// True when the store holds the blob; asked again at most every few seconds per blob.
    async fn holds(&self, sha256: &str) -> Result<bool, StoreError> {
        let fresh = self
            .present
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(sha256)
            .is_some_and(|confirmed| confirmed.elapsed() < PRESENT_FOR);
        if fresh {
            return Ok(true);
        }
        let held = self.blobs.contains(sha256).await?;
        let mut present = self
            .present
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if held {
            if present.len() >= PRESENT_MAX {
                present.clear();
            }
            present.insert(sha256.to_owned(), Instant::now());
        } else {
            present.remove(sha256);
        }
        Ok(held)
    }

    /// The cached blob of a file, if it is cached: by its published SHA-256 when the index gives
    /// one, else by its upstream URL (in memory, then in the store), provided every digest the
    /// index publishes now agrees with the ones it was verified against.
    pub(crate) async fn cached(
        &self,
        file: &UpstreamFile<'_>,
    ) -> Result<Option<BlobRef>, GatewayError> {
        if let Some(digest) = &file.digests.sha256 {
            return Ok(self.holds(digest).await?.then(|| BlobRef {
                sha256: digest.clone(),
                size: file.size.unwrap_or(0),
            }));
        }
        // In memory: compared under the lock, so a download copies only the blob's identity.
        let remembered = self
            .fetched
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(file.url)
            .map(|(digests, blob)| file.digests.agrees_with(digests).then(|| blob.clone()));
        if let Some(remembered) = remembered {
            return match remembered {
                Some(blob) if self.holds(&blob.sha256).await? => Ok(Some(blob)),
                _ => Ok(None),
            };
        }
        let known = match self.database.cached_file(file.url).await {
            Ok(found) => found.map(|cached| (cached.digests, cached.blob)),
            // Started with the database down: only what the local copy holds is served.
            Err(error @ StoreError::Unavailable(_)) => return Err(error.into()),
            Err(error) => {
                tracing::warn!(%error, file = file.filename, "could not read the cached file list; asking the upstream");
                None
            }
        };
        let Some((digests, blob)) = known.filter(|(digests, _)| file.digests.agrees_with(digests))
        else {
            return Ok(None);
        };
        if !self.holds(&blob.sha256).await? {
            return Ok(None);
        }
        self.fetched
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(file.url.to_owned(), (digests, blob.clone()));
        Ok(Some(blob))
    }

    /// The file's blob, fetched (once) and verified when it is not cached yet.
    pub(crate) async fn fetch(&self, file: &UpstreamFile<'_>) -> Result<BlobRef, GatewayError> {
        if let Some(found) = self.cached(file).await? {
            return Ok(found);
        }
        let _flight = self.flight.lock(file.url).await;
        if let Some(found) = self.cached(file).await? {
            return Ok(found);
        }
        let (_, stream) = self.client.file(&parse_url(file)?).await?;
        let outcome = self
            .blobs
            .put_verified(stream, &file.digests, file.check.clone())
            .await;
        let blob = stored(outcome, file.filename)?;
        remember(
            &self.database,
            &self.fetched,
            file.url,
            file.filename,
            &file.digests,
            &blob,
        )
        .await;
        Ok(blob)
    }

    /// Gives the cached blob or, when the file is not cached yet, starts fetching it and returns
    /// its bytes as they arrive. A background task stores the file, holding the file's fetch
    /// lock so that concurrent requests wait and then find it cached. One chunk is held back
    /// until the digest is checked: a corrupt file never reaches the client whole, and never
    /// enters the cache.
    ///
    /// When neither the index nor the upstream gives a length above `stream_above` bytes (a
    /// small file), it is fetched and verified whole first, so that a corrupt copy is refused
    /// with a clear error rather than a broken-off stream.
    pub(crate) async fn fetch_streaming(
        &self,
        file: &UpstreamFile<'_>,
        stream_above: u64,
    ) -> Result<Streamed, GatewayError> {
        if let Some(found) = self.cached(file).await? {
            return Ok(Streamed::Cached(found));
        }
        let flight = self.flight.lock(file.url).await;
        if let Some(found) = self.cached(file).await? {
            return Ok(Streamed::Cached(found));
        }
        let (announced, upstream) = self.client.file(&parse_url(file)?).await?;
        let length = file.size.or(announced);
        if length.is_some_and(|length| length <= stream_above) {
            let blob = stored(
                self.blobs
                    .put_verified(upstream, &file.digests, file.check.clone())
                    .await,
                file.filename,
            )?;
            remember(
                &self.database,
                &self.fetched,
                file.url,
                file.filename,
                &file.digests,
                &blob,
            )
            .await;
            drop(flight);
            return Ok(Streamed::Cached(blob));
        }
        let (sender, receiver) =
            tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(16);
        let held: Arc<Mutex<Option<bytes::Bytes>>> = Arc::default();
        let tee = {
            let (sender, held) = (sender.clone(), Arc::clone(&held));
            upstream.then(move |chunk| {
                let (sender, held) = (sender.clone(), Arc::clone(&held));
                async move {
                    if let Ok(bytes) = &chunk {
                        let previous = held
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .replace(bytes.clone());
                        if let Some(previous) = previous {
                            // A client that went away does not stop the download being stored.
                            let _ = sender.send(Ok(previous)).await;
                        }
                    }
                    chunk
                }
            })
        };
        let (database, blobs, fetched) = (
            self.database.clone(),
            self.blobs.clone(),
            Arc::clone(&self.fetched),
        );
        let (expected, check, filename, url) = (
            file.digests.clone(),
            file.check.clone(),
            file.filename.to_owned(),
            file.url.to_owned(),
        );
        tokio::spawn(async move {
            let _flight = flight;
            match stored(
                blobs.put_verified(Box::pin(tee), &expected, check).await,
                &filename,
            ) {
                Ok(blob) => {
                    remember(&database, &fetched, &url, &filename, &expected, &blob).await;
                    let last = held
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .take();
                    if let Some(last) = last {
                        let _ = sender.send(Ok(last)).await;
                    }
                }
                Err(error) => {
                    let _ = sender
                        .send(Err(std::io::Error::other(error.to_string())))
                        .await;
                }
            }
        });
        let body = futures::stream::unfold(receiver, |mut receiver| async move {
            receiver.recv().await.map(|item| (item, receiver))
        });
        Ok(Streamed::Arriving {
            body: Box::pin(body),
            length,
        })
    }
}

/// Keeps a stored file's identity in memory and in the store; a store that cannot be written
/// is logged and does not fail the download (the file is then fetched again after a restart).
async fn remember(
    database: &Database,
    fetched: &Mutex<HashMap<String, (Digests, BlobRef)>>,
    url: &str,
    filename: &str,
    published: &Digests,
    blob: &BlobRef,
) {
    let mut digests = published.clone();
    digests.sha256 = Some(blob.sha256.clone());
    fetched
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert(url.to_owned(), (digests.clone(), blob.clone()));
    let cached = CachedFile {
        url: url.to_owned(),
        filename: filename.to_owned(),
        blob: blob.clone(),
        digests,
        stored_at: chrono::Utc::now(),
    };
    if let Err(error) = database.remember_cached_file(&cached).await {
        tracing::warn!(%error, file = filename, "could not record a cached file in the store; it stays cached but is fetched again after a restart");
    }
}

fn parse_url(file: &UpstreamFile<'_>) -> Result<Url, UpstreamFailure> {
    Url::parse(file.url).map_err(|error| UpstreamFailure::Malformed {
        url: file.filename.to_owned(),
        why: error.to_string(),
    })
}

/// Turns the blob store's answer into the gateway's, logging what was refused.
fn stored(outcome: Result<BlobRef, StoreError>, filename: &str) -> Result<BlobRef, GatewayError> {
    match outcome {
        Ok(blob) => Ok(blob),
        Err(StoreError::DigestMismatch {
            algorithm,
            expected,
            actual,
        }) => {
            tracing::error!(file = %filename, algorithm, %expected, %actual, "upstream file does not match its published digest; not cached");
            Err(GatewayError::CorruptUpstreamFile {
                filename: filename.to_owned(),
                why: format!("its {algorithm} is {actual}, but the index publishes {expected}"),
            })
        }
        Err(StoreError::Rejected { why }) => {
            tracing::error!(file = %filename, %why, "upstream file is not what its name says; not cached");
            Err(GatewayError::CorruptUpstreamFile {
                filename: filename.to_owned(),
                why,
            })
        }
        Err(StoreError::Interrupted { bytes, why }) => {
            Err(GatewayError::Upstream(UpstreamFailure::Unreachable {
                url: filename.to_owned(),
                why: format!("the download broke off after {bytes} bytes: {why}"),
            }))
        }
        Err(other) => Err(other.into()),
    }
}
