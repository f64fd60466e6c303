//! What makes a conda package file the package its record says: a `.conda` file is a zip
//! archive holding an `info-….tar.zst` member, a `.tar.bz2` file is a bzip2-compressed tar
//! archive, and either holds an `info/index.json` whose name, version, build, build number and
//! subdirectory are the ones of its record in `repodata.json`. Dependencies are not compared:
//! channels correct them in `repodata.json` after the fact (conda-forge's repodata patches),
//! so a sound package may list other ones. Used on every
//! file imported by `mirror import conda` and on every file pulled through from an upstream.

use std::io::Read;
use std::sync::Arc;

use formulary_store::{FormatCheck, ReadSeek};
use serde_json::{Map, Value};

/// Largest `info/index.json` read.
const MAX_INDEX_BYTES: u64 = 1024 * 1024;
/// Largest `info-….tar.zst` member of a `.conda` file read (it holds metadata only).
const MAX_INFO_BYTES: u64 = 256 * 1024 * 1024;

/// The fields of `info/index.json` that must equal the record's, when the package writes them.
const COMPARED: [&str; 5] = ["name", "version", "build", "build_number", "subdir"];

/// The check for a package file against its record (the record's JSON as `repodata.json`
/// writes it); `None` for a file name that is not a conda package.
pub(crate) fn check_for(filename: &str, record: &[u8]) -> Option<FormatCheck> {
    let record: Map<String, Value> = serde_json::from_slice(record).unwrap_or_default();
    if filename.ends_with(".conda") {
        return Some(Arc::new(move |file: &mut dyn ReadSeek| {
            compare(&conda_index(file)?, &record)
        }));
    }
    if filename.ends_with(".tar.bz2") {
        return Some(Arc::new(move |file: &mut dyn ReadSeek| {
            compare(&tar_bz2_index(file)?, &record)
        }));
    }
    None
}

/// `info/index.json` of a `.conda` file (zip, with the metadata in `info-….tar.zst`).
fn conda_index(file: &mut dyn ReadSeek) -> Result<Map<String, Value>, String> {
    let mut archive = zip::ZipArchive::new(file).map_err(|error| {
        format!("it is not a readable zip archive ({error}), so not a .conda package")
    })?;
    let member = archive
        .file_names()
        .find(|name| name.starts_with("info-") && name.ends_with(".tar.zst") && !name.contains('/'))
        .map(str::to_owned)
        .ok_or_else(|| {
            "it holds no info-….tar.zst member, so it is not a .conda package".to_owned()
        })?;
    let mut info = Vec::new();
    archive
        .by_name(&member)
        .map_err(|error| format!("its {member} cannot be read ({error})"))?
        .take(MAX_INFO_BYTES)
        .read_to_end(&mut info)
        .map_err(|error| format!("its {member} is damaged ({error})"))?;
    let decoder = zstd::stream::read::Decoder::new(info.as_slice())
        .map_err(|error| format!("its {member} is not zstd-compressed ({error})"))?;
    index_in_tar(decoder, &member)
}

/// `info/index.json` of a `.tar.bz2` package.
fn tar_bz2_index(file: &mut dyn ReadSeek) -> Result<Map<String, Value>, String> {
    index_in_tar(
        bzip2::read::BzDecoder::new(file),
        "bzip2-compressed tar archive",
    )
}

/// Reads `info/index.json` from a tar stream.
fn index_in_tar(reader: impl Read, what: &str) -> Result<Map<String, Value>, String> {
    let damaged = |error: std::io::Error| format!("its {what} is not readable ({error})");
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries().map_err(damaged)? {
        let mut entry = entry.map_err(damaged)?;
        let is_index = entry.path().is_ok_and(|path| {
            let path = path.to_string_lossy();
            path.trim_start_matches("./") == "info/index.json"
        });
        if !is_index {
            continue;
        }
        let mut bytes = Vec::new();
        (&mut entry)
            .take(MAX_INDEX_BYTES)
            .read_to_end(&mut bytes)
            .map_err(damaged)?;
        return serde_json::from_slice(&bytes)
            .map_err(|error| format!("its info/index.json is not a JSON object ({error})"));
    }
    Err(format!(
        "its {what} holds no info/index.json, so it is not a conda package"
    ))
}

/// The package's own metadata must agree with its record on every compared field it writes.
fn compare(index: &Map<String, Value>, record: &Map<String, Value>) -> Result<(), String> {
    for field in COMPARED {
        let (found, expected) = match (index.get(field), record.get(field)) {
            (None, _) => continue,
            (Some(found), Some(expected)) => (found, expected),
            (Some(found), None) => {
                return Err(format!(
                    "its info/index.json gives {field} {found} but its record in repodata.json has none; index the channel again"
                ))
            }
        };
        if found != expected {
            return Err(format!(
                "its info/index.json gives {field} {found} but its record in repodata.json says {expected}, so it is not the package the record describes; index the channel again or replace the file"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Cursor, Write};

    const RECORD: &str = r#"{"name":"tinylib","version":"1.0","build":"0","build_number":0,"subdir":"noarch","depends":[],"sha256":"aa"}"#;

    fn info_tar(index: &str) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(index.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder
            .append_data(&mut header, "info/index.json", index.as_bytes())
            .expect("member");
        builder.into_inner().expect("tar")
    }

    fn tar_bz2(index: &str) -> Vec<u8> {
        let mut encoder = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::default());
        encoder.write_all(&info_tar(index)).expect("bzip2");
        encoder.finish().expect("bzip2")
    }

    fn dot_conda(index: &str) -> Vec<u8> {
        let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        writer.start_file("metadata.json", options).expect("member");
        writer
            .write_all(br#"{"conda_pkg_format_version": 2}"#)
            .expect("write");
        writer
            .start_file("info-tinylib-1.0-0.tar.zst", options)
            .expect("member");
        writer
            .write_all(&zstd::bulk::compress(&info_tar(index), 3).expect("zstd"))
            .expect("write");
        writer.finish().expect("zip").into_inner()
    }

    #[test]
    fn a_package_must_hold_the_index_of_its_record() {
        let index = r#"{"name":"tinylib","version":"1.0","build":"0","build_number":0,"subdir":"noarch","depends":[],"license":"MIT"}"#;
        let bz2 = check_for("tinylib-1.0-0.tar.bz2", RECORD.as_bytes()).expect("checked");
        assert_eq!(bz2(&mut Cursor::new(tar_bz2(index))), Ok(()));
        let conda = check_for("tinylib-1.0-0.conda", RECORD.as_bytes()).expect("checked");
        assert_eq!(conda(&mut Cursor::new(dot_conda(index))), Ok(()));

        let other = index.replace("\"1.0\"", "\"2.0\"");
        let why = bz2(&mut Cursor::new(tar_bz2(&other))).expect_err("another version");
        assert!(
            why.contains("version \"2.0\"") && why.contains("says \"1.0\""),
            "{why}"
        );
        let rebuilt = index.replace("\"build_number\":0", "\"build_number\":1");
        let why = conda(&mut Cursor::new(dot_conda(&rebuilt))).expect_err("another build");
        assert!(why.contains("build_number 1"), "{why}");
        // Dependencies patched in repodata.json after the build do not make it another package.
        let patched = index.replace("\"depends\":[]", "\"depends\":[\"python\"]");
        assert_eq!(conda(&mut Cursor::new(dot_conda(&patched))), Ok(()));

        let why = bz2(&mut Cursor::new(b"BZh9 not really".to_vec())).expect_err("damaged");
        assert!(why.contains("not readable"), "{why}");
        let why = conda(&mut Cursor::new(tar_bz2(index))).expect_err("not a zip");
        assert!(why.contains("not a readable zip archive"), "{why}");
        assert!(check_for("tinylib-1.0-0.whl", RECORD.as_bytes()).is_none());
    }
}
