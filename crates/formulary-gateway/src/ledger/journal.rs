//! The download ledger's local journal: JSON lines appended to a file while the database does not
//! take them, and a second file holding the part being replayed.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use formulary_store::LedgerLine;
use tokio::io::AsyncBufReadExt;

/// The journal files and what they hold.
#[derive(Debug)]
pub(super) struct Journal {
    path: PathBuf,
    replaying: PathBuf,
    file: Option<BufWriter<File>>,
    /// Bytes and lines in `path`.
    bytes: u64,
    lines: u64,
    /// Bytes and lines in `replaying`.
    replaying_bytes: u64,
    replaying_lines: u64,
    max_bytes: u64,
    /// Appended since the last sync.
    dirty: bool,
}

impl Journal {
    /// Opens the journal at `path`, counting what an earlier run left in it (and in the part
    /// being replayed). A last line cut short by a crash is ended, so that it cannot run into the
    /// next one.
    pub(super) fn open(path: &Path, max_bytes: u64) -> std::io::Result<Journal> {
        if let Some(parent) = path
            .parent()
            .filter(|parent| !parent.as_os_str().is_empty())
        {
            std::fs::create_dir_all(parent)?;
        }
        let mut replaying_name = path.as_os_str().to_owned();
        replaying_name.push(".replaying");
        let replaying = PathBuf::from(replaying_name);
        let (bytes, lines) = count(path, true)?;
        let (replaying_bytes, replaying_lines) = count(&replaying, false)?;
        Ok(Journal {
            path: path.to_owned(),
            replaying,
            file: None,
            bytes,
            lines,
            replaying_bytes,
            replaying_lines,
            max_bytes,
            dirty: false,
        })
    }

    /// Lines waiting in both files.
    pub(super) fn lines(&self) -> u64 {
        self.lines + self.replaying_lines
    }

    /// Appends as many lines as fit under the size limit (not yet synced); returns how many.
    pub(super) fn append(&mut self, lines: &[LedgerLine]) -> usize {
        let mut appended = 0;
        for line in lines {
            let Ok(mut text) = serde_json::to_vec(line) else {
                continue;
            };
            text.push(b'\n');
            let size = text.len() as u64;
            if self.bytes + self.replaying_bytes + size > self.max_bytes {
                break;
            }
            let written = self.writer().and_then(|file| file.write_all(&text));
            if let Err(error) = written {
                tracing::error!(%error, path = %self.path.display(), "could not append to the download ledger's journal");
                self.file = None;
                break;
            }
            self.bytes += size;
            self.lines += 1;
            self.dirty = true;
            appended += 1;
        }
        appended
    }

    fn writer(&mut self) -> std::io::Result<&mut BufWriter<File>> {
        if self.file.is_none() {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)?;
            self.file = Some(BufWriter::with_capacity(64 * 1024, file));
        }
        self.file
            .as_mut()
            .ok_or_else(|| std::io::Error::other("the journal is not open"))
    }

    /// Writes appended lines to the disk (one fsync for everything appended since the last).
    pub(super) fn sync(&mut self) -> std::io::Result<()> {
        if !self.dirty {
            return Ok(());
        }
        if let Some(file) = self.file.as_mut() {
            file.flush()?;
            file.get_ref().sync_data()?;
        }
        self.dirty = false;
        Ok(())
    }

    /// The file to replay: the part an interrupted replay left, else the journal itself, set
    /// aside so that new lines go to a fresh file meanwhile. `None` when there is nothing.
    pub(super) fn begin_replay(&mut self) -> std::io::Result<Option<PathBuf>> {
        if self.replaying_lines > 0 || self.replaying.exists() {
            return Ok(Some(self.replaying.clone()));
        }
        if self.lines == 0 {
            return Ok(None);
        }
        self.sync()?;
        self.file = None;
        std::fs::rename(&self.path, &self.replaying)?;
        self.replaying_bytes = std::mem::take(&mut self.bytes);
        self.replaying_lines = std::mem::take(&mut self.lines);
        Ok(Some(self.replaying.clone()))
    }

    /// Removes the part that was replayed.
    pub(super) fn end_replay(&mut self) -> std::io::Result<()> {
        match std::fs::remove_file(&self.replaying) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => return Err(error),
            _ => {}
        }
        self.replaying_bytes = 0;
        self.replaying_lines = 0;
        Ok(())
    }
}

/// Bytes and lines in a journal file (none when it does not exist); with `end_last_line`, a last
/// line without its newline gets one.
fn count(path: &Path, end_last_line: bool) -> std::io::Result<(u64, u64)> {
    let mut file = match OpenOptions::new()
        .read(true)
        .append(end_last_line)
        .open(path)
    {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok((0, 0)),
        Err(error) => return Err(error),
    };
    let mut lines = 0u64;
    let mut bytes = 0u64;
    let mut last = b'\n';
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        bytes += read as u64;
        lines += buffer[..read].iter().filter(|byte| **byte == b'\n').count() as u64;
        last = buffer[read - 1];
    }
    if last != b'\n' {
        if end_last_line {
            file.seek(SeekFrom::End(0))?;
            file.write_all(b"\n")?;
            file.sync_data()?;
            bytes += 1;
        }
        lines += 1;
    }
    Ok((bytes, lines))
}

/// Reads a journal file back in batches, skipping lines that do not parse.
pub(super) struct Reader {
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::fs::File>>,
    skipped: u64,
}

impl Reader {
    pub(super) async fn open(path: &Path) -> std::io::Result<Reader> {
        let file = tokio::fs::File::open(path).await?;
        Ok(Reader {
            lines: tokio::io::BufReader::with_capacity(64 * 1024, file).lines(),
            skipped: 0,
        })
    }

    /// Up to `most` lines; empty at the end.
    pub(super) async fn next_batch(&mut self, most: usize) -> std::io::Result<Vec<LedgerLine>> {
        let mut batch = Vec::with_capacity(most);
        while batch.len() < most {
            let Some(text) = self.lines.next_line().await? else {
                break;
            };
            if text.trim().is_empty() {
                continue;
            }
            match serde_json::from_str(&text) {
                Ok(line) => batch.push(line),
                Err(_) => self.skipped += 1,
            }
        }
        Ok(batch)
    }

    /// Lines that could not be read.
    pub(super) fn skipped(&self) -> u64 {
        self.skipped
    }
}
