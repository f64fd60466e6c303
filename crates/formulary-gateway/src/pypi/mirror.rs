//! `mirror import pypi`: wheels and sdists copied from a folder into the blob store and the
//! cached index, so that an air-gapped site serves them with no upstream at all. Every file is
//! checked first (a wheel must hold the dist-info of its name and version; an sdist must open).

use std::io::Read;
use std::path::{Path, PathBuf};

use formulary_core::ecosystems::pypi::{self, DistributionFile, ProjectPage};
use formulary_core::ecosystems::{Ecosystem, PackageName};
use formulary_core::policy::Release;
use formulary_core::Component;
use formulary_store::{BlobStore, Database, Digests, UpstreamDocument};

use crate::engine::import::{file_chunks, MirrorReport};
use crate::error::GatewayError;
use crate::pypi::DEFAULT_SCOPE;

/// Largest METADATA file read from a wheel.
const MAX_METADATA_BYTES: u64 = 4 * 1024 * 1024;

/// Imports every wheel and sdist in `folder` (not recursive).
pub async fn import_pypi_folder(
    database: &Database,
    blobs: &BlobStore,
    folder: &Path,
) -> Result<MirrorReport, GatewayError> {
    let mut report = MirrorReport::default();
    let mut paths: Vec<PathBuf> = std::fs::read_dir(folder)
        .map_err(|error| {
            GatewayError::Store(formulary_store::StoreError::NotFound(format!(
                "the folder {} ({error})",
                folder.display()
            )))
        })?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.is_file())
        .collect();
    paths.sort();
    for path in paths {
        let filename = path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        if let Err(why) = pypi::check_filename(&filename) {
            report.skipped.push((path, why.to_owned()));
            continue;
        }
        let Some(project) = project_of(&filename) else {
            report.skipped.push((
                path,
                "the file name names no project and version".to_owned(),
            ));
            continue;
        };
        let Some(version) = pypi::version_from_filename(&project, &filename) else {
            report.skipped.push((
                path,
                "the version in the file name is not PEP 440".to_owned(),
            ));
            continue;
        };
        let metadata = if filename.ends_with(".whl") {
            wheel_metadata(&path)
        } else {
            None
        };
        // The wheel's METADATA is served as its PEP 658 `.metadata` file, addressed by digest.
        let metadata_blob = match &metadata {
            Some((raw, _)) => Some(blobs.put_bytes(bytes::Bytes::from(raw.clone())).await?),
            None => None,
        };
        let metadata = metadata.map(|(_, fields)| fields);
        let file = tokio::fs::File::open(&path).await.map_err(|error| {
            GatewayError::Store(formulary_store::StoreError::NotFound(format!(
                "{} ({error})",
                path.display()
            )))
        })?;
        let blob = match blobs
            .put_verified(
                file_chunks(file),
                &Digests::none(),
                super::verify::check_for(&filename),
            )
            .await
        {
            Ok(blob) => blob,
            Err(formulary_store::StoreError::Rejected { why }) => {
                report
                    .skipped
                    .push((path, format!("{why}; copy it again from the source")));
                continue;
            }
            Err(error) => return Err(error.into()),
        };
        let component = Component {
            name: project.clone(),
        };
        let mut page = cached_page(database, &component).await?;
        page.files.retain(|existing| existing.filename != filename);
        page.files.push(DistributionFile {
            filename: filename.clone(),
            url: format!("formulary-blob:sha256/{}", blob.sha256),
            hashes: [("sha256".to_owned(), blob.sha256.clone())]
                .into_iter()
                .collect(),
            requires_python: metadata
                .as_ref()
                .and_then(|fields| field(fields, "Requires-Python")),
            core_metadata: metadata_blob
                .map(|stored| [("sha256".to_owned(), stored.sha256)].into_iter().collect()),
            yanked: None,
            size: Some(blob.size),
            upload_time: None,
            provenance: None,
        });
        let document = String::from_utf8(pypi::render_json(&page)).unwrap_or_default();
        let upstream = database
            .upstream_document(DEFAULT_SCOPE, component.name.as_str())
            .await?
            .map_or_else(
                || "formulary-blob:mirror".to_owned(),
                |stored| stored.upstream,
            );
        database
            .save_upstream_document(
                DEFAULT_SCOPE,
                component.name.as_str(),
                &UpstreamDocument {
                    upstream,
                    document,
                    etag: None,
                    fetched_at: chrono::Utc::now(),
                },
            )
            .await?;
        let licence = metadata
            .as_ref()
            .and_then(|fields| field(fields, "License-Expression"));
        database
            .record_release(
                &component,
                &Release {
                    dated_by_first_sight: false,
                    version,
                    published: None,
                    yanked: None,
                    licence,
                    install_scripts: false,
                },
            )
            .await?;
        report.imported.push((project.to_string(), filename));
    }
    Ok(report)
}

async fn cached_page(
    database: &Database,
    component: &Component,
) -> Result<ProjectPage, GatewayError> {
    let base = url::Url::parse("https://cached.invalid/")
        .map_err(|error| formulary_store::StoreError::Conflict(error.to_string()))?;
    Ok(
        match database
            .upstream_document(DEFAULT_SCOPE, component.name.as_str())
            .await?
        {
            Some(stored) => pypi::parse_json(stored.document.as_bytes(), &base).unwrap_or_default(),
            None => ProjectPage {
                name: component.name.to_string(),
                ..ProjectPage::default()
            },
        },
    )
}

/// The project a distribution's file name belongs to: the first `-`-separated part of a wheel,
/// everything before the last `-` of an sdist.
fn project_of(filename: &str) -> Option<PackageName> {
    let name = if filename.ends_with(".whl") {
        filename.split('-').next()?
    } else {
        let stem = [".tar.gz", ".zip", ".tar.bz2", ".tgz", ".tar.xz"]
            .iter()
            .find_map(|suffix| filename.strip_suffix(suffix))?;
        stem.rsplit_once('-')?.0
    };
    PackageName::new(Ecosystem::Pypi, name).ok()
}

/// Core metadata header fields, as (name, value) in file order.
type MetadataFields = Vec<(String, String)>;

/// The core metadata (`*.dist-info/METADATA`) of a wheel: its bytes and its header lines.
fn wheel_metadata(path: &Path) -> Option<(Vec<u8>, MetadataFields)> {
    let file = std::fs::File::open(path).ok()?;
    let mut archive = zip::ZipArchive::new(std::io::BufReader::new(file)).ok()?;
    let name = archive
        .file_names()
        .find(|name| name.ends_with(".dist-info/METADATA") && name.matches('/').count() == 1)?
        .to_owned();
    let mut raw = Vec::new();
    archive
        .by_name(&name)
        .ok()?
        .take(MAX_METADATA_BYTES)
        .read_to_end(&mut raw)
        .ok()?;
    let text = String::from_utf8_lossy(&raw);
    let header = text.split("\n\n").next().unwrap_or_default();
    let fields = header
        .lines()
        .filter_map(|line| {
            line.split_once(": ")
                .map(|(key, value)| (key.to_owned(), value.trim().to_owned()))
        })
        .collect();
    Some((raw, fields))
}

fn field(fields: &[(String, String)], name: &str) -> Option<String> {
    fields
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.clone())
}
