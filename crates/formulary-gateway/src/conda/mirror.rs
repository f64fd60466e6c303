//! `mirror import conda`: a channel folder (one folder per subdirectory, each with its
//! `repodata.json` and package files, as conda-index or py-rattler's indexer writes it) copied
//! into the blob store, so that an air-gapped site serves the channel with no upstream.
//!
//! Every package file is checked before it is stored: its size, `sha256` and `md5` must be the
//! ones its record in `repodata.json` gives, and it must open as a conda package (`.conda` or
//! `.tar.bz2`) whose `info/index.json` agrees with the record ([`super::verify`]). A file that
//! fails is reported with the reason and left out of the served `repodata.json`; the rest are
//! imported. Each subdirectory's imported records are merged into the channel's cached
//! `repodata.json` (the document the gateway serves from), so records imported earlier stay.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use chrono::Utc;
use formulary_core::ecosystems::conda::{
    is_package_filename, is_subdir, RepoData, MAX_REPODATA_BYTES,
};
use formulary_store::{BlobStore, Database, StoreError, UpstreamDocument};
use serde_json::value::RawValue;

use super::passthrough::CHANNEL_SCOPE;
use super::{published_digests, verify, SCOPE};
use crate::engine::import::{file_chunks, MirrorReport};
use crate::error::GatewayError;

/// The origin recorded for a subdirectory that only imports filled.
const MIRROR_ORIGIN: &str = "formulary-mirror:/conda/";

/// Largest `channeldata.json` imported.
const MAX_CHANNELDATA_BYTES: u64 = 256 << 20;

/// Files of a channel folder that are indexes, not packages (not reported as unlisted).
fn is_index_file(name: &str) -> bool {
    name.starts_with("repodata")
        || name.starts_with("current_repodata")
        || name.ends_with(".sigs")
        || matches!(
            name,
            "index.html" | "run_exports.json" | "patch_instructions.json"
        )
}

/// One package file found for import.
struct Candidate {
    subdir: String,
    path: PathBuf,
    filename: String,
}

/// One subdirectory's `repodata.json`, as the folder holds it.
struct Plan {
    repodata: RepoData,
    /// The document as the folder holds it.
    bytes: Vec<u8>,
    /// The files imported (filled as the import goes).
    imported: BTreeSet<String>,
}

/// Imports a channel folder (the folder holding `noarch/`, `linux-64/`, …) into `channel`.
/// `progress` is called with (files done, files in all) as the import goes.
pub async fn import_conda_folder(
    database: &Database,
    blobs: &BlobStore,
    folder: &Path,
    channel: &str,
    progress: impl Fn(usize, usize),
) -> Result<MirrorReport, GatewayError> {
    let mut report = MirrorReport::default();
    let subdirs = find_subdirs(folder)?;
    let mut plans: BTreeMap<String, Plan> = BTreeMap::new();
    let mut candidates = Vec::new();
    for subdir in &subdirs {
        let directory = folder.join(subdir);
        let (repodata, bytes) = match read_repodata(&directory) {
            Ok((repodata, unreadable, bytes)) => {
                for filename in unreadable {
                    report.skipped.push((
                        directory.join("repodata.json"),
                        format!(
                            "its record '{}' has no name or version, or is not named as a conda package file (.conda or .tar.bz2, no folders); it was left out",
                            filename.escape_debug()
                        ),
                    ));
                }
                (repodata, bytes)
            }
            Err(why) => {
                report.skipped.push((directory.join("repodata.json"), why));
                continue;
            }
        };
        list_subdir(subdir, &directory, &repodata, &mut candidates, &mut report);
        plans.insert(
            subdir.clone(),
            Plan {
                repodata,
                bytes,
                imported: BTreeSet::new(),
            },
        );
    }
    let total = candidates.len();
    progress(0, total);
    for (done, candidate) in candidates.into_iter().enumerate() {
        let Some(plan) = plans.get_mut(&candidate.subdir) else {
            continue;
        };
        match import_one(blobs, &plan.repodata, &candidate).await {
            Ok(()) => {
                plan.imported.insert(candidate.filename.clone());
                report.imported.push((
                    format!("{channel}/{}", candidate.subdir),
                    candidate.filename,
                ));
            }
            Err(ImportFailure::Skipped(why)) => report.skipped.push((candidate.path, why)),
            Err(ImportFailure::Failed(error)) => return Err(error),
        }
        progress(done + 1, total);
    }
    for (subdir, plan) in &plans {
        if !plan.imported.is_empty() {
            merge_repodata(database, channel, subdir, plan).await?;
        }
    }
    if !report.imported.is_empty() {
        import_channeldata(database, folder, channel, &mut report).await?;
    }
    Ok(report)
}

/// The subdirectories of a channel folder that hold a `repodata.json`.
fn find_subdirs(folder: &Path) -> Result<Vec<String>, GatewayError> {
    let entries = std::fs::read_dir(folder).map_err(|error| GatewayError::Mirror {
        what: folder.display().to_string(),
        why: format!("it is not a folder that can be read ({error}); give the channel's folder, the one holding noarch/ and the platform folders"),
    })?;
    let mut subdirs: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|entry| entry.file_type().is_ok_and(|kind| kind.is_dir()))
        .filter_map(|entry| entry.file_name().into_string().ok())
        .filter(|name| is_subdir(name) && folder.join(name).join("repodata.json").is_file())
        .collect();
    subdirs.sort();
    if subdirs.is_empty() {
        return Err(GatewayError::Mirror {
            what: folder.display().to_string(),
            why: "it holds no subdirectory with a repodata.json (noarch/repodata.json, linux-64/repodata.json, …); give the channel's folder, and index it first with conda-index or py-rattler's indexer".to_owned(),
        });
    }
    Ok(subdirs)
}

/// A subdirectory's `repodata.json`, and the file names of records that could not be read.
fn read_repodata(directory: &Path) -> Result<(RepoData, Vec<String>, Vec<u8>), String> {
    let path = directory.join("repodata.json");
    let size = std::fs::metadata(&path)
        .map_err(|error| {
            format!("it could not be read ({error}), so nothing in this subdirectory was imported")
        })?
        .len();
    if size > MAX_REPODATA_BYTES as u64 {
        return Err(
            "it is larger than 1 GiB, so nothing in this subdirectory was imported".to_owned(),
        );
    }
    let bytes = std::fs::read(&path).map_err(|error| {
        format!("it could not be read ({error}), so nothing in this subdirectory was imported")
    })?;
    let (repodata, unreadable) = RepoData::parse(bytes.clone()).map_err(|error| {
        format!("{error}; nothing in this subdirectory was imported. Index the channel again with conda-index or py-rattler's indexer")
    })?;
    Ok((repodata, unreadable, bytes))
}

/// Pairs the records of a subdirectory with its files; reports records without a file, package
/// files without a record, symbolic links and names that are not package names.
fn list_subdir(
    subdir: &str,
    directory: &Path,
    repodata: &RepoData,
    candidates: &mut Vec<Candidate>,
    report: &mut MirrorReport,
) {
    let mut files: BTreeMap<String, PathBuf> = BTreeMap::new();
    for entry in std::fs::read_dir(directory)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
    {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            continue;
        }
        let Ok(name) = entry.file_name().into_string() else {
            report
                .skipped
                .push((path, "the file name is not valid UTF-8".to_owned()));
            continue;
        };
        if is_index_file(&name) {
            continue;
        }
        if kind.is_symlink() {
            report.skipped.push((
                path,
                "a symbolic link; copy the file itself into the folder".to_owned(),
            ));
            continue;
        }
        files.insert(name, path);
    }
    for record in repodata.records() {
        match files.remove(&*record.filename) {
            Some(path) => candidates.push(Candidate {
                subdir: subdir.to_owned(),
                path,
                filename: record.filename.to_string(),
            }),
            None => report.skipped.push((
                directory.join(&*record.filename),
                "listed in repodata.json but the file is not in the folder; the record was left out"
                    .to_owned(),
            )),
        }
    }
    for (name, path) in files {
        if is_package_filename(&name) {
            report.skipped.push((
                path,
                "not listed in repodata.json; index the channel again (conda-index or py-rattler's indexer) and import again".to_owned(),
            ));
        } else if name.ends_with(".conda") || name.ends_with(".tar.bz2") {
            report
                .skipped
                .push((path, "the file name is not a conda package name".to_owned()));
        }
    }
}

enum ImportFailure {
    /// This file is left out, for this reason.
    Skipped(String),
    /// Storage failed: stop.
    Failed(GatewayError),
}

/// Checks one package file against its record and stores it.
async fn import_one(
    blobs: &BlobStore,
    repodata: &RepoData,
    candidate: &Candidate,
) -> Result<(), ImportFailure> {
    let skip = ImportFailure::Skipped;
    let Some(record) = repodata.record(&candidate.filename) else {
        return Err(skip("it has no record in repodata.json".to_owned()));
    };
    let facts = repodata.facts(record).map_err(|error| {
        skip(format!(
            "its record in repodata.json cannot be read: {error}"
        ))
    })?;
    if facts.sha256.is_none() {
        return Err(skip("its record in repodata.json has no sha256, so it cannot be verified; index the channel again with conda-index or py-rattler's indexer".to_owned()));
    }
    let opened = tokio::fs::File::open(&candidate.path)
        .await
        .map_err(|error| skip(format!("it could not be read: {error}")))?;
    let size = opened
        .metadata()
        .await
        .map_err(|error| skip(format!("it could not be read: {error}")))?
        .len();
    if let Some(expected) = facts.size.filter(|expected| *expected != size) {
        return Err(skip(format!("it is {size} bytes but its record in repodata.json says {expected}: the file is damaged or the index is out of date. Copy the file again or index the channel again")));
    }
    let raw = repodata.raw_record(record).map_err(|error| {
        skip(format!(
            "its record in repodata.json cannot be read: {error}"
        ))
    })?;
    let check = verify::check_for(&candidate.filename, &raw);
    match blobs
        .put_verified(file_chunks(opened), &published_digests(&facts), check)
        .await
    {
        Ok(_) => Ok(()),
        Err(StoreError::DigestMismatch {
            algorithm,
            expected,
            actual,
        }) => Err(skip(format!("its {algorithm} is {actual}, not {expected} as its record in repodata.json says: the file is damaged or the index is out of date. Copy the file again or index the channel again"))),
        Err(StoreError::Rejected { why }) => Err(skip(why)),
        Err(StoreError::Interrupted { why, .. }) => {
            Err(skip(format!("it could not be read: {why}")))
        }
        Err(error) => Err(ImportFailure::Failed(error.into())),
    }
}

/// A JSON object's members, each kept as written.
type RawMembers = BTreeMap<String, Box<RawValue>>;

fn members(bytes: &[u8]) -> Option<RawMembers> {
    serde_json::from_slice(bytes).ok()
}

/// Puts a subdirectory's imported records into the channel's cached `repodata.json`: records
/// already there stay, an imported file replaces the record of the same file name, and the
/// other top-level members (`info`, `repodata_version`, …) are the imported document's.
async fn merge_repodata(
    database: &Database,
    channel: &str,
    subdir: &str,
    plan: &Plan,
) -> Result<(), GatewayError> {
    let key = format!("{channel}/{subdir}");
    let stored = super::stored::load_bytes(database, &key)
        .await
        .map_err(|error| GatewayError::Mirror {
            what: format!("the cached {subdir}/repodata.json"),
            why: format!(
                "it cannot be read ({error}), so imported records cannot be merged into it"
            ),
        })?;
    let (stored, stored_bytes) = match stored {
        Some((row, bytes)) => (Some(row), Some(bytes)),
        None => (None, None),
    };
    let mut top: RawMembers = stored_bytes
        .as_deref()
        .and_then(members)
        .unwrap_or_default();
    let incoming = members(&plan.bytes).unwrap_or_default();
    for (name, value) in &incoming {
        if name != "packages" && name != "packages.conda" {
            top.insert(name.clone(), value.clone());
        }
    }
    for section in ["packages", "packages.conda"] {
        let mut records: RawMembers = top
            .get(section)
            .and_then(|raw| members(raw.get().as_bytes()))
            .unwrap_or_default();
        let imported: RawMembers = incoming
            .get(section)
            .and_then(|raw| members(raw.get().as_bytes()))
            .unwrap_or_default();
        records.extend(
            imported
                .into_iter()
                .filter(|(filename, _)| plan.imported.contains(filename)),
        );
        let raw =
            serde_json::value::to_raw_value(&records).map_err(|error| mirror_error(&key, error))?;
        top.insert(section.to_owned(), raw);
    }
    let document = serde_json::to_string(&top).map_err(|error| mirror_error(&key, error))?;
    // Refuse to store what the gateway could not read back.
    RepoData::parse(document.clone().into_bytes()).map_err(|error| GatewayError::Mirror {
        what: format!("{subdir}/repodata.json"),
        why: error.to_string(),
    })?;
    database
        .save_upstream_document(
            SCOPE,
            &key,
            &UpstreamDocument {
                upstream: stored.map_or_else(
                    || format!("{MIRROR_ORIGIN}{channel}/"),
                    |stored| stored.upstream,
                ),
                document,
                // The next revalidation against a real upstream fetches its document afresh.
                etag: None,
                fetched_at: Utc::now(),
            },
        )
        .await?;
    Ok(())
}

fn mirror_error(key: &str, error: serde_json::Error) -> GatewayError {
    GatewayError::Mirror {
        what: format!("{key}/repodata.json"),
        why: error.to_string(),
    }
}

/// The channel's `channeldata.json`, when the folder has one that is a JSON object.
async fn import_channeldata(
    database: &Database,
    folder: &Path,
    channel: &str,
    report: &mut MirrorReport,
) -> Result<(), GatewayError> {
    let path = folder.join("channeldata.json");
    let Ok(metadata) = std::fs::symlink_metadata(&path) else {
        return Ok(());
    };
    if !metadata.is_file() || metadata.len() > MAX_CHANNELDATA_BYTES {
        report.skipped.push((
            path,
            "not a regular file of at most 256 MiB; it was not imported".to_owned(),
        ));
        return Ok(());
    }
    let document = match std::fs::read_to_string(&path) {
        Ok(text) if members(text.as_bytes()).is_some() => text,
        _ => {
            report.skipped.push((
                path,
                "not a JSON object; it was not imported (clients do not need it to install)"
                    .to_owned(),
            ));
            return Ok(());
        }
    };
    database
        .save_upstream_document(
            CHANNEL_SCOPE,
            &format!("{channel}/channeldata.json"),
            &UpstreamDocument {
                upstream: format!("{MIRROR_ORIGIN}{channel}/"),
                document,
                etag: None,
                fetched_at: Utc::now(),
            },
        )
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_files_are_not_packages() {
        for name in [
            "repodata.json",
            "repodata.json.zst",
            "repodata_shards.msgpack.zst",
            "current_repodata.json",
            "tinylib-1.0-0.tar.bz2.sigs",
        ] {
            assert!(is_index_file(name), "{name}");
        }
        assert!(!is_index_file("tinylib-1.0-0.tar.bz2"));
    }
}
