//! Content-addressed blobs (cached package files) in a local folder or an S3-compatible bucket:
//! reading, listing, checking and quarantining. Writing is in `blob_writes`.

use std::ops::Range;
use std::path::Path as FilePath;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{GetOptions, GetRange, GetResult, ObjectStore};
use serde::Serialize;

use crate::blob_location::BlobLocation;
use crate::digests::{Digests, Hasher};
use crate::error::StoreError;

/// A file that can be read and sought (a blob being checked).
pub trait ReadSeek: std::io::Read + std::io::Seek + Send {}

impl<T: std::io::Read + std::io::Seek + Send> ReadSeek for T {}

/// A format's own sanity check of a complete file (a wheel is a zip whose dist-info matches its
/// name; a CRAN tarball holds the DESCRIPTION of its package): `Err` says what is wrong.
pub type FormatCheck = Arc<dyn Fn(&mut dyn ReadSeek) -> Result<(), String> + Send + Sync>;

/// A stored blob: its SHA-256 (hex) and size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlobRef {
    /// Lower-case hex SHA-256 of the content; also its address.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
}

/// Content-addressed blob storage over any object store (a local folder by default; S3 or Azure
/// at scale). A blob is written under a temporary name and moved to its address only once its
/// digest has been checked, so an interrupted or corrupt write never leaves a blob that looks whole.
#[derive(Debug, Clone)]
pub struct BlobStore {
    pub(crate) store: Arc<dyn ObjectStore>,
    /// The folder, when blobs live in a local folder: files are then read directly.
    pub(crate) local_root: Option<std::path::PathBuf>,
    /// The store as configured, for messages (never with credentials).
    label: Arc<str>,
}

/// A remote blob is read in requests of at most this many bytes, each with its own timeout and
/// retries, so that a slow client reading a large file never outlasts one request's deadline.
const READ_CHUNK: u64 = 8 * 1024 * 1024;

/// How long a question to the store (does this blob exist, how large is it, the first bytes)
/// may take before the store counts as unavailable.
const PATIENCE: Duration = Duration::from_secs(10);

/// The bytes of a blob as they are read.
pub type BlobStream = futures::stream::BoxStream<'static, Result<Bytes, StoreError>>;

impl BlobStore {
    /// Blobs in a local folder, created if missing.
    pub fn local(folder: &FilePath) -> Result<BlobStore, StoreError> {
        std::fs::create_dir_all(folder).map_err(|error| {
            StoreError::Conflict(format!(
                "could not create the blob folder {}: {error}; check the path and its permissions",
                folder.display()
            ))
        })?;
        let store = LocalFileSystem::new_with_prefix(folder)?;
        let local_root = std::fs::canonicalize(folder).ok();
        Ok(BlobStore {
            store: Arc::new(store),
            local_root,
            label: folder.display().to_string().into(),
        })
    }

    /// Blobs where `location` says: a local folder (created if missing) or a bucket.
    pub fn open(location: &BlobLocation) -> Result<BlobStore, StoreError> {
        match location {
            BlobLocation::Folder(folder) => BlobStore::local(folder),
            BlobLocation::S3 {
                bucket,
                prefix,
                options,
            } => Ok(BlobStore {
                store: BlobLocation::open_s3(bucket, prefix, options)?,
                local_root: None,
                label: location.label().into(),
            }),
        }
    }

    /// Blobs in any object store.
    pub fn from_object_store(store: Arc<dyn ObjectStore>) -> BlobStore {
        BlobStore {
            store,
            local_root: None,
            label: "object storage".into(),
        }
    }

    /// The store as configured (a folder or `s3://bucket/prefix`), for messages.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// True when blobs live in a local folder.
    pub fn is_local(&self) -> bool {
        self.local_root.is_some()
    }

    /// The local folder blobs live in, when they do (for spool files that belong on the same
    /// disk).
    pub fn local_folder(&self) -> Option<&std::path::Path> {
        self.local_root.as_deref()
    }

    /// Turns an object-store failure into what a client may be told: a store that did not
    /// answer or refused is unavailable (the full error is logged here, not shown).
    pub(crate) fn unavailable(&self, error: object_store::Error) -> StoreError {
        match error {
            object_store::Error::NotFound { path, .. } => {
                StoreError::NotFound(format!("blob {path}"))
            }
            other => {
                tracing::warn!(store = %self.label, error = %other, "the blob store failed");
                StoreError::BlobUnavailable {
                    store: self.label.to_string(),
                    why: "it did not answer or refused the request".to_owned(),
                }
            }
        }
    }

    /// For a remote store, reports object-store failures as unavailability (see
    /// [`BlobStore::unavailable`]); a local folder's errors are kept as they are.
    pub(crate) fn unavailable_if_remote(&self, error: StoreError) -> StoreError {
        match error {
            StoreError::Blob(error) if self.local_root.is_none() => self.unavailable(error),
            other => other,
        }
    }

    /// Waits at most [`PATIENCE`] for the store.
    async fn patiently<T>(
        &self,
        operation: impl std::future::Future<Output = Result<T, object_store::Error>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(PATIENCE, operation).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(self.unavailable(error)),
            Err(_) => {
                tracing::warn!(store = %self.label, "the blob store did not answer within {} s", PATIENCE.as_secs());
                Err(StoreError::BlobUnavailable {
                    store: self.label.to_string(),
                    why: format!("it did not answer within {} s", PATIENCE.as_secs()),
                })
            }
        }
    }

    /// Checks the store answers (a readiness probe): a question about a key that need not exist.
    pub async fn probe(&self) -> Result<(), StoreError> {
        match self
            .patiently(self.store.head(&Path::from("readyz-probe")))
            .await
        {
            Ok(_) | Err(StoreError::NotFound(_)) => Ok(()),
            Err(error) => Err(error),
        }
    }

    /// Opens a blob as a local file, when blobs live in a local folder: the fast path for serving
    /// whole files. `Ok(None)` for other stores (use [`BlobStore::get`]).
    pub async fn open_local(
        &self,
        sha256: &str,
    ) -> Result<Option<(tokio::fs::File, u64)>, StoreError> {
        let Some(root) = &self.local_root else {
            return Ok(None);
        };
        let path = root.join(Self::address(sha256)?.as_ref());
        match tokio::fs::File::open(&path).await {
            Ok(file) => {
                let size = file
                    .metadata()
                    .await
                    .map_err(|error| {
                        StoreError::Conflict(format!("cannot read blob sha256:{sha256}: {error}"))
                    })?
                    .len();
                Ok(Some((file, size)))
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                Err(StoreError::NotFound(format!("blob sha256:{sha256}")))
            }
            Err(error) => Err(StoreError::Conflict(format!(
                "cannot open blob sha256:{sha256}: {error}"
            ))),
        }
    }

    pub(crate) fn address(sha256: &str) -> Result<Path, StoreError> {
        let well_formed = sha256.len() == 64
            && sha256
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !well_formed {
            return Err(StoreError::NotFound(format!(
                "a blob with the malformed digest '{}'",
                sha256.escape_debug()
            )));
        }
        Ok(Path::from(format!(
            "sha256/{}/{}/{sha256}",
            &sha256[..2],
            &sha256[2..4]
        )))
    }

    /// True when a blob with this digest is stored.
    pub async fn contains(&self, sha256: &str) -> Result<bool, StoreError> {
        Ok(self.stat(sha256).await?.is_some())
    }

    /// The blob with this digest and its size, if it is stored.
    pub async fn stat(&self, sha256: &str) -> Result<Option<BlobRef>, StoreError> {
        let address = Self::address(sha256)?;
        match self.patiently(self.store.head(&address)).await {
            Ok(meta) => Ok(Some(BlobRef {
                sha256: sha256.to_owned(),
                size: meta.size,
            })),
            Err(StoreError::NotFound(_)) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Opens a blob for streaming (in one request: for copying and checking, not for serving
    /// slow clients; see [`BlobStore::read_range`]).
    pub async fn get(&self, sha256: &str) -> Result<GetResult, StoreError> {
        let address = Self::address(sha256)?;
        self.patiently(self.store.get(&address))
            .await
            .map_err(|error| match error {
                StoreError::NotFound(_) => StoreError::NotFound(format!("blob sha256:{sha256}")),
                other => other,
            })
    }

    /// Reads part of a blob into memory.
    pub async fn get_range(&self, sha256: &str, range: Range<u64>) -> Result<Bytes, StoreError> {
        let address = Self::address(sha256)?;
        self.patiently(self.store.get_range(&address, range)).await
    }

    /// Streams `range` of a blob (whose size the caller knows from [`BlobStore::stat`]) as it is
    /// read: one request per [`READ_CHUNK`], each made only when the previous one has been
    /// sent on, so memory stays bounded and a slow reader never outlasts a request's timeout.
    pub fn read_range(&self, sha256: &str, range: Range<u64>) -> Result<BlobStream, StoreError> {
        let address = Self::address(sha256)?;
        let blobs = self.clone();
        let chunks = (range.start..range.end)
            .step_by(usize::try_from(READ_CHUNK).unwrap_or(usize::MAX))
            .map(move |start| start..(start + READ_CHUNK).min(range.end));
        let stream = futures::stream::iter(chunks)
            .then(move |chunk| {
                let (blobs, address) = (blobs.clone(), address.clone());
                async move {
                    let options = GetOptions {
                        range: Some(GetRange::Bounded(chunk)),
                        ..GetOptions::default()
                    };
                    let result = blobs
                        .patiently(blobs.store.get_opts(&address, options))
                        .await?;
                    let store = blobs.clone();
                    Ok::<_, StoreError>(
                        result
                            .into_stream()
                            .map(move |item| item.map_err(|error| store.unavailable(error))),
                    )
                }
            })
            .try_flatten();
        Ok(Box::pin(stream))
    }

    /// Every stored blob, as (digest, size), in no particular order.
    pub async fn list(&self) -> Result<Vec<BlobRef>, StoreError> {
        let mut listing = self.store.list(Some(&Path::from("sha256")));
        let mut found = Vec::new();
        while let Some(item) = listing.next().await {
            let meta = item.map_err(|error| self.unavailable_if_remote(error.into()))?;
            if let Some(name) = meta.location.filename() {
                if Self::address(name).is_ok() {
                    found.push(BlobRef {
                        sha256: name.to_owned(),
                        size: meta.size,
                    });
                }
            }
        }
        Ok(found)
    }

    /// Hashes a stored blob again: `Ok(None)` when it still matches its address, else the digest
    /// of what is actually stored.
    pub async fn rehash(&self, sha256: &str) -> Result<Option<String>, StoreError> {
        let mut stream = self.get(sha256).await?.into_stream();
        let mut hasher = Hasher::for_expected(&Digests::none());
        while let Some(chunk) = stream.next().await {
            hasher.update(&chunk?);
        }
        let actual = hasher.finish().sha256.unwrap_or_default();
        Ok((actual != sha256).then_some(actual))
    }

    /// Moves a blob that no longer matches its address out of the way (`quarantine/`), where an
    /// operator can inspect it; it is no longer served.
    pub async fn quarantine(&self, sha256: &str) -> Result<String, StoreError> {
        let from = Self::address(sha256)?;
        let to = Path::from(format!(
            "quarantine/{sha256}-{}",
            uuid::Uuid::new_v4().simple()
        ));
        self.store
            .rename(&from, &to)
            .await
            .map_err(|error| self.unavailable_if_remote(error.into()))?;
        Ok(to.to_string())
    }

    /// Removes leftovers of writes that never finished (a crash mid-write), older than `age`.
    pub async fn sweep_incoming(&self, age: chrono::Duration) -> Result<usize, StoreError> {
        let cutoff = chrono::Utc::now() - age;
        let mut listing = self.store.list(Some(&Path::from("incoming")));
        let mut removed = 0;
        while let Some(item) = listing.next().await {
            let meta = item?;
            if meta.last_modified < cutoff {
                self.store.delete(&meta.location).await?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}
