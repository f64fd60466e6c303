//! What the package gateway keeps between restarts: upstream index documents as last fetched
//! (keyed by a scope and a key the front-end chooses), and the identity of every cached file.

use chrono::{DateTime, Utc};
use sqlx::Row;

use crate::blobs::BlobRef;
use crate::database::Database;
use crate::digests::Digests;
use crate::error::StoreError;
use crate::time;

/// An upstream index document as last fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamDocument {
    /// The upstream it came from.
    pub upstream: String,
    /// The document, in the form its front-end stores.
    pub document: String,
    /// The upstream's entity tag, for revalidation.
    pub etag: Option<String>,
    /// When it was fetched or last revalidated.
    pub fetched_at: DateTime<Utc>,
}

/// An upstream document as it lies in the store, lent to a reader
/// ([`Database::read_upstream_document`]) rather than copied out.
#[derive(Debug, Clone, Copy)]
pub struct UpstreamDocumentRef<'a> {
    /// The upstream it came from.
    pub upstream: &'a str,
    /// The document, in the form its front-end stores.
    pub document: &'a str,
    /// The upstream's entity tag, for revalidation.
    pub etag: Option<&'a str>,
    /// When it was fetched or last revalidated.
    pub fetched_at: DateTime<Utc>,
}

impl UpstreamDocument {
    /// The document lent as an [`UpstreamDocumentRef`].
    pub fn as_ref(&self) -> UpstreamDocumentRef<'_> {
        UpstreamDocumentRef {
            upstream: &self.upstream,
            document: &self.document,
            etag: self.etag.as_deref(),
            fetched_at: self.fetched_at,
        }
    }
}

/// A file the gateway fetched from an upstream, verified and stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedFile {
    /// The upstream URL it was fetched from (credentials removed).
    pub url: String,
    /// Its file name.
    pub filename: String,
    /// The blob holding it.
    pub blob: BlobRef,
    /// Every digest it was verified against (sha256 always).
    pub digests: Digests,
    /// When it was stored.
    pub stored_at: DateTime<Utc>,
}

impl Database {
    /// Stores (or replaces) the last fetched upstream document under `(scope, key)`; `scope`
    /// separates front-ends and upstream sets (`pypi`, `pypi@RJ1`, `cran`).
    pub async fn save_upstream_document(
        &self,
        scope: &str,
        key: &str,
        document: &UpstreamDocument,
    ) -> Result<(), StoreError> {
        self.ensure_online()?;
        sqlx::query(
            "INSERT INTO upstream_documents (scope, document_key, upstream, document, etag, fetched_at) VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (scope, document_key) DO UPDATE SET upstream = excluded.upstream, document = excluded.document,
               etag = excluded.etag, fetched_at = excluded.fetched_at",
        )
        .bind(scope)
        .bind(key)
        .bind(&document.upstream)
        .bind(&document.document)
        .bind(document.etag.clone())
        .bind(time::to_text(document.fetched_at))
        .execute(self.pool())
        .await?;
        if let Some(copy) = self.local_copy() {
            copy.put_document(scope, key, document);
        }
        Ok(())
    }

    /// The last fetched upstream document under `(scope, key)`, if any.
    pub async fn upstream_document(
        &self,
        scope: &str,
        key: &str,
    ) -> Result<Option<UpstreamDocument>, StoreError> {
        if let Some(copy) = self.offline_copy()? {
            return copy.document(scope, key).await;
        }
        let row = sqlx::query("SELECT upstream, document, etag, fetched_at FROM upstream_documents WHERE scope = $1 AND document_key = $2")
            .bind(scope)
            .bind(key)
            .fetch_optional(self.pool())
            .await?;
        let found = row
            .map(|row| {
                Ok::<_, StoreError>(UpstreamDocument {
                    upstream: row.try_get("upstream")?,
                    document: row.try_get("document")?,
                    etag: row.try_get("etag")?,
                    fetched_at: time::from_text(&row.try_get::<String, _>("fetched_at")?)?,
                })
            })
            .transpose()?;
        if let (Some(copy), Some(document)) = (self.local_copy(), &found) {
            // Hashing the text is the costly part: skip it when the copy already holds this
            // fetch of the document (the usual case on a read).
            let held = copy.holds_document(
                scope,
                key,
                &document.upstream,
                document.etag.as_deref(),
                document.fetched_at,
            );
            if !held {
                copy.put_document(scope, key, document);
            }
        }
        Ok(found)
    }

    /// The last fetched upstream document under `(scope, key)`, if any, lent to `read` as the
    /// database row holds it: no copy of its text is made for the caller, which matters for a
    /// document of megabytes of which the caller keeps only what it reads from it (the memory
    /// peak of a fresh process is that document's copies).
    pub async fn read_upstream_document<T>(
        &self,
        scope: &str,
        key: &str,
        read: impl FnOnce(UpstreamDocumentRef<'_>) -> T,
    ) -> Result<Option<T>, StoreError> {
        if let Some(copy) = self.offline_copy()? {
            return Ok(copy
                .document(scope, key)
                .await?
                .map(|document| read(document.as_ref())));
        }
        let Some(row) = sqlx::query("SELECT upstream, document, etag, fetched_at FROM upstream_documents WHERE scope = $1 AND document_key = $2")
            .bind(scope)
            .bind(key)
            .fetch_optional(self.pool())
            .await?
        else {
            return Ok(None);
        };
        let document = UpstreamDocumentRef {
            upstream: row.try_get("upstream")?,
            document: row.try_get("document")?,
            etag: row.try_get("etag")?,
            fetched_at: time::from_text(row.try_get::<&str, _>("fetched_at")?)?,
        };
        if let Some(copy) = self.local_copy() {
            // As in `upstream_document`: the copy is given its own text only when it lacks
            // this fetch of the document (rare on a read).
            if !copy.holds_document(
                scope,
                key,
                document.upstream,
                document.etag,
                document.fetched_at,
            ) {
                copy.put_document(
                    scope,
                    key,
                    &UpstreamDocument {
                        upstream: document.upstream.to_owned(),
                        document: document.document.to_owned(),
                        etag: document.etag.map(str::to_owned),
                        fetched_at: document.fetched_at,
                    },
                );
            }
        }
        Ok(Some(read(document)))
    }

    /// The keys of the documents cached in a scope, sorted.
    pub async fn upstream_document_keys(&self, scope: &str) -> Result<Vec<String>, StoreError> {
        if let Some(copy) = self.offline_copy()? {
            return Ok(copy.document_keys(scope));
        }
        let rows = sqlx::query(
            "SELECT document_key FROM upstream_documents WHERE scope = $1 ORDER BY document_key",
        )
        .bind(scope)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| Ok(row.try_get("document_key")?))
            .collect()
    }

    /// Records (or replaces) the identity of a cached file.
    pub async fn remember_cached_file(&self, file: &CachedFile) -> Result<(), StoreError> {
        self.ensure_online()?;
        let digests = serde_json::to_string(&file.digests)
            .map_err(|error| StoreError::corrupt("file digests", error))?;
        sqlx::query(
            "INSERT INTO cached_files (url, filename, sha256, size, digests, stored_at) VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (url) DO UPDATE SET filename = excluded.filename, sha256 = excluded.sha256, size = excluded.size,
               digests = excluded.digests, stored_at = excluded.stored_at",
        )
        .bind(&file.url)
        .bind(&file.filename)
        .bind(&file.blob.sha256)
        .bind(i64::try_from(file.blob.size).unwrap_or(i64::MAX))
        .bind(digests)
        .bind(time::to_text(file.stored_at))
        .execute(self.pool())
        .await?;
        if let Some(copy) = self.local_copy() {
            copy.put_file(file);
        }
        Ok(())
    }

    /// The cached file fetched from `url`, if any.
    pub async fn cached_file(&self, url: &str) -> Result<Option<CachedFile>, StoreError> {
        if let Some(copy) = self.offline_copy()? {
            return copy.file(url).map(Some).ok_or_else(|| {
                StoreError::Unavailable(format!(
                    "this server's local copy does not hold the file {url}"
                ))
            });
        }
        let row = sqlx::query(
            "SELECT url, filename, sha256, size, digests, stored_at FROM cached_files WHERE url = $1",
        )
        .bind(url)
        .fetch_optional(self.pool())
        .await?;
        let found = row
            .map(|row| {
                let digests: String = row.try_get("digests")?;
                Ok::<_, StoreError>(CachedFile {
                    url: row.try_get("url")?,
                    filename: row.try_get("filename")?,
                    blob: BlobRef {
                        sha256: row.try_get("sha256")?,
                        size: u64::try_from(row.try_get::<i64, _>("size")?).unwrap_or(0),
                    },
                    digests: serde_json::from_str(&digests)
                        .map_err(|error| StoreError::corrupt("cached file digests", error))?,
                    stored_at: time::from_text(&row.try_get::<String, _>("stored_at")?)?,
                })
            })
            .transpose()?;
        if let (Some(copy), Some(file)) = (self.local_copy(), &found) {
            copy.put_file(file);
        }
        Ok(found)
    }

    /// Forgets every cached file held in a blob (after the blob was quarantined); returns how
    /// many.
    pub async fn forget_cached_blob(&self, sha256: &str) -> Result<u64, StoreError> {
        self.ensure_online()?;
        if let Some(copy) = self.local_copy() {
            copy.forget_blob(sha256);
        }
        let done = sqlx::query("DELETE FROM cached_files WHERE sha256 = $1")
            .bind(sha256)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected())
    }
}
