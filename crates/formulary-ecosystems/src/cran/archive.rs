//! CRAN's `src/contrib/Meta/archive.rds`: for every package with archived versions, a data frame
//! whose row names are `"<pkg>/<pkg>_<version>.tar.gz"` (paths under `src/contrib/Archive/`) and
//! whose columns are what `file.info()` gives (`size`, `isdir`, `mode`, `mtime`, `ctime`,
//! `atime`, `uid`, `gid`, `uname`, `grname`). `remotes::install_version` reads the row names,
//! oldest first, to find a version's tarball.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::rds::{RData, RValue, RdsError};

/// One archived tarball.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArchivedFile {
    /// The file name, `<pkg>_<version>.tar.gz`.
    pub filename: String,
    /// Its size in bytes, when known.
    pub size: Option<u64>,
    /// When it was archived or last modified, in seconds since 1970 (UTC), when known.
    pub modified: Option<f64>,
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
    let count = files.len();
    let times = || {
        RValue::new(RData::Double(
            files
                .iter()
                .map(|file| file.modified.unwrap_or(f64::NAN))
                .collect(),
        ))
        .with_attribute("class", RValue::strings(&["POSIXct", "POSIXt"]))
    };
    let repeated = |text: &str| RValue::strings(&vec![text; count]);
    let columns = vec![
        (
            "size",
            RValue::new(RData::Double(
                files
                    .iter()
                    .map(|file| file.size.map_or(f64::NAN, |size| size as f64))
                    .collect(),
            )),
        ),
        (
            "isdir",
            RValue::new(RData::Logical(vec![Some(false); count])),
        ),
        (
            "mode",
            RValue::new(RData::Integer(vec![Some(0o644); count]))
                .with_attribute("class", RValue::strings(&["octmode"])),
        ),
        ("mtime", times()),
        ("ctime", times()),
        ("atime", times()),
        ("uid", RValue::new(RData::Integer(vec![Some(0); count]))),
        ("gid", RValue::new(RData::Integer(vec![Some(0); count]))),
        ("uname", repeated("cran")),
        ("grname", repeated("cran")),
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
        let column = |wanted: &str| -> Option<&Vec<f64>> {
            let RData::List(columns) = &frame.data else {
                return None;
            };
            let names = frame.attribute("names")?.as_strings();
            let index = names.iter().position(|name| *name == wanted)?;
            match &columns.get(index)?.data {
                RData::Double(values) => Some(values),
                _ => None,
            }
        };
        let (sizes, times) = (column("size"), column("mtime"));
        let files = rows
            .iter()
            .enumerate()
            .filter_map(|(index, row)| {
                let filename = row.strip_prefix(package)?.strip_prefix('/')?;
                if filename.contains('/') {
                    return None;
                }
                let number = |values: Option<&Vec<f64>>| {
                    values
                        .and_then(|values| values.get(index))
                        .copied()
                        .filter(|value| value.is_finite())
                };
                Some(ArchivedFile {
                    filename: filename.to_owned(),
                    size: number(sizes).map(|size| size as u64),
                    modified: number(times),
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
                },
                ArchivedFile {
                    filename: "readxl_1.4.0.tar.gz".to_owned(),
                    size: None,
                    modified: None,
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
