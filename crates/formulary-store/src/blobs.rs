use std::ops::Range;
use std::path::Path as FilePath;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{GetResult, ObjectStore, PutPayload};
use serde::Serialize;

use crate::digests::{Algorithm, Digests, Hasher};
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
        stream: S,
        expected_sha256: Option<&str>,
    ) -> Result<BlobRef, StoreError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let mut expected = Digests::none();
        if let Some(digest) = expected_sha256 {
            expected =
                expected
                    .with(Algorithm::Sha256, digest)
                    .map_err(|error| StoreError::Rejected {
                        why: error.to_string(),
                    })?;
        }
        self.put_verified(stream, &expected, None).await
    }

    /// Stores a stream of bytes only if it matches every digest in `expected` and passes
    /// `check` (the format's own sanity check, run on the complete file before it becomes
    /// visible). The file is written under a temporary name, flushed to disk, checked, and only
    /// then moved to its address: nothing unverified is ever visible, and a stream that fails
    /// part-way stores nothing.
    pub async fn put_verified<S, E>(
        &self,
        mut stream: S,
        expected: &Digests,
        check: Option<FormatCheck>,
    ) -> Result<BlobRef, StoreError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let incoming = Path::from(format!("incoming/{}", uuid::Uuid::new_v4().simple()));
        let mut upload = self.store.put_multipart(&incoming).await?;
        let mut hasher = Hasher::for_expected(expected);
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
        let computed = hasher.finish();
        if let Some((algorithm, expected, actual)) = expected.contradiction(&computed) {
            let _ = self.store.delete(&incoming).await;
            return Err(StoreError::DigestMismatch {
                algorithm: algorithm.name(),
                expected: expected.to_owned(),
                actual: actual.to_owned(),
            });
        }
        let sha256 = computed.sha256.clone().unwrap_or_default();
        if let Err(error) = self.settle(&incoming, check).await {
            let _ = self.store.delete(&incoming).await;
            return Err(error);
        }
        let address = Self::address(&sha256)?;
        if let Err(error) = self.store.rename(&incoming, &address).await {
            let _ = self.store.delete(&incoming).await;
            return Err(error.into());
        }
        self.sync_folder_of(&address).await;
        Ok(BlobRef { sha256, size })
    }

    /// Flushes a just-written temporary blob to disk (local folders) and runs the format check
    /// on it.
    async fn settle(&self, incoming: &Path, check: Option<FormatCheck>) -> Result<(), StoreError> {
        let local = self
            .local_root
            .as_ref()
            .map(|root| root.join(incoming.as_ref()));
        if check.is_none() && local.is_none() {
            return Ok(());
        }
        let remote = match (&check, &local) {
            (Some(_), None) => Some(self.store.get(incoming).await?.bytes().await?),
            _ => None,
        };
        let outcome = tokio::task::spawn_blocking(move || -> Result<(), StoreError> {
            let io = |error: std::io::Error| {
                StoreError::Conflict(format!("cannot flush a blob being stored: {error}"))
            };
            if let Some(path) = &local {
                let mut file = std::fs::File::open(path).map_err(io)?;
                file.sync_all().map_err(io)?;
                if let Some(check) = &check {
                    check(&mut file).map_err(|why| StoreError::Rejected { why })?;
                }
            } else if let (Some(check), Some(bytes)) = (&check, remote) {
                check(&mut std::io::Cursor::new(bytes))
                    .map_err(|why| StoreError::Rejected { why })?;
            }
            Ok(())
        })
        .await;
        outcome.map_err(|error| StoreError::Conflict(format!("a blob check failed: {error}")))?
    }

    /// Makes a rename durable (local folders): the folder's entry is flushed too.
    async fn sync_folder_of(&self, address: &Path) {
        let Some(root) = &self.local_root else {
            return;
        };
        let Some(folder) = root.join(address.as_ref()).parent().map(FilePath::to_owned) else {
            return;
        };
        let _ = tokio::task::spawn_blocking(move || {
            std::fs::File::open(&folder).and_then(|folder| folder.sync_all())
        })
        .await;
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

    /// Every stored blob, as (digest, size), in no particular order.
    pub async fn list(&self) -> Result<Vec<BlobRef>, StoreError> {
        let mut listing = self.store.list(Some(&Path::from("sha256")));
        let mut found = Vec::new();
        while let Some(item) = listing.next().await {
            let meta = item?;
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
        self.store.rename(&from, &to).await?;
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
