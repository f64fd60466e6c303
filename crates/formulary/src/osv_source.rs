//! Reads OSV records from disk: one JSON or YAML file, a folder of them (any depth, as in the
//! PyPA and R advisory databases), or an OSV `all.zip` export. Records that cannot be used are
//! reported with their file and reason; the rest still import.

use std::io::Read;
use std::path::{Path, PathBuf};

use formulary_core::advisory::{Advisory, OsvRecord, RecordFormat, MAX_RECORD_BYTES};
use formulary_store::AdvisoryImport;

/// What was read from a source.
#[derive(Debug, Default)]
pub struct LoadedRecords {
    /// Records about supported ecosystems, ready to import.
    pub imports: Vec<AdvisoryImport>,
    /// Records that could not be used: (file, reason).
    pub failures: Vec<(String, String)>,
    /// Records that concern only ecosystems Formulary does not serve.
    pub other_ecosystems: usize,
    /// Warnings about parts of records (for example a range with an unreadable version).
    pub warnings: Vec<String>,
}

impl LoadedRecords {
    /// Adds what `other` read.
    pub fn merge(&mut self, other: LoadedRecords) {
        self.imports.extend(other.imports);
        self.failures.extend(other.failures);
        self.other_ecosystems += other.other_ecosystems;
        self.warnings.extend(other.warnings);
    }

    /// Parses one record and files it as an import, a failure or another ecosystem's.
    pub fn accept(&mut self, origin: &str, bytes: &[u8], format: RecordFormat) {
        let parsed = OsvRecord::parse(bytes, format, origin)
            .and_then(|record| Advisory::from_record(&record).map(|advisory| (record, advisory)));
        match parsed {
            Ok((_, advisory)) if advisory.affected.is_empty() => self.other_ecosystems += 1,
            Ok((record, advisory)) => {
                self.warnings.extend(
                    advisory
                        .warnings
                        .iter()
                        .map(|warning| format!("{origin}: {warning}")),
                );
                self.imports.push(AdvisoryImport { record, advisory });
            }
            Err(error) => self.failures.push((origin.to_owned(), error.to_string())),
        }
    }
}

/// Errors that stop a whole source from being read.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The path cannot be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The zip archive is damaged.
    #[error("{path} is not a readable zip archive: {source}")]
    Zip {
        /// The archive.
        path: PathBuf,
        /// Why.
        #[source]
        source: zip::result::ZipError,
    },
    /// The path is neither a folder, a zip nor an OSV file.
    #[error("{0} is not an OSV source: give a .json or .yaml record, a folder of them, or an OSV all.zip export")]
    Unsupported(PathBuf),
}

/// Reads every record under `path`.
pub fn load(path: &Path) -> Result<LoadedRecords, SourceError> {
    let io_error = |source| SourceError::Io {
        path: path.to_path_buf(),
        source,
    };
    let metadata = std::fs::metadata(path).map_err(io_error)?;
    let mut loaded = LoadedRecords::default();
    if metadata.is_dir() {
        let mut files = Vec::new();
        collect_files(path, &mut files)?;
        files.sort();
        for file in files {
            let origin = file
                .strip_prefix(path)
                .unwrap_or(&file)
                .display()
                .to_string();
            let format = RecordFormat::from_file_name(&origin)
                .ok_or_else(|| SourceError::Unsupported(file.clone()))?;
            match read_limited(&file) {
                Ok(bytes) => loaded.accept(&origin, &bytes, format),
                Err(reason) => loaded.failures.push((origin, reason)),
            }
        }
    } else if path
        .extension()
        .is_some_and(|extension| extension.eq_ignore_ascii_case("zip"))
    {
        load_zip(path, &mut loaded)?;
    } else {
        let name = path.display().to_string();
        let format = RecordFormat::from_file_name(&name)
            .ok_or_else(|| SourceError::Unsupported(path.to_path_buf()))?;
        let bytes = read_limited(path).map_err(|reason| SourceError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::other(reason),
        })?;
        loaded.accept(&name, &bytes, format);
    }
    Ok(loaded)
}

fn collect_files(folder: &Path, found: &mut Vec<PathBuf>) -> Result<(), SourceError> {
    let entries = std::fs::read_dir(folder).map_err(|source| SourceError::Io {
        path: folder.to_path_buf(),
        source,
    })?;
    for entry in entries {
        let entry = entry.map_err(|source| SourceError::Io {
            path: folder.to_path_buf(),
            source,
        })?;
        let path = entry.path();
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        let file_type = entry.file_type().map_err(|source| SourceError::Io {
            path: path.clone(),
            source,
        })?;
        if hidden || file_type.is_symlink() {
            continue;
        }
        if file_type.is_dir() {
            collect_files(&path, found)?;
        } else if RecordFormat::from_file_name(&path.to_string_lossy()).is_some() {
            found.push(path);
        }
    }
    Ok(())
}

fn read_limited(path: &Path) -> Result<Vec<u8>, String> {
    let file = std::fs::File::open(path).map_err(|error| error.to_string())?;
    let mut bytes = Vec::new();
    file.take(MAX_RECORD_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|error| error.to_string())?;
    if bytes.len() > MAX_RECORD_BYTES {
        return Err("the file is larger than the 8 MiB a record may have".to_owned());
    }
    Ok(bytes)
}

fn load_zip(path: &Path, loaded: &mut LoadedRecords) -> Result<(), SourceError> {
    for_each_zip_batch(path, usize::MAX, |batch| {
        loaded.merge(batch);
        true
    })
}

/// Reads an OSV `all.zip` export `batch` records at a time (imports and failures counted
/// together), handing each batch to `each` as soon as it is read, so that a large export (npm's
/// holds about 200,000 records) is never in memory whole. Stops early when `each` returns false.
pub fn for_each_zip_batch(
    path: &Path,
    batch: usize,
    mut each: impl FnMut(LoadedRecords) -> bool,
) -> Result<(), SourceError> {
    let file = std::fs::File::open(path).map_err(|source| SourceError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut archive =
        zip::ZipArchive::new(std::io::BufReader::new(file)).map_err(|source| SourceError::Zip {
            path: path.to_path_buf(),
            source,
        })?;
    let mut loaded = LoadedRecords::default();
    for index in 0..archive.len() {
        let mut member = archive.by_index(index).map_err(|source| SourceError::Zip {
            path: path.to_path_buf(),
            source,
        })?;
        let name = member.name().to_owned();
        let Some(format) = RecordFormat::from_file_name(&name).filter(|_| member.is_file()) else {
            continue;
        };
        // The declared size may lie (a zip bomb); the read is capped either way.
        let mut bytes = Vec::new();
        let read = (&mut member)
            .take(MAX_RECORD_BYTES as u64 + 1)
            .read_to_end(&mut bytes);
        match read {
            Ok(_) if bytes.len() > MAX_RECORD_BYTES => loaded
                .failures
                .push((name, "the record is larger than 8 MiB".to_owned())),
            Ok(_) => loaded.accept(&name, &bytes, format),
            Err(error) => loaded
                .failures
                .push((name, format!("could not be decompressed: {error}"))),
        }
        if loaded.imports.len() + loaded.failures.len() >= batch
            && !each(std::mem::take(&mut loaded))
        {
            return Ok(());
        }
    }
    each(loaded);
    Ok(())
}
