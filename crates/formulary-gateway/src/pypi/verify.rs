//! What makes a distribution file the file its name says: a wheel is a zip archive holding the
//! `.dist-info` of that project and version (with its `METADATA`); an sdist opens as the
//! archive its suffix says. Used on every file pulled through and every file imported.

use std::io::Read;
use std::sync::Arc;

use formulary_core::ecosystems::{Ecosystem, PackageName, Version};
use formulary_store::{FormatCheck, ReadSeek};

/// The check for a distribution file, by its name; `None` for kinds Formulary does not open
/// (legacy `.egg`, `.exe` and the like, and `.metadata` files).
pub(crate) fn check_for(filename: &str) -> Option<FormatCheck> {
    let filename = filename.to_owned();
    if filename.ends_with(".whl") {
        return Some(Arc::new(move |file: &mut dyn ReadSeek| {
            check_wheel(file, &filename)
        }));
    }
    if filename.ends_with(".tar.gz") {
        return Some(Arc::new(|file: &mut dyn ReadSeek| check_tar_gz(file)));
    }
    if filename.ends_with(".zip") {
        return Some(Arc::new(|file: &mut dyn ReadSeek| {
            zip::ZipArchive::new(file)
                .map(|_| ())
                .map_err(|error| format!("it is not a readable zip archive ({error})"))
        }));
    }
    None
}

/// The project and version a wheel's name carries (`{name}-{version}(-{build})?-{tags}.whl`).
fn wheel_name(filename: &str) -> Option<(PackageName, Version)> {
    let stem = filename.strip_suffix(".whl")?;
    let mut parts = stem.split('-');
    let name = parts.next()?;
    let version = parts.next()?;
    Some((
        PackageName::new(Ecosystem::Pypi, name).ok()?,
        Version::parse(Ecosystem::Pypi, version).ok()?,
    ))
}

/// A wheel must be a zip archive with a top-level `{name}-{version}.dist-info/METADATA` whose
/// name and version are the ones in the file name.
pub(crate) fn check_wheel(file: &mut dyn ReadSeek, filename: &str) -> Result<(), String> {
    wheel_metadata(file, filename).map(|_| ())
}

/// The core metadata of a wheel: its top-level `{name}-{version}.dist-info/METADATA`, where the
/// name and version are the ones in the file name (at most 16 MiB of it).
pub(crate) fn wheel_metadata(file: &mut dyn ReadSeek, filename: &str) -> Result<String, String> {
    let (name, version) =
        wheel_name(filename).ok_or_else(|| "its file name is not a wheel name".to_owned())?;
    let mut archive = zip::ZipArchive::new(file)
        .map_err(|error| format!("it is not a readable zip archive ({error}), so not a wheel"))?;
    let metadata = archive
        .file_names()
        .find(|member| {
            let Some(folder) = member
                .strip_suffix(".dist-info/METADATA")
                .filter(|folder| !folder.contains('/'))
            else {
                return false;
            };
            let Some((member_name, member_version)) = folder.rsplit_once('-') else {
                return false;
            };
            PackageName::new(Ecosystem::Pypi, member_name).is_ok_and(|found| found == name)
                && Version::parse(Ecosystem::Pypi, member_version)
                    .is_ok_and(|found| found == version)
        })
        .map(str::to_owned)
        .ok_or_else(|| {
            format!("it holds no {name}-{version}.dist-info/METADATA, so it is not the wheel its name says")
        })?;
    let mut member = archive
        .by_name(&metadata)
        .map_err(|error| format!("its {metadata} cannot be read ({error})"))?;
    let mut bytes = Vec::new();
    (&mut member)
        .take(16 * 1024 * 1024)
        .read_to_end(&mut bytes)
        .map_err(|error| format!("its {metadata} is damaged ({error})"))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// An sdist `.tar.gz` must be a readable gzip-compressed tar archive (read whole, so that a
/// truncated or damaged one is noticed).
fn check_tar_gz(file: &mut dyn ReadSeek) -> Result<(), String> {
    let damaged = |error: std::io::Error| {
        format!("it is not a readable gzip-compressed tar archive ({error})")
    };
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut members = 0usize;
    for entry in archive.entries().map_err(damaged)? {
        let mut entry = entry.map_err(damaged)?;
        std::io::copy(&mut entry, &mut std::io::sink()).map_err(damaged)?;
        members += 1;
    }
    if members == 0 {
        return Err("it is an empty archive".to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn wheel(metadata_path: &str) -> Vec<u8> {
        let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        writer
            .start_file(metadata_path, zip::write::SimpleFileOptions::default())
            .expect("member");
        writer
            .write_all(b"Metadata-Version: 2.1\nName: Demo.Pkg\nVersion: 1.0\n")
            .expect("write");
        writer.finish().expect("zip").into_inner()
    }

    #[test]
    fn a_wheel_must_hold_the_dist_info_of_its_name_and_version() {
        let check = check_for("demo_pkg-1.0-py3-none-any.whl").expect("wheels are checked");
        let good = wheel("Demo.Pkg-1.0.dist-info/METADATA");
        assert!(check(&mut std::io::Cursor::new(good)).is_ok());
        let other = wheel("other-1.0.dist-info/METADATA");
        let why = check(&mut std::io::Cursor::new(other)).expect_err("another project");
        assert!(why.contains("not the wheel its name says"), "{why}");
        let older = wheel("demo_pkg-0.9.dist-info/METADATA");
        assert!(check(&mut std::io::Cursor::new(older)).is_err());
        let why = check(&mut std::io::Cursor::new(b"<html>".to_vec())).expect_err("not a zip");
        assert!(why.contains("not a readable zip"), "{why}");
        assert!(check_for("demo-1.0.exe").is_none());
    }
}
