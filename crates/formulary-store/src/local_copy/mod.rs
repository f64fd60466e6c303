//! The local copy: what serving reads from the database, kept in a folder next to the data, so
//! that `formulary serve` can start and serve what it holds while the database cannot be
//! reached.
//!
//! It holds the inputs of the last policy snapshot (organisations, settings, entries as their
//! audit rows record them, advisories, admissions, the advisory feed's freshness), the cached
//! upstream documents (by scope and key: origin, entity tag, when fetched, and the text in a
//! file named by its SHA-256), the cached files' identities (upstream URL → blob, digests) and
//! the release evidence (publication dates, yanks, licences), and the usable gateway tokens
//! (the SHA-256 of each secret, never the secret: `tokens.rs`). It is kept current as the store
//! writes or reads them (in memory at once; on disk by one background writer, at most every
//! few seconds, which survives a full disk: `writer.rs`), and fully compared with the database
//! every few minutes.
//!
//! The copy decides policy, so it is sealed: `manifest.json` starts with an HMAC-SHA256 of its
//! content under the audit checkpoint key (`audit_key_file`, never in the database); each
//! document's file is checked against the SHA-256 the manifest gives. A copy that fails its
//! seal, or is older than the newest audit checkpoint, is refused ([`LocalCopy::load`]).

mod disk;
mod sync;
mod tokens;
mod writer;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use formulary_core::ecosystems::{Ecosystem, Version};
use formulary_core::policy::{PolicySnapshot, Release};
use formulary_core::Component;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::blobs::BlobRef;
use crate::checkpoints::{AuditKey, Checkpoint};
use crate::digests::Digests;
use crate::documents::{CachedFile, UpstreamDocument};
use crate::error::StoreError;
use crate::snapshot::PolicyInputs;

pub use sync::SyncSummary;
pub use tokens::CopiedToken;

/// The version of the manifest's layout.
const FORMAT: u32 = 1;

/// A cached upstream document's identity; its text is in `documents/<sha256>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct StoredDocument {
    upstream: String,
    etag: Option<String>,
    fetched_at: DateTime<Utc>,
    sha256: String,
}

/// A cached file's identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct StoredFile {
    filename: String,
    sha256: String,
    size: u64,
    digests: Digests,
    stored_at: DateTime<Utc>,
}

/// What is known of one release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct StoredRelease {
    version: String,
    published: Option<DateTime<Utc>>,
    yanked: Option<String>,
    licence: Option<String>,
    dated_by_first_sight: bool,
    install_scripts: bool,
}

impl StoredRelease {
    fn of(release: &Release) -> StoredRelease {
        StoredRelease {
            version: release.version.to_string(),
            published: release.published,
            yanked: release.yanked.clone(),
            licence: release.licence.clone(),
            dated_by_first_sight: release.dated_by_first_sight,
            install_scripts: release.install_scripts,
        }
    }

    fn release(&self, ecosystem: Ecosystem) -> Option<Release> {
        Some(Release {
            version: Version::parse(ecosystem, &self.version).ok()?,
            published: self.published,
            dated_by_first_sight: self.dated_by_first_sight,
            yanked: self.yanked.clone(),
            licence: self.licence.clone(),
            install_scripts: self.install_scripts,
        })
    }
}

/// Releases by ecosystem and package name.
type Releases = BTreeMap<Ecosystem, BTreeMap<String, Vec<StoredRelease>>>;

/// What the manifest holds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Contents {
    format: u32,
    /// When this content was written to disk.
    written_at: Option<DateTime<Utc>>,
    policy: Option<PolicyInputs>,
    /// Documents by scope, then key.
    documents: BTreeMap<String, BTreeMap<String, StoredDocument>>,
    /// Files by upstream URL.
    files: BTreeMap<String, StoredFile>,
    releases: Releases,
    /// Usable gateway tokens by the SHA-256 of their secret; `None` in a copy written by a
    /// version that did not keep them.
    #[serde(default)]
    tokens: Option<tokens::Tokens>,
}

/// The local copy of what serving reads (see the module documentation).
#[derive(Debug)]
pub struct LocalCopy {
    folder: PathBuf,
    key: AuditKey,
    contents: Mutex<Contents>,
    /// Document texts not written to their file yet, by SHA-256.
    texts: Mutex<HashMap<String, Arc<str>>>,
    /// Set when the content changed since it was last written.
    dirty: AtomicBool,
    changed: tokio::sync::Notify,
    /// One write at a time.
    writing: Mutex<()>,
    /// Where the files are written (a full disk is injected here in tests).
    storage: Arc<dyn disk::Storage>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl LocalCopy {
    fn with(folder: &Path, key: AuditKey, contents: Contents) -> LocalCopy {
        LocalCopy {
            folder: folder.to_path_buf(),
            key,
            contents: Mutex::new(contents),
            texts: Mutex::default(),
            dirty: AtomicBool::new(false),
            changed: tokio::sync::Notify::new(),
            writing: Mutex::new(()),
            storage: Arc::new(disk::FileSystem),
        }
    }

    /// The copy kept in `folder`, sealed with `key`, for a server whose database answers: what
    /// is on disk is the starting point when its seal holds (so that unchanged documents are not
    /// written again); otherwise it starts empty and is written anew.
    pub fn open(folder: &Path, key: AuditKey) -> Arc<LocalCopy> {
        let contents = match disk::read_manifest(folder, &key) {
            Ok(Some(contents)) if contents.format == FORMAT => contents,
            Ok(_) => Contents::default(),
            Err(why) => {
                tracing::warn!(folder = %folder.display(), %why, "the local copy on disk is not used as a starting point; it is written anew");
                Contents::default()
            }
        };
        let copy = LocalCopy::with(folder, key, contents);
        // Whatever it holds is written again with the next change: nothing more to do now.
        Arc::new(copy)
    }

    /// The copy in `folder` for a start with the database down, if it can be trusted: its
    /// seal holds under `key`, it holds a policy snapshot, and it is not older than `newest`
    /// (the newest genuine audit checkpoint: an older copy may lack a prohibition recorded
    /// since). The error says why it is refused.
    pub fn load(
        folder: &Path,
        key: AuditKey,
        newest: Option<&Checkpoint>,
    ) -> Result<Arc<LocalCopy>, String> {
        let contents = disk::read_manifest(folder, &key)?.ok_or_else(|| {
            format!(
                "there is no local copy in {} (it is written while the database answers)",
                folder.display()
            )
        })?;
        if contents.format != FORMAT {
            return Err(format!(
                "the local copy in {} has layout {}, which this version does not read",
                folder.display(),
                contents.format
            ));
        }
        let Some(policy) = &contents.policy else {
            return Err(format!(
                "the local copy in {} holds no policy snapshot",
                folder.display()
            ));
        };
        if let Some(checkpoint) = newest {
            if checkpoint.seq > policy.counter {
                return Err(format!(
                    "the local copy holds the policy as of audit row {}, but the audit checkpoint of {} records row {}: changes made since (a prohibition?) are not in it",
                    policy.counter, checkpoint.at, checkpoint.seq
                ));
            }
            if checkpoint.seq == policy.counter && checkpoint.head != policy.head {
                return Err(format!(
                    "the local copy's audit row {} does not have the hash the audit checkpoint of {} records: it was not made from this audit trail",
                    policy.counter, checkpoint.at
                ));
            }
        }
        policy
            .build()
            .map_err(|error| format!("the local copy's policy cannot be read: {error}"))?;
        Ok(Arc::new(LocalCopy::with(folder, key, contents)))
    }

    /// The folder the copy lives in.
    pub fn folder(&self) -> &Path {
        &self.folder
    }

    /// When the copy was last written to disk.
    pub fn written_at(&self) -> Option<DateTime<Utc>> {
        lock(&self.contents).written_at
    }

    /// The policy snapshot the copy holds, with its change counter.
    pub fn policy_snapshot(&self) -> Result<Option<(i64, PolicySnapshot)>, StoreError> {
        let policy = lock(&self.contents).policy.clone();
        policy
            .map(|policy| Ok((policy.counter, policy.build()?)))
            .transpose()
    }

    /// How many documents and files the copy holds.
    pub fn counts(&self) -> (usize, usize) {
        let contents = lock(&self.contents);
        (
            contents.documents.values().map(BTreeMap::len).sum(),
            contents.files.len(),
        )
    }

    fn touch(&self) {
        self.dirty.store(true, Ordering::SeqCst);
        self.changed.notify_one();
    }

    /// Writes the copy now if it changed since it was last written.
    pub async fn write_now(self: &Arc<Self>) -> Result<(), StoreError> {
        if !self.dirty.load(Ordering::SeqCst) {
            return Ok(());
        }
        let copy = Arc::clone(self);
        tokio::task::spawn_blocking(move || copy.write_blocking())
            .await
            .map_err(|error| StoreError::corrupt("local copy", error.to_string()))?
    }

    fn write_blocking(&self) -> Result<(), StoreError> {
        let _writing = lock(&self.writing);
        self.dirty.store(false, Ordering::SeqCst);
        let texts: Vec<(String, Arc<str>)> = lock(&self.texts)
            .iter()
            .map(|(sha, text)| (sha.clone(), Arc::clone(text)))
            .collect();
        let outcome = disk::write(self, &texts);
        if outcome.is_err() {
            self.dirty.store(true, Ordering::SeqCst);
        } else {
            let mut pending = lock(&self.texts);
            for (sha, _) in &texts {
                pending.remove(sha);
            }
        }
        outcome
    }

    /// Keeps the inputs of the snapshot now in force.
    pub(crate) fn set_policy(&self, inputs: PolicyInputs) {
        let mut contents = lock(&self.contents);
        // The same audit head means the same records; the feed's freshness changes without an
        // audit row.
        let same = contents.policy.as_ref().is_some_and(|known| {
            known.counter == inputs.counter
                && known.head == inputs.head
                && known.feed_current_at == inputs.feed_current_at
        });
        if !same {
            contents.policy = Some(inputs);
            drop(contents);
            self.touch();
        }
    }

    /// Keeps a cached upstream document.
    pub(crate) fn put_document(&self, scope: &str, key: &str, document: &UpstreamDocument) {
        let sha256 = sha256_hex(document.document.as_bytes());
        let stored = StoredDocument {
            upstream: document.upstream.clone(),
            etag: document.etag.clone(),
            // As the database gives it back (to the microsecond): a save followed by a read of
            // the same fetch must find it held, not hash and copy a large document again.
            fetched_at: crate::time::to_stored_precision(document.fetched_at),
            sha256: sha256.clone(),
        };
        {
            let mut contents = lock(&self.contents);
            let scope_documents = contents.documents.entry(scope.to_owned()).or_default();
            if scope_documents.get(key) == Some(&stored) {
                return;
            }
            scope_documents.insert(key.to_owned(), stored);
        }
        lock(&self.texts)
            .entry(sha256)
            .or_insert_with(|| Arc::from(document.document.as_str()));
        self.touch();
    }

    /// True when the copy holds this document as identified.
    pub(crate) fn holds_document(
        &self,
        scope: &str,
        key: &str,
        upstream: &str,
        etag: Option<&str>,
        fetched_at: DateTime<Utc>,
    ) -> bool {
        lock(&self.contents)
            .documents
            .get(scope)
            .and_then(|documents| documents.get(key))
            .is_some_and(|stored| {
                stored.upstream == upstream
                    && stored.etag.as_deref() == etag
                    && stored.fetched_at == crate::time::to_stored_precision(fetched_at)
            })
    }

    /// Forgets the documents not in `keep` (scope, key).
    fn retain_documents(&self, keep: &BTreeSet<(String, String)>) {
        let mut removed = false;
        {
            let mut contents = lock(&self.contents);
            for (scope, documents) in &mut contents.documents {
                let before = documents.len();
                documents.retain(|key, _| keep.contains(&(scope.clone(), key.clone())));
                removed |= documents.len() != before;
            }
            contents
                .documents
                .retain(|_, documents| !documents.is_empty());
        }
        if removed {
            self.touch();
        }
    }

    /// A cached upstream document, its text checked against the SHA-256 the manifest gives;
    /// [`StoreError::Unavailable`] when the copy does not hold it (this server serves only
    /// what it holds while the database is down).
    pub(crate) async fn document(
        &self,
        scope: &str,
        key: &str,
    ) -> Result<Option<UpstreamDocument>, StoreError> {
        let Some(stored) = lock(&self.contents)
            .documents
            .get(scope)
            .and_then(|documents| documents.get(key))
            .cloned()
        else {
            return Err(StoreError::Unavailable(format!(
                "this server's local copy does not hold {scope}/{key}"
            )));
        };
        let pending = lock(&self.texts).get(&stored.sha256).cloned();
        let text = match pending {
            Some(text) => text.to_string(),
            None => {
                let path = disk::document_path(&self.folder, &stored.sha256);
                let bytes = tokio::fs::read(&path).await.map_err(|error| {
                    StoreError::Unavailable(format!(
                        "the local copy lacks the document {scope}/{key} ({}: {error})",
                        path.display()
                    ))
                })?;
                if sha256_hex(&bytes) != stored.sha256 {
                    tracing::error!(path = %path.display(), "a document of the local copy does not match its SHA-256 (changed on disk): it is not used");
                    return Err(StoreError::Unavailable(format!(
                        "the local copy's document {scope}/{key} was changed on disk and is not used"
                    )));
                }
                String::from_utf8(bytes)
                    .map_err(|error| StoreError::corrupt("local copy document", error))?
            }
        };
        Ok(Some(UpstreamDocument {
            upstream: stored.upstream,
            document: text,
            etag: stored.etag,
            fetched_at: stored.fetched_at,
        }))
    }

    /// The keys of the documents held in a scope, sorted.
    pub(crate) fn document_keys(&self, scope: &str) -> Vec<String> {
        lock(&self.contents)
            .documents
            .get(scope)
            .map(|documents| documents.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Keeps a cached file's identity.
    pub(crate) fn put_file(&self, file: &CachedFile) {
        let stored = StoredFile {
            filename: file.filename.clone(),
            sha256: file.blob.sha256.clone(),
            size: file.blob.size,
            digests: file.digests.clone(),
            stored_at: file.stored_at,
        };
        {
            let mut contents = lock(&self.contents);
            if contents.files.get(&file.url) == Some(&stored) {
                return;
            }
            contents.files.insert(file.url.clone(), stored);
        }
        self.touch();
    }

    /// Replaces every file identity (a full comparison with the database).
    fn replace_files(&self, files: BTreeMap<String, StoredFile>) {
        {
            let mut contents = lock(&self.contents);
            if contents.files == files {
                return;
            }
            contents.files = files;
        }
        self.touch();
    }

    /// The cached file fetched from `url`, if the copy holds it.
    pub(crate) fn file(&self, url: &str) -> Option<CachedFile> {
        lock(&self.contents)
            .files
            .get(url)
            .map(|stored| CachedFile {
                url: url.to_owned(),
                filename: stored.filename.clone(),
                blob: BlobRef {
                    sha256: stored.sha256.clone(),
                    size: stored.size,
                },
                digests: stored.digests.clone(),
                stored_at: stored.stored_at,
            })
    }

    /// Forgets the files held in a blob.
    pub(crate) fn forget_blob(&self, sha256: &str) {
        let removed = {
            let mut contents = lock(&self.contents);
            let before = contents.files.len();
            contents.files.retain(|_, file| file.sha256 != sha256);
            contents.files.len() != before
        };
        if removed {
            self.touch();
        }
    }

    /// Keeps every release known of a component (as the database gave them).
    pub(crate) fn put_releases(&self, component: &Component, releases: &[Release]) {
        let mut stored: Vec<StoredRelease> = releases.iter().map(StoredRelease::of).collect();
        stored.sort_by(|left, right| left.version.cmp(&right.version));
        {
            let mut contents = lock(&self.contents);
            let by_name = contents.releases.entry(component.ecosystem()).or_default();
            if by_name.get(component.name.as_str()) == Some(&stored) {
                return;
            }
            by_name.insert(component.name.as_str().to_owned(), stored);
        }
        self.touch();
    }

    /// Records one release as the database's `record_release` does (a publication time and a
    /// licence once known are kept).
    pub(crate) fn record_release(&self, component: &Component, release: &Release) {
        let mut new = StoredRelease::of(release);
        {
            let mut contents = lock(&self.contents);
            let releases = contents
                .releases
                .entry(component.ecosystem())
                .or_default()
                .entry(component.name.as_str().to_owned())
                .or_default();
            match releases
                .iter_mut()
                .find(|known| known.version == new.version)
            {
                Some(known) => {
                    if new.published.is_none() {
                        new.dated_by_first_sight = known.dated_by_first_sight;
                    }
                    new.published = new.published.or(known.published);
                    new.licence = new.licence.or_else(|| known.licence.clone());
                    if *known == new {
                        return;
                    }
                    *known = new;
                }
                None => {
                    releases.push(new);
                    releases.sort_by(|left, right| left.version.cmp(&right.version));
                }
            }
        }
        self.touch();
    }

    /// Replaces all release evidence (a full comparison with the database).
    fn replace_releases(&self, releases: Releases) {
        {
            let mut contents = lock(&self.contents);
            if contents.releases == releases {
                return;
            }
            contents.releases = releases;
        }
        self.touch();
    }

    /// What the copy knows of a component's releases, oldest version first.
    pub(crate) fn releases_of(&self, component: &Component) -> Vec<Release> {
        let mut releases: Vec<Release> = lock(&self.contents)
            .releases
            .get(&component.ecosystem())
            .and_then(|by_name| by_name.get(component.name.as_str()))
            .into_iter()
            .flatten()
            .filter_map(|stored| stored.release(component.ecosystem()))
            .collect();
        releases.sort_by(|left, right| left.version.cmp(&right.version));
        releases
    }

    /// Every dated release of an ecosystem, as ((name, version), published).
    pub(crate) fn published_releases(
        &self,
        ecosystem: Ecosystem,
    ) -> HashMap<(String, String), DateTime<Utc>> {
        lock(&self.contents)
            .releases
            .get(&ecosystem)
            .into_iter()
            .flat_map(|by_name| {
                by_name.iter().flat_map(|(name, releases)| {
                    releases.iter().filter_map(|release| {
                        Some(((name.clone(), release.version.clone()), release.published?))
                    })
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
