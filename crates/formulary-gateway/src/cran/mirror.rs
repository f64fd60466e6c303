//! `mirror import cran`: a CRAN-like folder (`src/contrib/PACKAGES[.gz]` and tarballs, optionally
//! `src/contrib/Archive/<pkg>/` and `bin/windows/contrib/X.Y/` or `bin/macosx/…/contrib/X.Y/`
//! trees) copied into the blob store, so that an air-gapped site serves it with no upstream.
//!
//! Each tree's `PACKAGES` becomes the cached index of that tree, keeping only the packages whose
//! files were imported; the files themselves are recorded in one manifest (`ImportedFiles`) that
//! the gateway consults before any upstream. Every file is checked before it is stored: the
//! archive must open, hold `<pkg>/DESCRIPTION` naming the same package and version as its file
//! name, and match the `MD5sum` of `PACKAGES` when there is one. A file that fails is reported
//! and left out; the rest are imported.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use deb822_fast::Paragraph;
use formulary_core::ecosystems::cran::{self, licence_to_spdx};
use formulary_core::ecosystems::{Ecosystem, Version};
use formulary_core::policy::Release;
use formulary_core::Component;
use formulary_store::{BlobStore, Database, UpstreamDocument};

use crate::cran::imported::{ImportedFile, ImportedFiles, MIRROR_UPSTREAM};
use crate::cran::tree::{is_tree, parse_filename, tree_key, INDEX_FIELDS, SCOPE};
use crate::cran::verify::description_of;
use crate::engine::import::{file_chunks, MirrorReport};
use crate::error::GatewayError;

/// Largest PACKAGES file read.
const MAX_PACKAGES_BYTES: u64 = 256 * 1024 * 1024;

/// One file found for import.
struct Candidate {
    tree: String,
    path: PathBuf,
    filename: String,
    component: Component,
    version: Version,
    /// The `PACKAGES` entry listing it (none for archived sources).
    listed: Option<Paragraph>,
}

/// Imports a CRAN-like repository folder (the folder holding `src/` and `bin/`). `progress` is
/// called with (files done, files in all) as the import goes.
pub async fn import_cran_folder(
    database: &Database,
    blobs: &BlobStore,
    folder: &Path,
    progress: impl Fn(usize, usize),
) -> Result<MirrorReport, GatewayError> {
    let mut report = MirrorReport::default();
    let trees = find_trees(folder)?;
    if trees.is_empty() {
        return Err(GatewayError::Mirror {
            what: folder.display().to_string(),
            why: "it holds no CRAN-like tree (src/contrib, bin/windows/contrib/X.Y or bin/macosx/…/contrib/X.Y); give the repository's root folder, the one that holds src/".to_owned(),
        });
    }
    let mut candidates = Vec::new();
    let mut indexes: BTreeMap<String, Vec<Paragraph>> = BTreeMap::new();
    for tree in &trees {
        let directory = folder.join(tree);
        match read_packages(&directory) {
            Ok(paragraphs) => {
                indexes.insert(tree.clone(), Vec::new());
                list_tree(tree, &directory, &paragraphs, &mut candidates, &mut report);
            }
            Err(why) => report.skipped.push((directory.clone(), why)),
        }
        if tree == "src/contrib" {
            list_archive(&directory.join("Archive"), &mut candidates, &mut report);
        }
    }
    let total = candidates.len();
    progress(0, total);
    let mut imported = ImportedFiles::load(database).await?;
    for (done, candidate) in candidates.into_iter().enumerate() {
        match import_one(database, blobs, &candidate).await {
            Ok(file) => {
                if let (Some(listed), Some(index)) =
                    (&candidate.listed, indexes.get_mut(&candidate.tree))
                {
                    index.push(listed.clone());
                }
                imported
                    .trees
                    .entry(candidate.tree.clone())
                    .or_default()
                    .insert(candidate.filename.clone(), file);
                report
                    .imported
                    .push((candidate.tree.clone(), candidate.filename.clone()));
            }
            Err(ImportFailure::Skipped(why)) => report.skipped.push((candidate.path, why)),
            Err(ImportFailure::Failed(error)) => return Err(error),
        }
        progress(done + 1, total);
    }
    imported.save(database).await?;
    for (tree, paragraphs) in indexes {
        merge_index(database, &tree, paragraphs).await?;
    }
    Ok(report)
}

/// The trees under a repository folder, as relative paths with `/`.
fn find_trees(folder: &Path) -> Result<Vec<String>, GatewayError> {
    if !folder.is_dir() {
        return Err(GatewayError::Mirror {
            what: folder.display().to_string(),
            why: "it is not a folder (or cannot be read); give the root of a CRAN-like repository, the folder holding src/contrib".to_owned(),
        });
    }
    let mut trees = Vec::new();
    let mut consider = |relative: String| {
        if is_tree(&relative) && folder.join(&relative).is_dir() {
            trees.push(relative);
        }
    };
    consider("src/contrib".to_owned());
    for parent in ["bin/windows/contrib", "bin/macosx/contrib"] {
        for name in subfolders(&folder.join(parent)) {
            consider(format!("{parent}/{name}"));
        }
    }
    for platform in subfolders(&folder.join("bin/macosx")) {
        for name in subfolders(&folder.join("bin/macosx").join(&platform).join("contrib")) {
            consider(format!("bin/macosx/{platform}/contrib/{name}"));
        }
    }
    trees.sort();
    trees.dedup();
    Ok(trees)
}

/// The names of a folder's subfolders (symbolic links are not followed).
fn subfolders(folder: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(folder) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|entry| entry.file_type().is_ok_and(|kind| kind.is_dir()))
        .filter_map(|entry| entry.file_name().into_string().ok())
        .collect();
    names.sort();
    names
}

fn read_packages(directory: &Path) -> Result<Vec<Paragraph>, String> {
    let plain = directory.join("PACKAGES");
    let compressed = directory.join("PACKAGES.gz");
    let mut text = String::new();
    let read = if plain.is_file() {
        std::fs::File::open(&plain).and_then(|file| {
            file.take(MAX_PACKAGES_BYTES)
                .read_to_string(&mut text)
                .map(drop)
        })
    } else if compressed.is_file() {
        std::fs::File::open(&compressed).and_then(|file| {
            flate2::read::GzDecoder::new(file)
                .take(MAX_PACKAGES_BYTES)
                .read_to_string(&mut text)
                .map(drop)
        })
    } else {
        return Err("this tree has no PACKAGES or PACKAGES.gz, so nothing in it was imported; write one with tools::write_PACKAGES() in R and import again".to_owned());
    };
    read.map_err(|error| format!("its PACKAGES index could not be read ({error}), so nothing in this tree was imported; write it again with tools::write_PACKAGES()"))?;
    cran::parse_packages(&text).map_err(|error| {
        format!("{error}; nothing in this tree was imported. Write it again with tools::write_PACKAGES()")
    })
}

/// The file a `PACKAGES` entry of this tree stands for.
fn extension(tree: &str) -> &'static str {
    if tree.starts_with("bin/windows/") {
        ".zip"
    } else if tree.starts_with("bin/macosx/") {
        ".tgz"
    } else {
        ".tar.gz"
    }
}

/// The regular files of a folder, by name; symbolic links and odd names are reported.
fn regular_files(directory: &Path, report: &mut MirrorReport) -> BTreeMap<String, PathBuf> {
    let mut files = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(directory) else {
        return files;
    };
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            continue;
        }
        if kind.is_symlink() {
            report.skipped.push((
                path,
                "a symbolic link; copy the file itself into the folder".to_owned(),
            ));
            continue;
        }
        match entry.file_name().into_string() {
            Ok(name) => {
                files.insert(name, path);
            }
            Err(_) => report
                .skipped
                .push((path, "the file name is not valid UTF-8".to_owned())),
        }
    }
    files
}

fn list_tree(
    tree: &str,
    directory: &Path,
    paragraphs: &[Paragraph],
    candidates: &mut Vec<Candidate>,
    report: &mut MirrorReport,
) {
    let mut files = regular_files(directory, report);
    for name in ["PACKAGES", "PACKAGES.gz", "PACKAGES.rds"] {
        files.remove(name);
    }
    for paragraph in paragraphs {
        let (Some(package), Some(version_text)) =
            (paragraph.get("Package"), paragraph.get("Version"))
        else {
            continue;
        };
        let filename = format!("{package}_{version_text}{}", extension(tree));
        let Some((component, version)) = parse_filename(&filename) else {
            report.skipped.push((
                directory.join("PACKAGES"),
                format!(
                    "the entry for '{}' {} does not name a valid R package and version; it was left out",
                    package.escape_debug(),
                    version_text.escape_debug()
                ),
            ));
            continue;
        };
        match files.remove(&filename) {
            Some(path) => candidates.push(Candidate {
                tree: tree.to_owned(),
                path,
                filename,
                component,
                version,
                listed: Some(paragraph.clone()),
            }),
            None => report.skipped.push((
                directory.join(&filename),
                "listed in PACKAGES but the file is missing; the package was left out of the index"
                    .to_owned(),
            )),
        }
    }
    for (_, path) in files {
        report.skipped.push((
            path,
            "not listed in PACKAGES; list it with tools::write_PACKAGES(), or move an older version to src/contrib/Archive/<package>/".to_owned(),
        ));
    }
}

fn list_archive(archive: &Path, candidates: &mut Vec<Candidate>, report: &mut MirrorReport) {
    for package in subfolders(archive) {
        let directory = archive.join(&package);
        for (filename, path) in regular_files(&directory, report) {
            match parse_filename(&filename) {
                Some((component, version))
                    if filename.ends_with(".tar.gz") && component.name.as_str() == package =>
                {
                    candidates.push(Candidate {
                        tree: "src/contrib".to_owned(),
                        path,
                        filename,
                        component,
                        version,
                        listed: None,
                    });
                }
                _ => report.skipped.push((
                    path,
                    format!(
                        "not a source tarball of {package} (expected {package}_<version>.tar.gz)"
                    ),
                )),
            }
        }
    }
}

enum ImportFailure {
    /// This file is left out, for this reason.
    Skipped(String),
    /// Storage failed: stop.
    Failed(GatewayError),
}

async fn import_one(
    database: &Database,
    blobs: &BlobStore,
    candidate: &Candidate,
) -> Result<ImportedFile, ImportFailure> {
    let entry = {
        let path = candidate.path.clone();
        let component = candidate.component.clone();
        let version = candidate.version.clone();
        let md5 = candidate
            .listed
            .as_ref()
            .and_then(|paragraph| paragraph.get("MD5sum"))
            .map(str::to_owned);
        tokio::task::spawn_blocking(move || check_file(&path, &component, &version, md5.as_deref()))
            .await
            .map_err(|error| ImportFailure::Skipped(format!("it could not be checked: {error}")))?
            .map_err(ImportFailure::Skipped)?
    };
    let opened = tokio::fs::File::open(&candidate.path)
        .await
        .map_err(|error| ImportFailure::Skipped(format!("it could not be read: {error}")))?;
    let modified = opened
        .metadata()
        .await
        .ok()
        .and_then(|metadata| metadata.modified().ok())
        .and_then(|time| time.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|since| since.as_secs() as f64);
    let blob = blobs
        .put_stream(file_chunks(opened), None)
        .await
        .map_err(|error| ImportFailure::Failed(error.into()))?;
    let licence = cran::parse_packages(&entry)
        .ok()
        .and_then(|mut paragraphs| paragraphs.pop())
        .and_then(|paragraph| paragraph.get("License").and_then(licence_to_spdx));
    database
        .record_release(
            &candidate.component,
            &Release {
                dated_by_first_sight: false,
                version: candidate.version.clone(),
                published: None,
                yanked: None,
                licence,
                install_scripts: false,
            },
        )
        .await
        .map_err(|error| ImportFailure::Failed(error.into()))?;
    Ok(ImportedFile {
        sha256: blob.sha256,
        size: blob.size,
        modified,
        entry,
    })
}

/// Checks a package file and returns its DESCRIPTION as a `PACKAGES` entry; the error says why
/// the file is refused.
fn check_file(
    path: &Path,
    component: &Component,
    version: &Version,
    md5: Option<&str>,
) -> Result<String, String> {
    let bytes = std::fs::read(path).map_err(|error| format!("it could not be read: {error}"))?;
    if let Some(expected) = md5 {
        use md5::Digest as _;
        let actual = hex::encode(md5::Md5::digest(&bytes));
        if !actual.eq_ignore_ascii_case(expected.trim()) {
            return Err(format!("its MD5 sum is {actual}, not {} as PACKAGES says: the file is damaged or PACKAGES is out of date. Copy the file again or rebuild PACKAGES with tools::write_PACKAGES()", expected.trim().escape_debug()));
        }
    }
    let zip = path.to_string_lossy().ends_with(".zip");
    let paragraph = description_of(&mut std::io::Cursor::new(bytes), zip, component, version)
        .map_err(|why| format!("{why}; copy it again from the source, or rename or replace it"))?;
    let mut entry = Paragraph { fields: Vec::new() };
    for name in INDEX_FIELDS {
        if let Some(value) = paragraph.get(name) {
            entry.insert(name, value);
        }
    }
    Ok(cran::render_packages(&[entry]))
}

/// Puts imported entries into a tree's cached index: an imported package replaces the entry of
/// the same name unless that one is newer.
async fn merge_index(
    database: &Database,
    tree: &str,
    imported: Vec<Paragraph>,
) -> Result<(), GatewayError> {
    let key = tree_key(tree);
    let stored = database.upstream_document(SCOPE, &key).await?;
    let mut by_name: BTreeMap<String, Paragraph> = BTreeMap::new();
    if let Some(stored) = &stored {
        for paragraph in cran::parse_packages(&stored.document).unwrap_or_default() {
            if let Some(name) = paragraph.get("Package") {
                by_name.insert(name.to_owned(), paragraph.clone());
            }
        }
    }
    let version_of = |paragraph: &Paragraph| {
        paragraph
            .get("Version")
            .and_then(|text| Version::parse(Ecosystem::Cran, text).ok())
    };
    for paragraph in imported {
        let Some(name) = paragraph.get("Package").map(str::to_owned) else {
            continue;
        };
        let newer_known = by_name
            .get(&name)
            .is_some_and(|known| version_of(known) > version_of(&paragraph));
        if !newer_known {
            by_name.insert(name, paragraph);
        }
    }
    let paragraphs: Vec<Paragraph> = by_name.into_values().collect();
    database
        .save_upstream_document(
            SCOPE,
            &key,
            &UpstreamDocument {
                upstream: stored.map_or_else(|| MIRROR_UPSTREAM.to_owned(), |page| page.upstream),
                document: cran::render_packages(&paragraphs),
                // The next revalidation against a real upstream fetches its index afresh.
                etag: None,
                fetched_at: chrono::Utc::now(),
            },
        )
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trees_are_found_and_nothing_else() {
        let folder = tempfile_folder();
        for tree in [
            "src/contrib/Archive/x",
            "bin/windows/contrib/4.4",
            "bin/windows/contrib/latest",
            "bin/macosx/big-sur-arm64/contrib/4.4",
            "bin/macosx/contrib/4.3",
        ] {
            std::fs::create_dir_all(folder.join(tree)).unwrap();
        }
        assert_eq!(
            find_trees(&folder).unwrap(),
            [
                "bin/macosx/big-sur-arm64/contrib/4.4",
                "bin/macosx/contrib/4.3",
                "bin/windows/contrib/4.4",
                "src/contrib"
            ]
        );
        std::fs::remove_dir_all(&folder).unwrap();
    }

    fn tempfile_folder() -> PathBuf {
        let folder =
            std::env::temp_dir().join(format!("formulary-cran-mirror-{}", std::process::id()));
        std::fs::create_dir_all(&folder).unwrap();
        folder
    }
}
