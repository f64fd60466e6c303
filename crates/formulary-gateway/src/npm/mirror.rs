//! `mirror import npm`: tarballs (`npm pack` output, or files copied from a registry) stored in
//! the blob store and described in a packument kept as the package's cached upstream document,
//! so that an air-gapped site (`npm_upstreams = []`) serves them with no upstream at all. Every
//! tarball is checked first: it must be a readable gzip tar holding a `package.json` with a
//! valid name and version. Its integrity (SHA-512) and shasum (SHA-1) are computed here, so npm
//! and pnpm verify what they install exactly as from a registry. Versions already imported are
//! kept; importing the same version again replaces it.
//!
//! A tarball carries no publication date, so imported versions have no `time` entry: the
//! cooldown does not apply to them and their decision says the date is unknown.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use chrono::Utc;
use formulary_core::ecosystems::npm::{self, Packument};
use formulary_core::ecosystems::{Ecosystem, Version};
use formulary_core::Component;
use formulary_store::{BlobStore, Database, Digests, UpstreamDocument};
use serde_json::{Map, Value};
use sha1::Digest as _;

use super::{stored, verify, BLOB_SCHEME, SCOPE};
use crate::engine::import::MirrorReport;
use crate::error::GatewayError;

/// The origin recorded for imported packuments.
const MIRROR_ORIGIN: &str = "formulary-blob:mirror";

/// Largest tarball imported.
const MAX_TARBALL_BYTES: u64 = 512 * 1024 * 1024;

/// Imports every `.tgz` in `folder` (not recursive).
pub async fn import_npm_folder(
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
        if !filename.ends_with(".tgz") {
            report
                .skipped
                .push((path, "not an npm tarball (.tgz)".to_owned()));
            continue;
        }
        match import_one(database, blobs, &path, &filename).await {
            Ok(name) => report.imported.push((name, filename)),
            Err(Skip(why)) => report.skipped.push((path, why)),
        }
    }
    Ok(report)
}

/// Why one tarball was not imported.
struct Skip(String);

impl From<GatewayError> for Skip {
    fn from(error: GatewayError) -> Skip {
        Skip(error.to_string())
    }
}

async fn import_one(
    database: &Database,
    blobs: &BlobStore,
    path: &Path,
    filename: &str,
) -> Result<String, Skip> {
    let size = std::fs::metadata(path)
        .map_err(|error| Skip(error.to_string()))?
        .len();
    if size > MAX_TARBALL_BYTES {
        return Err(Skip("it is larger than 512 MiB".to_owned()));
    }
    let bytes = std::fs::read(path).map_err(|error| Skip(error.to_string()))?;
    let manifest = read_manifest(&bytes)?;
    let name = manifest
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| Skip("its package.json has no name".to_owned()))?
        .to_owned();
    let version_text = manifest
        .get("version")
        .and_then(Value::as_str)
        .ok_or_else(|| Skip("its package.json has no version".to_owned()))?
        .to_owned();
    let component =
        Component::new(Ecosystem::Npm, &name).map_err(|error| Skip(error.to_string()))?;
    let version =
        Version::parse(Ecosystem::Npm, &version_text).map_err(|error| Skip(error.to_string()))?;
    // The same check every pulled-through tarball passes.
    verify::check_for(&component, &version)(&mut std::io::Cursor::new(&bytes)).map_err(Skip)?;
    let integrity = format!(
        "sha512-{}",
        base64::engine::general_purpose::STANDARD.encode(sha2::Sha512::digest(&bytes))
    );
    let shasum = hex::encode(sha1::Sha1::digest(&bytes));
    let expected = Digests::none()
        .with_integrity(&integrity)
        .map_err(|error| Skip(error.to_string()))?;
    let blob = blobs
        .put_verified(
            futures::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from(bytes))]),
            &expected,
            None,
        )
        .await
        .map_err(|error| Skip(error.to_string()))?;
    let mut version_object = manifest.clone();
    version_object.insert(
        "dist".to_owned(),
        serde_json::json!({
            "integrity": integrity,
            "shasum": shasum,
            "tarball": format!("{BLOB_SCHEME}sha256/{}/{filename}", blob.sha256),
        }),
    );
    let stored = database
        .upstream_document(SCOPE, component.name.as_str())
        .await
        .map_err(GatewayError::from)?;
    let mut document: Map<String, Value> = stored
        .as_ref()
        .and_then(|stored| serde_json::from_str(&stored.document).ok())
        .unwrap_or_default();
    document.insert("_id".to_owned(), Value::String(name.clone()));
    document.insert("name".to_owned(), Value::String(name.clone()));
    let versions = document
        .entry("versions")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Some(versions) = versions.as_object_mut() {
        versions.insert(version_text.clone(), Value::Object(version_object));
    }
    let newest = document
        .get("versions")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(text, _)| Some((Version::parse(Ecosystem::Npm, text).ok()?, text.clone())))
        .filter(|(version, _)| !version.is_prerelease())
        .max_by(|left, right| left.0.cmp(&right.0))
        .map(|(_, text)| text)
        .unwrap_or(version_text);
    let tags = document
        .entry("dist-tags")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Some(tags) = tags.as_object_mut() {
        tags.insert("latest".to_owned(), Value::String(newest));
    }
    let text = serde_json::to_string(&document).map_err(|error| Skip(error.to_string()))?;
    // Refuse to store what the gateway could not read back.
    Packument::parse(text.as_bytes(), &name).map_err(|error| Skip(error.to_string()))?;
    let facts = npm::read_facts(text.as_bytes(), &name).map_err(|error| Skip(error.to_string()))?;
    stored::save(
        database,
        component.name.as_str(),
        &UpstreamDocument {
            upstream: MIRROR_ORIGIN.to_owned(),
            document: text,
            etag: None,
            fetched_at: Utc::now(),
        },
        &facts,
    )
    .await
    .map_err(GatewayError::from)?;
    Ok(name)
}

/// `package.json` of the tarball's top folder.
fn read_manifest(bytes: &[u8]) -> Result<Map<String, Value>, Skip> {
    use std::io::Read;
    let damaged = |error: std::io::Error| {
        Skip(format!(
            "it is not a readable gzip-compressed tar archive ({error})"
        ))
    };
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
    for entry in archive.entries().map_err(damaged)? {
        let mut entry = entry.map_err(damaged)?;
        let is_manifest = entry.path().is_ok_and(|path| {
            let parts: Vec<_> = path.components().collect();
            parts.len() == 2 && parts[1].as_os_str() == "package.json"
        });
        if is_manifest {
            let mut text = Vec::new();
            (&mut entry)
                .take(4 * 1024 * 1024)
                .read_to_end(&mut text)
                .map_err(damaged)?;
            return serde_json::from_slice(&text)
                .map_err(|error| Skip(format!("its package.json is not a JSON object ({error})")));
        }
    }
    Err(Skip(
        "it has no package.json in its top folder, so it is not an npm package".to_owned(),
    ))
}
