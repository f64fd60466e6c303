//! Writing blobs: streamed in, hashed as they arrive, stored under `incoming/`, checked, and only
//! then copied (or renamed) to their address. The same steps on a local folder and on a bucket;
//! a bucket receives large files as a multipart upload (nothing is visible until the upload is
//! completed) and small ones in one request.

use std::path::Path as FilePath;

use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt};
use object_store::path::Path;
use object_store::{MultipartUpload, PutPayload};
use tokio::io::AsyncWriteExt;

use crate::blobs::{BlobRef, BlobStore, FormatCheck};
use crate::digests::{Algorithm, Digests, Hasher};
use crate::error::StoreError;

/// Parts are sent in chunks of this size (S3 needs at least 5 MiB per part but the last).
const PART_SIZE: usize = 8 * 1024 * 1024;

/// A blob being uploaded: nothing sent yet, or a multipart upload under way.
struct Upload {
    incoming: Path,
    multipart: Option<Box<dyn MultipartUpload>>,
    buffer: BytesMut,
}

impl Upload {
    /// Sends the buffer as a part once it is large enough, starting the multipart upload on
    /// the first.
    async fn flush_full_parts(&mut self, store: &BlobStore) -> Result<(), StoreError> {
        if self.buffer.len() < PART_SIZE {
            return Ok(());
        }
        let multipart = match &mut self.multipart {
            Some(multipart) => multipart,
            None => self
                .multipart
                .insert(store.store.put_multipart(&self.incoming).await?),
        };
        multipart
            .put_part(PutPayload::from(self.buffer.split().freeze()))
            .await?;
        Ok(())
    }

    /// Sends what is left and makes the temporary object whole.
    async fn finish(mut self, store: &BlobStore) -> Result<(), StoreError> {
        let rest = PutPayload::from(self.buffer.split().freeze());
        match &mut self.multipart {
            Some(multipart) => {
                if rest.content_length() > 0 {
                    multipart.put_part(rest).await?;
                }
                multipart.complete().await?;
            }
            None => {
                store.store.put(&self.incoming, rest).await?;
            }
        }
        Ok(())
    }

    /// Gives up: an unfinished multipart upload is aborted (it was never visible).
    async fn abandon(mut self) {
        if let Some(multipart) = &mut self.multipart {
            let _ = multipart.abort().await;
        }
    }
}

/// A local copy of a blob being uploaded to remote storage, so that the format check reads
/// the file without fetching it back (kept in the system's temporary folder, removed on drop).
struct Spool {
    file: tokio::fs::File,
}

impl Spool {
    fn new() -> Result<Spool, StoreError> {
        let file = tempfile::tempfile().map_err(|error| {
            StoreError::Conflict(format!(
                "cannot create a temporary file to check a blob being stored: {error}; check the temporary folder (TMPDIR) has space"
            ))
        })?;
        Ok(Spool {
            file: tokio::fs::File::from_std(file),
        })
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        self.file.write_all(bytes).await.map_err(|error| {
            StoreError::Conflict(format!(
                "cannot write a temporary copy of a blob being stored: {error}; check the temporary folder (TMPDIR) has space"
            ))
        })
    }
}

impl BlobStore {
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
    /// visible). The file is written under a temporary name (`incoming/…`), flushed, checked,
    /// and only then moved to its address: nothing unverified is ever visible, and a stream
    /// that fails part-way stores nothing.
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
        let mut upload = Upload {
            incoming: incoming.clone(),
            multipart: None,
            buffer: BytesMut::with_capacity(PART_SIZE),
        };
        let mut spool = match (&check, &self.local_root) {
            (Some(_), None) => Some(Spool::new()?),
            _ => None,
        };
        let mut hasher = Hasher::for_expected(expected);
        let mut size: u64 = 0;
        let mut failure = None;
        while let Some(chunk) = stream.next().await {
            let bytes = match chunk {
                Ok(bytes) => bytes,
                Err(error) => {
                    failure = Some(StoreError::Interrupted {
                        bytes: size,
                        why: error.to_string(),
                    });
                    break;
                }
            };
            hasher.update(&bytes);
            size += bytes.len() as u64;
            upload.buffer.extend_from_slice(&bytes);
            let mut step = match &mut spool {
                Some(spool) => spool.write(&bytes).await,
                None => Ok(()),
            };
            if step.is_ok() {
                step = upload.flush_full_parts(self).await;
            }
            if let Err(error) = step {
                failure = Some(error);
                break;
            }
        }
        if let Some(error) = failure {
            upload.abandon().await;
            return Err(self.unavailable_if_remote(error));
        }
        upload
            .finish(self)
            .await
            .map_err(|error| self.unavailable_if_remote(error))?;
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
        if let Err(error) = self.settle(&incoming, check, spool).await {
            let _ = self.store.delete(&incoming).await;
            return Err(error);
        }
        let address = Self::address(&sha256)?;
        if let Err(error) = self.store.rename(&incoming, &address).await {
            let _ = self.store.delete(&incoming).await;
            return Err(self.unavailable_if_remote(error.into()));
        }
        self.sync_folder_of(&address).await;
        Ok(BlobRef { sha256, size })
    }

    /// Flushes a just-written temporary blob to disk (local folders) and runs the format check
    /// on it: on the file itself in a local folder, else on the local copy made while uploading.
    async fn settle(
        &self,
        incoming: &Path,
        check: Option<FormatCheck>,
        spool: Option<Spool>,
    ) -> Result<(), StoreError> {
        let local = self
            .local_root
            .as_ref()
            .map(|root| root.join(incoming.as_ref()));
        if check.is_none() && local.is_none() {
            return Ok(());
        }
        let spooled = match spool {
            Some(spool) => Some(spool.file.into_std().await),
            None => None,
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
            } else if let (Some(check), Some(mut file)) = (&check, spooled) {
                use std::io::Seek;
                file.seek(std::io::SeekFrom::Start(0)).map_err(io)?;
                check(&mut file).map_err(|why| StoreError::Rejected { why })?;
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

    /// Copies one blob from `source` into this store, checking its digest on the way: what
    /// arrives under the address is exactly what the address says, or nothing.
    pub async fn copy_from(&self, source: &BlobStore, sha256: &str) -> Result<BlobRef, StoreError> {
        let stream = source.get(sha256).await?.into_stream();
        self.put_stream(stream, Some(sha256)).await
    }
}
