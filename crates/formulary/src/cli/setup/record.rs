//! What `formulary setup` changed, so that `--undo` can put it back: for each file, its text
//! before setup first changed it (or that it did not exist). Kept in Formulary's folder,
//! readable only by its owner (a netrc's earlier text may hold other passwords).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use super::Places;

/// The files setup changed, with their original text (`None`: the file did not exist).
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Record {
    originals: BTreeMap<PathBuf, Option<String>>,
}

fn path(places: &Places) -> PathBuf {
    places.formulary().join("setup-undo.json")
}

impl Record {
    /// The record so far (empty when setup never ran).
    pub(crate) fn load(places: &Places) -> anyhow::Result<Record> {
        let path = path(places);
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).with_context(|| {
                format!("{} is damaged; move it away to start afresh (undo will then not know the original files)", path.display())
            }),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Record::default()),
            Err(error) => Err(error).with_context(|| format!("could not read {}", path.display())),
        }
    }

    /// Notes a file's text before its first change; later changes keep the first original.
    pub(crate) fn remember(&mut self, file: &Path, before: Option<&str>) {
        self.originals
            .entry(file.to_path_buf())
            .or_insert_with(|| before.map(str::to_owned));
    }

    /// Writes the record (before the files it describes are changed).
    pub(crate) fn save(&self, places: &Places) -> anyhow::Result<()> {
        super::write_file(&path(places), &serde_json::to_string_pretty(self)?, true)
    }
}

/// `formulary setup --undo`: every file back as it was, then the record removed.
pub(crate) fn undo(places: &Places) -> anyhow::Result<ExitCode> {
    let record = Record::load(places)?;
    if record.originals.is_empty() {
        println!("formulary setup has changed nothing here, so there is nothing to undo.");
        return Ok(ExitCode::SUCCESS);
    }
    for (file, original) in &record.originals {
        let shown = places.show(file);
        match original {
            Some(text) => {
                let secret = file.ends_with(".netrc")
                    || file.ends_with("_netrc")
                    || file.ends_with(".npmrc")
                    || file.ends_with(".yarnrc.yml");
                super::write_file(file, text, secret)?;
                println!("  restored {shown}");
            }
            None => match std::fs::remove_file(file) {
                Ok(()) => println!("  removed  {shown} (setup created it)"),
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => {
                    return Err(error).with_context(|| format!("could not remove {shown}"))
                }
            },
        }
    }
    std::fs::remove_file(path(places)).context("could not remove the undo record")?;
    println!("Undone: every file is as it was before `formulary setup`.");
    Ok(ExitCode::SUCCESS)
}
