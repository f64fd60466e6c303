//! What makes an npm tarball the tarball its packument says: a readable gzip-compressed tar
//! whose top folder (`package/`, or another single name in old tarballs) holds a
//! `package.json` naming the package and version. Used on every tarball pulled through and
//! every tarball imported.

use std::io::Read;
use std::sync::Arc;

use formulary_core::ecosystems::{Ecosystem, Version};
use formulary_core::Component;
use formulary_store::{FormatCheck, ReadSeek};

/// Largest `package.json` read from a tarball.
const MAX_MANIFEST_BYTES: u64 = 4 * 1024 * 1024;

/// The check for a tarball of `component` at `version`.
pub(crate) fn check_for(component: &Component, version: &Version) -> FormatCheck {
    let (component, version) = (component.clone(), version.clone());
    Arc::new(move |file: &mut dyn ReadSeek| manifest_of(file, &component, &version).map(|_| ()))
}

/// Reads a tarball whole and returns its `package.json`, checked against the package and
/// version; the error says why the file is not that package.
pub(crate) fn manifest_of(
    file: &mut dyn ReadSeek,
    component: &Component,
    version: &Version,
) -> Result<serde_json::Value, String> {
    let damaged = |error: std::io::Error| {
        format!("it is not a readable gzip-compressed tar archive ({error})")
    };
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut manifest = None;
    for entry in archive.entries().map_err(damaged)? {
        let mut entry = entry.map_err(damaged)?;
        let is_manifest = entry.path().is_ok_and(|path| {
            let parts: Vec<_> = path.components().collect();
            parts.len() == 2 && parts[1].as_os_str() == "package.json"
        });
        if is_manifest && manifest.is_none() {
            let mut text = Vec::new();
            (&mut entry)
                .take(MAX_MANIFEST_BYTES)
                .read_to_end(&mut text)
                .map_err(damaged)?;
            manifest = Some(text);
        }
        std::io::copy(&mut entry, &mut std::io::sink()).map_err(damaged)?;
    }
    let text = manifest.ok_or_else(|| {
        "it has no package.json in its top folder, so it is not an npm package".to_owned()
    })?;
    let manifest: serde_json::Value = serde_json::from_slice(&text)
        .map_err(|error| format!("its package.json is not JSON ({error})"))?;
    let named = manifest.get("name").and_then(serde_json::Value::as_str);
    let numbered = manifest
        .get("version")
        .and_then(serde_json::Value::as_str)
        .and_then(|text| Version::parse(Ecosystem::Npm, text).ok());
    if named != Some(component.name.as_str()) || numbered.as_ref() != Some(version) {
        return Err(format!(
            "its package.json is for {} {}, not {} {version}",
            named.unwrap_or("(no name)").escape_debug(),
            manifest
                .get("version")
                .and_then(serde_json::Value::as_str)
                .unwrap_or("(no version)")
                .escape_debug(),
            component.name
        ));
    }
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn tarball(path: &str, manifest: &str) -> Vec<u8> {
        let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
            Vec::new(),
            flate2::Compression::fast(),
        ));
        let mut header = tar::Header::new_gnu();
        header.set_size(manifest.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder
            .append_data(&mut header, path, manifest.as_bytes())
            .expect("append");
        builder
            .into_inner()
            .and_then(|encoder| encoder.finish())
            .expect("tarball")
    }

    #[test]
    fn a_tarball_must_hold_the_manifest_of_its_package_and_version() {
        let component = Component::new(Ecosystem::Npm, "@demo/left-pad").expect("name");
        let version = Version::parse(Ecosystem::Npm, "1.3.0").expect("version");
        let check = check_for(&component, &version);
        let good = tarball(
            "package/package.json",
            r#"{"name":"@demo/left-pad","version":"1.3.0"}"#,
        );
        assert!(check(&mut std::io::Cursor::new(good)).is_ok());
        let legacy = tarball(
            "left-pad/package.json",
            r#"{"name":"@demo/left-pad","version":"1.3.0"}"#,
        );
        assert!(check(&mut std::io::Cursor::new(legacy)).is_ok());
        let other = tarball(
            "package/package.json",
            r#"{"name":"right-pad","version":"1.3.0"}"#,
        );
        let why = check(&mut std::io::Cursor::new(other)).expect_err("another package");
        assert!(why.contains("right-pad 1.3.0"), "{why}");
        let nested = tarball(
            "package/lib/package.json",
            r#"{"name":"@demo/left-pad","version":"1.3.0"}"#,
        );
        let why = check(&mut std::io::Cursor::new(nested)).expect_err("no manifest");
        assert!(why.contains("no package.json"), "{why}");
        let why = check(&mut std::io::Cursor::new(b"<html>".to_vec())).expect_err("not gzip");
        assert!(why.contains("not a readable gzip"), "{why}");
    }
}
