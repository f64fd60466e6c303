use std::ops::Range;
use std::path::Path as FilePath;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{GetResult, ObjectStore, PutPayload};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::StoreError;

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
    store: Arc<dyn ObjectStore>,
    /// The folder, when blobs live in a local folder: files are then read directly.
    local_root: Option<std::path::PathBuf>,
}

/// Parts are sent in chunks of this size (S3 needs at least 5 MiB per part but the last).
const PART_SIZE: usize = 8 * 1024 * 1024;

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
        })
    }

    /// Blobs in any object store.
    pub fn from_object_store(store: Arc<dyn ObjectStore>) -> BlobStore {
        BlobStore {
            store,
            local_root: None,
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

    fn address(sha256: &str) -> Result<Path, StoreError> {
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

    /// Stores a stream of bytes. With `expected_sha256`, the content must have that digest or
    /// nothing is stored. A stream that fails part-way stores nothing either.
    pub async fn put_stream<S, E>(
        &self,
        mut stream: S,
        expected_sha256: Option<&str>,
    ) -> Result<BlobRef, StoreError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let incoming = Path::from(format!("incoming/{}", uuid::Uuid::new_v4().simple()));
        let mut upload = self.store.put_multipart(&incoming).await?;
        let mut hasher = Sha256::new();
        let mut size: u64 = 0;
        let mut buffer = BytesMut::with_capacity(PART_SIZE);
        let mut failure = None;
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(bytes) => {
                    hasher.update(&bytes);
                    size += bytes.len() as u64;
                    buffer.extend_from_slice(&bytes);
                    if buffer.len() >= PART_SIZE {
                        if let Err(error) = upload
                            .put_part(PutPayload::from(buffer.split().freeze()))
                            .await
                        {
                            failure = Some(StoreError::Blob(error));
                            break;
                        }
                    }
                }
                Err(error) => {
                    failure = Some(StoreError::Interrupted {
                        bytes: size,
                        why: error.to_string(),
                    });
                    break;
                }
            }
        }
        if failure.is_none() && !buffer.is_empty() {
            if let Err(error) = upload
                .put_part(PutPayload::from(buffer.split().freeze()))
                .await
            {
                failure = Some(StoreError::Blob(error));
            }
        }
        if let Some(error) = failure {
            let _ = upload.abort().await;
            return Err(error);
        }
        upload.complete().await?;
        let sha256 = hex::encode(hasher.finalize());
        if let Some(expected) = expected_sha256 {
            if !expected.eq_ignore_ascii_case(&sha256) {
                let _ = self.store.delete(&incoming).await;
                return Err(StoreError::DigestMismatch {
                    expected: expected.to_ascii_lowercase(),
                    actual: sha256,
                });
            }
        }
        let address = Self::address(&sha256)?;
        if let Err(error) = self.store.rename(&incoming, &address).await {
            let _ = self.store.delete(&incoming).await;
            return Err(error.into());
        }
        Ok(BlobRef { sha256, size })
    }

    /// Stores bytes already in memory.
    pub async fn put_bytes(&self, bytes: Bytes) -> Result<BlobRef, StoreError> {
        self.put_stream(
            futures::stream::iter([Ok::<_, std::convert::Infallible>(bytes)]),
            None,
        )
        .await
    }

    /// True when a blob with this digest is stored.
    pub async fn contains(&self, sha256: &str) -> Result<bool, StoreError> {
        match self.store.head(&Self::address(sha256)?).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(error) => Err(error.into()),
        }
    }

    /// Opens a blob for streaming.
    pub async fn get(&self, sha256: &str) -> Result<GetResult, StoreError> {
        self.store
            .get(&Self::address(sha256)?)
            .await
            .map_err(|error| match error {
                object_store::Error::NotFound { .. } => {
                    StoreError::NotFound(format!("blob sha256:{sha256}"))
                }
                other => other.into(),
            })
    }

    /// Reads part of a blob.
    pub async fn get_range(&self, sha256: &str, range: Range<u64>) -> Result<Bytes, StoreError> {
        Ok(self.store.get_range(&Self::address(sha256)?, range).await?)
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
