//! CRAN's `src/contrib/Meta/archive.rds`: for every package with archived versions, a data frame
//! whose row names are `"<pkg>/<pkg>_<version>.tar.gz"` (paths under `src/contrib/Archive/`) and
//! whose columns are what `file.info()` gives (`size`, `isdir`, `mode`, `mtime`, `ctime`,
//! `atime`, `uid`, `gid`, `uname`, `grname`). `remotes::install_version` reads the row names,
//! oldest first, to find a version's tarball. The gateway passes on every column the upstream
//! gives for a file; only files the upstream's archive.rds does not list get made-up values.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::rds::{RData, RValue, RdsError};

/// One archived tarball.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ArchivedFile {
    /// The file name, `<pkg>_<version>.tar.gz`.
    pub filename: String,
    /// Its size in bytes, when known.
    pub size: Option<u64>,
    /// When it was archived or last modified, in seconds since 1970 (UTC), when known.
    pub modified: Option<f64>,
    /// The other `file.info()` columns, as the upstream gave them.
    #[serde(default)]
    pub info: FileInfo,
}

/// The `file.info()` columns of an archived file other than size and mtime, as the upstream's
/// archive.rds gives them (`None` where it does not).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FileInfo {
    /// Permission bits (`mode`, class `octmode`).
    pub mode: Option<i32>,
    /// Status change time, seconds since 1970.
    pub ctime: Option<f64>,
    /// Access time, seconds since 1970.
    pub atime: Option<f64>,
    /// Owner's user id.
    pub uid: Option<i32>,
    /// Owner's group id.
    pub gid: Option<i32>,
    /// Owner's user name (CRAN's maintainers, e.g. the person who archived the file).
    pub uname: Option<String>,
    /// Owner's group name.
    pub grname: Option<String>,
}

/// Archived tarballs by package name; each package's files in the order they are listed
/// (oldest version first).
pub type Archive = BTreeMap<String, Vec<ArchivedFile>>;

/// The archive as the R value `archive.rds` holds (serialize it with `rds::serialize`).
pub fn archive_value(archive: &Archive) -> RValue {
    let names: Vec<&str> = archive.keys().map(String::as_str).collect();
    let frames = archive
        .iter()
        .map(|(package, files)| frame(package, files))
        .collect();
    RValue::new(RData::List(frames)).with_attribute("names", RValue::strings(&names))
}

fn frame(package: &str, files: &[ArchivedFile]) -> RValue {
    let doubles = |value: &dyn Fn(&ArchivedFile) -> Option<f64>| {
        RValue::new(RData::Double(
            files
                .iter()
                .map(|file| value(file).unwrap_or(f64::NAN))
                .collect(),
        ))
    };
    let times = |value: &dyn Fn(&ArchivedFile) -> Option<f64>| {
        doubles(value).with_attribute("class", RValue::strings(&["POSIXct", "POSIXt"]))
    };
    let integers = |value: &dyn Fn(&ArchivedFile) -> Option<i32>| {
        RValue::new(RData::Integer(files.iter().map(value).collect()))
    };
    let names = |value: &dyn Fn(&ArchivedFile) -> Option<&String>| {
        RValue::new(RData::Character(
            files
                .iter()
                .map(|file| Some(value(file).map_or("cran", String::as_str).to_owned()))
                .collect(),
        ))
    };
    let columns = vec![
        ("size", doubles(&|file| file.size.map(|size| size as f64))),
        (
            "isdir",
            RValue::new(RData::Logical(vec![Some(false); files.len()])),
        ),
        (
            "mode",
            integers(&|file| Some(file.info.mode.unwrap_or(0o644)))
                .with_attribute("class", RValue::strings(&["octmode"])),
        ),
        ("mtime", times(&|file| file.modified)),
        ("ctime", times(&|file| file.info.ctime.or(file.modified))),
        ("atime", times(&|file| file.info.atime.or(file.modified))),
        ("uid", integers(&|file| Some(file.info.uid.unwrap_or(0)))),
        ("gid", integers(&|file| Some(file.info.gid.unwrap_or(0)))),
        ("uname", names(&|file| file.info.uname.as_ref())),
        ("grname", names(&|file| file.info.grname.as_ref())),
    ];
    let names: Vec<&str> = columns.iter().map(|(name, _)| *name).collect();
    let rows: Vec<String> = files
        .iter()
        .map(|file| format!("{package}/{}", file.filename))
        .collect();
    RValue::new(RData::List(
        columns.into_iter().map(|(_, column)| column).collect(),
    ))
    .with_attribute("names", RValue::strings(&names))
    .with_attribute("class", RValue::strings(&["data.frame"]))
    .with_attribute("row.names", RValue::strings(&rows))
}

/// Reads an archive from the R value of an `archive.rds` (as `rds::deserialize` gives it).
/// Rows that are not `<pkg>/<file>` paths of that package are left out.
pub fn archive_from_value(value: &RValue) -> Result<Archive, RdsError> {
    let RData::List(frames) = &value.data else {
        return Err(RdsError::Malformed(
            "archive.rds does not hold a list".to_owned(),
        ));
    };
    let names = value
        .attribute("names")
        .map(RValue::as_strings)
        .unwrap_or_default();
    if names.len() != frames.len() {
        return Err(RdsError::Malformed(
            "archive.rds has a list without a name for every package".to_owned(),
        ));
    }
    let mut archive = Archive::new();
    for (package, frame) in names.into_iter().zip(frames) {
        let rows = frame
            .attribute("row.names")
            .map(RValue::as_strings)
            .unwrap_or_default();
        let column = |wanted: &str| -> Option<&RData> {
            let RData::List(columns) = &frame.data else {
                return None;
            };
            let names = frame.attribute("names")?.as_strings();
            let index = names.iter().position(|name| *name == wanted)?;
            Some(&columns.get(index)?.data)
        };
        let double = |name: &str, index: usize| match column(name) {
            Some(RData::Double(values)) => values.get(index).copied().filter(|v| v.is_finite()),
            Some(RData::Integer(values)) => values.get(index).copied().flatten().map(f64::from),
            _ => None,
        };
        let integer = |name: &str, index: usize| match column(name) {
            Some(RData::Integer(values)) => values.get(index).copied().flatten(),
            _ => None,
        };
        let text = |name: &str, index: usize| match column(name) {
            Some(RData::Character(values)) => values.get(index).cloned().flatten(),
            _ => None,
        };
        let files = rows
            .iter()
            .enumerate()
            .filter_map(|(index, row)| {
                let filename = row.strip_prefix(package)?.strip_prefix('/')?;
                if filename.contains('/') {
                    return None;
                }
                Some(ArchivedFile {
                    filename: filename.to_owned(),
                    size: double("size", index).map(|size| size as u64),
                    modified: double("mtime", index),
                    info: FileInfo {
                        mode: integer("mode", index),
                        ctime: double("ctime", index),
                        atime: double("atime", index),
                        uid: integer("uid", index),
                        gid: integer("gid", index),
                        uname: text("uname", index),
                        grname: text("grname", index),
                    },
                })
            })
            .collect();
        archive.insert(package.to_owned(), files);
    }
    Ok(archive)
}

/// Reads CRAN's `src/contrib/Meta/current.rds` (one `file.info()` data frame of the current
/// tarballs, row names being their file names): each tarball's modification time, in seconds
/// since 1970 (UTC), which is when CRAN published it. Rows without a usable time are left out.
pub fn current_times_from_value(value: &RValue) -> Result<BTreeMap<String, f64>, RdsError> {
    let RData::List(columns) = &value.data else {
        return Err(RdsError::Malformed(
            "current.rds does not hold a data frame".to_owned(),
        ));
    };
    let rows = value
        .attribute("row.names")
        .map(RValue::as_strings)
        .unwrap_or_default();
    let names = value
        .attribute("names")
        .map(RValue::as_strings)
        .unwrap_or_default();
    let Some(RData::Double(times)) = names
        .iter()
        .position(|name| *name == "mtime")
        .and_then(|index| columns.get(index))
        .map(|column| &column.data)
    else {
        return Err(RdsError::Malformed(
            "current.rds has no mtime column".to_owned(),
        ));
    };
    Ok(rows
        .iter()
        .zip(times)
        .filter(|(row, time)| time.is_finite() && !row.contains('/') && row.ends_with(".tar.gz"))
        .map(|(row, time)| ((*row).to_owned(), *time))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::super::rds::{deserialize, serialize};
    use super::*;

    #[test]
    fn archives_round_trip_through_rds() {
        let mut archive = Archive::new();
        archive.insert(
            "readxl".to_owned(),
            vec![
                ArchivedFile {
                    filename: "readxl_1.2.0.tar.gz".to_owned(),
                    size: Some(1234),
                    modified: Some(1_600_000_000.0),
                    info: FileInfo {
                        mode: Some(0o664),
                        ctime: Some(1_600_000_001.0),
                        atime: Some(1_600_000_002.0),
                        uid: Some(1004),
                        gid: Some(1005),
                        uname: Some("hornik".to_owned()),
                        grname: Some("cranadmin".to_owned()),
                    },
                },
                ArchivedFile {
                    filename: "readxl_1.4.0.tar.gz".to_owned(),
                    size: Some(99),
                    modified: Some(1_600_000_100.0),
                    info: FileInfo {
                        mode: Some(0o644),
                        ctime: Some(1_600_000_100.0),
                        atime: Some(1_600_000_100.0),
                        uid: Some(0),
                        gid: Some(0),
                        uname: Some("cran".to_owned()),
                        grname: Some("cran".to_owned()),
                    },
                },
            ],
        );
        archive.insert("cellar".to_owned(), Vec::new());
        let bytes = serialize(&archive_value(&archive));
        let again = archive_from_value(&deserialize(&bytes).unwrap()).unwrap();
        assert_eq!(again, archive);
    }

    #[test]
    fn current_times_come_from_the_mtime_column() {
        let frame = RValue::new(RData::List(vec![
            RValue::new(RData::Double(vec![10.0, 20.0, 30.0])),
            RValue::new(RData::Double(vec![
                1_700_000_000.0,
                f64::NAN,
                1_700_000_100.0,
            ])),
        ]))
        .with_attribute("names", RValue::strings(&["size", "mtime"]))
        .with_attribute(
            "row.names",
            RValue::strings(&["a_1.0.tar.gz", "b_2.0.tar.gz", "../c_1.0.tar.gz"]),
        );
        let times = current_times_from_value(&frame).unwrap();
        assert_eq!(times.len(), 1, "{times:?}");
        assert_eq!(times["a_1.0.tar.gz"], 1_700_000_000.0);
        assert!(current_times_from_value(&RValue::strings(&["x"])).is_err());
    }

    #[test]
    fn rows_of_other_packages_are_ignored() {
        let frame = RValue::new(RData::List(Vec::new())).with_attribute(
            "row.names",
            RValue::strings(&["a/a_1.0.tar.gz", "b/b_1.0.tar.gz", "a/../x.tar.gz"]),
        );
        let value =
            RValue::new(RData::List(vec![frame])).with_attribute("names", RValue::strings(&["a"]));
        let archive = archive_from_value(&value).unwrap();
        let names: Vec<&str> = archive["a"]
            .iter()
            .map(|file| file.filename.as_str())
            .collect();
        assert_eq!(names, ["a_1.0.tar.gz"]);
    }
}
