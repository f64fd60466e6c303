//! The local copy on disk: `manifest.json` (a sealed first line, then the content as JSON) and
//! `documents/<sha256>`, each written to a temporary file, flushed to disk and renamed into
//! place, so that a crash leaves the previous copy or the new one, never half of one.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use chrono::Utc;

use super::{lock, Contents, LocalCopy};
use crate::checkpoints::AuditKey;
use crate::error::StoreError;

/// What the seal is for (so that a seal made for another file never passes for this one).
const PURPOSE: &str = "formulary-local-copy";
/// The first word of the manifest's first line.
const MAGIC: &str = "formulary-local-copy-v1";
/// Document files no manifest names are removed once this old (another process sharing the
/// folder may be about to name them).
const UNREFERENCED_FOR: Duration = Duration::from_secs(600);

fn manifest_path(folder: &Path) -> PathBuf {
    folder.join("manifest.json")
}

/// Where a document's text lives.
pub(super) fn document_path(folder: &Path, sha256: &str) -> PathBuf {
    folder.join("documents").join(sha256)
}

/// True when an error says the disk is full (ENOSPC).
fn is_full(error: &std::io::Error) -> bool {
    error.kind() == std::io::ErrorKind::StorageFull
}

fn write_failed(path: &Path, error: std::io::Error) -> StoreError {
    let hint = if is_full(&error) {
        " (the disk is full: free space on it)"
    } else {
        ""
    };
    StoreError::LocalCopyWrite {
        path: path.display().to_string(),
        source: error,
        hint,
    }
}

/// Where the copy's files are written: the file system, or (in tests) one that fills up.
pub(super) trait Storage: std::fmt::Debug + Send + Sync {
    /// Creates `path` (readable by this account only), writes `bytes` to it and flushes it to
    /// disk. On an error, `path` may be left partly written.
    fn write_file(&self, path: &Path, bytes: &[u8]) -> std::io::Result<()>;
}

/// The file system.
#[derive(Debug)]
pub(super) struct FileSystem;

impl Storage for FileSystem {
    fn write_file(&self, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            // The manifest names the people who hold gateway tokens (and their tokens' hashes).
            options.mode(0o600);
        }
        let mut file = options.open(path)?;
        file.write_all(bytes)?;
        file.sync_all()
    }
}

/// Reads and checks the manifest: `None` when there is none; the error says why it cannot be
/// trusted.
pub(super) fn read_manifest(folder: &Path, key: &AuditKey) -> Result<Option<Contents>, String> {
    let path = manifest_path(folder);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(format!("cannot read {}: {error}", path.display())),
    };
    let refused = |why: &str| {
        format!(
            "the local copy {} {why}; it is not used (it is written anew while the database answers)",
            path.display()
        )
    };
    let Some(newline) = bytes.iter().position(|byte| *byte == b'\n') else {
        return Err(refused("is not a sealed local copy"));
    };
    let header = String::from_utf8_lossy(&bytes[..newline]);
    let body = &bytes[newline + 1..];
    let mut words = header.split(' ');
    if words.next() != Some(MAGIC) {
        return Err(refused("is not a sealed local copy"));
    }
    let seal = words.next().unwrap_or_default();
    if !key.is_sealed(PURPOSE, body, seal) {
        return Err(refused(
            "fails its seal check: it was changed after this server wrote it, or sealed with another audit key",
        ));
    }
    serde_json::from_slice(body)
        .map(Some)
        .map_err(|error| refused(&format!("cannot be read ({error})")))
}

/// Writes `bytes` to `path` through a temporary file that is flushed to disk and renamed; on
/// any error (a full disk) the temporary file is removed and `path` is as it was.
fn write_atomically(storage: &dyn Storage, path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let temporary = path.with_extension(format!("tmp-{}", std::process::id()));
    let written = storage
        .write_file(&temporary, bytes)
        .and_then(|()| std::fs::rename(&temporary, path));
    if let Err(error) = written {
        let _ = std::fs::remove_file(&temporary);
        return Err(write_failed(path, error));
    }
    if let Some(parent) = path.parent() {
        // The rename itself reaches the disk with the folder.
        if let Ok(folder) = std::fs::File::open(parent) {
            let _ = folder.sync_all();
        }
    }
    Ok(())
}

/// Writes the documents not on disk yet, then the sealed manifest, then removes document files
/// no longer named.
pub(super) fn write(copy: &LocalCopy, texts: &[(String, Arc<str>)]) -> Result<(), StoreError> {
    let documents = copy.folder.join("documents");
    std::fs::create_dir_all(&documents).map_err(|error| write_failed(&documents, error))?;
    for (sha256, text) in texts {
        let path = document_path(&copy.folder, sha256);
        if !path.exists() {
            write_atomically(copy.storage.as_ref(), &path, text.as_bytes())?;
        }
    }
    let now = Utc::now();
    let (body, named) = {
        let mut contents = lock(&copy.contents);
        contents.format = super::FORMAT;
        // The time is kept only once the manifest is on disk (`/readyz` shows it).
        let previous = contents.written_at.replace(now);
        let named: BTreeSet<String> = contents
            .documents
            .values()
            .flat_map(|documents| documents.values().map(|stored| stored.sha256.clone()))
            .collect();
        let body = serde_json::to_vec(&*contents);
        contents.written_at = previous;
        let body = body.map_err(|error| StoreError::corrupt("local copy", error))?;
        (body, named)
    };
    let seal = copy.key.seal(PURPOSE, &body);
    let mut file = format!("{MAGIC} {seal}\n").into_bytes();
    file.extend_from_slice(&body);
    write_atomically(copy.storage.as_ref(), &manifest_path(&copy.folder), &file)?;
    lock(&copy.contents).written_at = Some(now);
    remove_unnamed(&documents, &named);
    Ok(())
}

fn remove_unnamed(documents: &Path, named: &BTreeSet<String>) {
    let Ok(entries) = std::fs::read_dir(documents) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if named.contains(&name) {
            continue;
        }
        let old_enough = entry
            .metadata()
            .and_then(|metadata| metadata.modified())
            .ok()
            .and_then(|modified| SystemTime::now().duration_since(modified).ok())
            .is_some_and(|age| age >= UNREFERENCED_FOR);
        if old_enough {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}
