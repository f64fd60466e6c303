//! What makes a CRAN package file the file its name says: a readable archive (gzip-compressed
//! tar for sources and macOS binaries, zip for Windows binaries) holding `<package>/DESCRIPTION`
//! for that package and version. Used on every file pulled through and every file imported.

use std::io::Read;
use std::sync::Arc;

use deb822_fast::Paragraph;
use formulary_core::ecosystems::cran;
use formulary_core::ecosystems::{Ecosystem, Version};
use formulary_core::Component;
use formulary_store::{FormatCheck, ReadSeek};

/// Largest DESCRIPTION read from a package.
const MAX_DESCRIPTION_BYTES: u64 = 1024 * 1024;

/// The check for a package file of `component` at `version`, by its file name's suffix.
pub(crate) fn check_for(filename: &str, component: &Component, version: &Version) -> FormatCheck {
    let zip = filename.ends_with(".zip");
    let (component, version) = (component.clone(), version.clone());
    Arc::new(move |file: &mut dyn ReadSeek| {
        description_of(file, zip, &component, &version).map(|_| ())
    })
}

/// Reads a package archive whole and returns its DESCRIPTION, checked against the package and
/// version the file name carries; the error says why the file is not that package.
pub(crate) fn description_of(
    file: &mut dyn ReadSeek,
    zip: bool,
    component: &Component,
    version: &Version,
) -> Result<Paragraph, String> {
    let package = component.name.as_str();
    let description = if zip {
        zip_description(file, package)?
    } else {
        tar_description(file, package)?
    };
    let paragraph = cran::parse_packages(&description)
        .ok()
        .and_then(|mut paragraphs| paragraphs.pop())
        .ok_or_else(|| format!("its {package}/DESCRIPTION cannot be read as a DESCRIPTION file"))?;
    let named = paragraph.get("Package").unwrap_or_default();
    let numbered = paragraph
        .get("Version")
        .and_then(|text| Version::parse(Ecosystem::Cran, text).ok());
    if named != package || numbered.as_ref() != Some(version) {
        return Err(format!(
            "its DESCRIPTION is for {} {}, not the {package} {version} its file name says",
            named.escape_debug(),
            paragraph.get("Version").unwrap_or_default().escape_debug()
        ));
    }
    Ok(paragraph)
}

/// `<package>/DESCRIPTION` of a gzip-compressed tarball, reading the whole archive so that a
/// damaged one is noticed.
fn tar_description(file: &mut dyn ReadSeek, package: &str) -> Result<String, String> {
    let damaged = |error: std::io::Error| {
        format!("it is not a readable gzip-compressed tar archive ({error})")
    };
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut description = None;
    let wanted = format!("{package}/DESCRIPTION");
    for entry in archive.entries().map_err(damaged)? {
        let mut entry = entry.map_err(damaged)?;
        let is_description = entry
            .path()
            .is_ok_and(|path| path.to_string_lossy() == wanted);
        if is_description && description.is_none() {
            let mut text = String::new();
            (&mut entry)
                .take(MAX_DESCRIPTION_BYTES)
                .read_to_string(&mut text)
                .map_err(damaged)?;
            description = Some(text);
        }
        std::io::copy(&mut entry, &mut std::io::sink()).map_err(damaged)?;
    }
    description.ok_or_else(|| format!("it has no {wanted}, so it is not an R package"))
}

/// `<package>/DESCRIPTION` of a zip archive (a Windows binary package), checking every member.
fn zip_description(file: &mut dyn ReadSeek, package: &str) -> Result<String, String> {
    let damaged =
        |error: zip::result::ZipError| format!("it is not a readable zip archive ({error})");
    let mut archive = zip::ZipArchive::new(file).map_err(damaged)?;
    let wanted = format!("{package}/DESCRIPTION");
    let mut description = None;
    for index in 0..archive.len() {
        let mut member = archive.by_index(index).map_err(damaged)?;
        if member.name() == wanted {
            let mut text = String::new();
            (&mut member)
                .take(MAX_DESCRIPTION_BYTES)
                .read_to_string(&mut text)
                .map_err(|error| damaged(error.into()))?;
            description = Some(text);
        }
        std::io::copy(&mut member, &mut std::io::sink()).map_err(|error| damaged(error.into()))?;
    }
    description.ok_or_else(|| format!("it has no {wanted}, so it is not an R package"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tarball(path: &str, description: &str) -> Vec<u8> {
        let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
            Vec::new(),
            flate2::Compression::fast(),
        ));
        let mut header = tar::Header::new_gnu();
        header.set_size(description.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder
            .append_data(&mut header, path, description.as_bytes())
            .expect("append");
        builder
            .into_inner()
            .and_then(|encoder| encoder.finish())
            .expect("tarball")
    }

    #[test]
    fn a_tarball_must_hold_the_description_of_its_package_and_version() {
        let component = Component::new(Ecosystem::Cran, "png").expect("name");
        let version = Version::parse(Ecosystem::Cran, "0.1-8").expect("version");
        let check = check_for("png_0.1-8.tar.gz", &component, &version);
        let good = tarball("png/DESCRIPTION", "Package: png\nVersion: 0.1-8\n");
        assert!(check(&mut std::io::Cursor::new(good)).is_ok());
        let other = tarball("jpeg/DESCRIPTION", "Package: jpeg\nVersion: 0.1-8\n");
        let why = check(&mut std::io::Cursor::new(other)).expect_err("another package");
        assert!(why.contains("no png/DESCRIPTION"), "{why}");
        let renamed = tarball("png/DESCRIPTION", "Package: png\nVersion: 0.1-7\n");
        let why = check(&mut std::io::Cursor::new(renamed)).expect_err("another version");
        assert!(why.contains("png 0.1-7"), "{why}");
        let why = check(&mut std::io::Cursor::new(
            b"<html>maintenance</html>".to_vec(),
        ))
        .expect_err("not gzip");
        assert!(why.contains("not a readable gzip"), "{why}");
    }
}
