//! Upstream files in the blob store: fetched once each (concurrent requests wait for the one
//! fetch), checked against the digest the index published before they enter the cache, and
//! optionally streamed to the first client while they are stored. Shared by every front-end.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use formulary_store::{BlobRef, BlobStore, StoreError};
use futures::StreamExt;
use url::Url;

use crate::error::GatewayError;
use crate::single_flight::SingleFlight;
use crate::upstream::{UpstreamClient, UpstreamFailure};

/// A file's bytes as they arrive.
pub(crate) type FileBody =
    futures::stream::BoxStream<'static, Result<bytes::Bytes, std::io::Error>>;

/// One upstream file: where it is and what the index says about it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct UpstreamFile<'a> {
    /// Its URL.
    pub(crate) url: &'a str,
    /// Its name, for messages.
    pub(crate) filename: &'a str,
    /// The SHA-256 the index published, if any.
    pub(crate) sha256: Option<&'a str>,
    /// The size the index published, if any.
    pub(crate) size: Option<u64>,
}

/// The shared file cache.
#[derive(Debug)]
pub(crate) struct FileCache {
    blobs: BlobStore,
    client: UpstreamClient,
    flight: SingleFlight,
    /// Files whose index gave no digest, by URL.
    fetched: Arc<Mutex<HashMap<String, BlobRef>>>,
}

impl FileCache {
    pub(crate) fn new(blobs: BlobStore, client: UpstreamClient) -> FileCache {
        FileCache {
            blobs,
            client,
            flight: SingleFlight::default(),
            fetched: Arc::default(),
        }
    }

    /// The blob store behind the cache.
    pub(crate) fn blobs(&self) -> &BlobStore {
        &self.blobs
    }

    /// The cached blob of a file, if it is cached.
    pub(crate) async fn cached(
        &self,
        file: UpstreamFile<'_>,
    ) -> Result<Option<BlobRef>, GatewayError> {
        if let Some(digest) = file.sha256 {
            return Ok(self.blobs.contains(digest).await?.then(|| BlobRef {
                sha256: digest.to_owned(),
                size: file.size.unwrap_or(0),
            }));
        }
        Ok(self
            .fetched
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(file.url)
            .cloned())
    }

    /// The file's blob, fetched (once) and verified when it is not cached yet.
    pub(crate) async fn fetch(&self, file: UpstreamFile<'_>) -> Result<BlobRef, GatewayError> {
        if let Some(found) = self.cached(file).await? {
            return Ok(found);
        }
        let _flight = self.flight.lock(file.url).await;
        if let Some(found) = self.cached(file).await? {
            return Ok(found);
        }
        let stream = self.client.file(&parse_url(file)?).await?;
        let outcome = self.blobs.put_stream(stream, file.sha256).await;
        let blob = stored(outcome, file.filename)?;
        self.fetched
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(file.url.to_owned(), blob.clone());
        Ok(blob)
    }

    /// Gives the cached blob (`Ok`) or, when the file is not cached yet, starts fetching it and
    /// returns its bytes as they arrive (`Err`, the stream). A background task stores the file,
    /// holding the file's fetch lock so that concurrent requests wait and then find it cached.
    /// One chunk is held back until the digest is checked: a corrupt file never reaches the
    /// client whole, and never enters the cache.
    pub(crate) async fn fetch_streaming(
        &self,
        file: UpstreamFile<'_>,
    ) -> Result<Result<BlobRef, FileBody>, GatewayError> {
        if let Some(found) = self.cached(file).await? {
            return Ok(Ok(found));
        }
        let flight = self.flight.lock(file.url).await;
        if let Some(found) = self.cached(file).await? {
            return Ok(Ok(found));
        }
        let upstream = self.client.file(&parse_url(file)?).await?;
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
        let (blobs, fetched) = (self.blobs.clone(), Arc::clone(&self.fetched));
        let (expected, filename, url) = (
            file.sha256.map(str::to_owned),
            file.filename.to_owned(),
            file.url.to_owned(),
        );
        tokio::spawn(async move {
            let _flight = flight;
            match stored(
                blobs.put_stream(Box::pin(tee), expected.as_deref()).await,
                &filename,
            ) {
                Ok(blob) => {
                    fetched
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .insert(url, blob);
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
        Ok(Err(Box::pin(body)))
    }
}

fn parse_url(file: UpstreamFile<'_>) -> Result<Url, UpstreamFailure> {
    Url::parse(file.url).map_err(|error| UpstreamFailure::Malformed {
        url: file.filename.to_owned(),
        why: error.to_string(),
    })
}

/// Turns the blob store's answer into the gateway's, logging what was refused.
fn stored(outcome: Result<BlobRef, StoreError>, filename: &str) -> Result<BlobRef, GatewayError> {
    match outcome {
        Ok(blob) => Ok(blob),
        Err(StoreError::DigestMismatch { expected, actual }) => {
            tracing::error!(file = %filename, %expected, %actual, "upstream file does not match its published sha256; not cached");
            Err(GatewayError::CorruptUpstreamFile {
                filename: filename.to_owned(),
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
