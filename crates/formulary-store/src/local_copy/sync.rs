//! The full comparison of the local copy with the database: what other replicas cached, and
//! what was cached before this server kept a copy, reaches the copy too.

use std::collections::{BTreeMap, BTreeSet};

use formulary_core::ecosystems::Ecosystem;
use sqlx::Row;

use super::{Releases, StoredFile, StoredRelease};
use crate::database::Database;
use crate::error::StoreError;
use crate::time;

/// What a full comparison found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncSummary {
    /// Documents read from the database because the copy lacked them or held an older one.
    pub documents_read: usize,
    /// Documents the copy holds now.
    pub documents: usize,
    /// File identities the copy holds now.
    pub files: usize,
}

impl Database {
    /// Brings the attached local copy up to date with everything the database holds for
    /// serving (documents, file identities, release evidence, usable gateway tokens; the policy,
    /// and the tokens again, are kept as snapshots are built). Nothing happens without a copy.
    pub async fn sync_local_copy(&self) -> Result<SyncSummary, StoreError> {
        let Some(copy) = self.local_copy().cloned() else {
            return Ok(SyncSummary::default());
        };
        self.ensure_online()?;
        let rows = sqlx::query(
            "SELECT scope, document_key, upstream, etag, fetched_at FROM upstream_documents",
        )
        .fetch_all(self.pool())
        .await?;
        let mut present = BTreeSet::new();
        let mut documents_read = 0;
        for row in &rows {
            let scope: String = row.try_get("scope")?;
            let key: String = row.try_get("document_key")?;
            let upstream: String = row.try_get("upstream")?;
            let etag: Option<String> = row.try_get("etag")?;
            let fetched_at = time::from_text(&row.try_get::<String, _>("fetched_at")?)?;
            if !copy.holds_document(&scope, &key, &upstream, etag.as_deref(), fetched_at) {
                // Read through the store, which keeps it in the copy.
                if self.upstream_document(&scope, &key).await?.is_some() {
                    documents_read += 1;
                }
            }
            present.insert((scope, key));
        }
        copy.retain_documents(&present);

        let rows =
            sqlx::query("SELECT url, filename, sha256, size, digests, stored_at FROM cached_files")
                .fetch_all(self.pool())
                .await?;
        let mut files = BTreeMap::new();
        for row in &rows {
            let digests: String = row.try_get("digests")?;
            files.insert(
                row.try_get::<String, _>("url")?,
                StoredFile {
                    filename: row.try_get("filename")?,
                    sha256: row.try_get("sha256")?,
                    size: u64::try_from(row.try_get::<i64, _>("size")?).unwrap_or(0),
                    digests: serde_json::from_str(&digests)
                        .map_err(|error| StoreError::corrupt("cached file digests", error))?,
                    stored_at: time::from_text(&row.try_get::<String, _>("stored_at")?)?,
                },
            );
        }
        let file_count = files.len();
        copy.replace_files(files);

        let rows = sqlx::query("SELECT ecosystem, name, version, published, yanked, licence, dated_by_first_sight, install_scripts FROM releases ORDER BY ecosystem, name, version")
            .fetch_all(self.pool())
            .await?;
        let mut releases: Releases = BTreeMap::new();
        for row in &rows {
            let Ok(ecosystem) = row.try_get::<String, _>("ecosystem")?.parse::<Ecosystem>() else {
                continue;
            };
            releases
                .entry(ecosystem)
                .or_default()
                .entry(row.try_get::<String, _>("name")?)
                .or_default()
                .push(StoredRelease {
                    version: row.try_get("version")?,
                    published: time::optional_from_text(row.try_get("published")?)?,
                    yanked: row.try_get("yanked")?,
                    licence: row.try_get("licence")?,
                    dated_by_first_sight: row.try_get::<i64, _>("dated_by_first_sight")? != 0,
                    install_scripts: row.try_get::<i64, _>("install_scripts")? != 0,
                });
        }
        for release_list in releases.values_mut().flat_map(BTreeMap::values_mut) {
            release_list.sort_by(|left, right| left.version.cmp(&right.version));
        }
        copy.replace_releases(releases);
        self.copy_tokens().await?;
        Ok(SyncSummary {
            documents_read,
            documents: present.len(),
            files: file_count,
        })
    }
}
