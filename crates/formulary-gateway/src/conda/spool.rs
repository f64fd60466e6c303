//! Where a subdirectory's records live while they are served: an anonymous spool file (in the
//! blob store's folder when it is local, else the system's temporary folder; the system removes
//! it when it is closed), read back by position, so a `repodata.json` of hundreds of megabytes
//! costs disk and page cache, not the server's memory. Also the form the upstream copy takes in
//! `upstream_documents`: zstd-compressed and base64-encoded (a fifth of the text), which the
//! reader tells from a plain document written by earlier versions.

use std::borrow::Cow;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read};
use std::ops::Range;
use std::path::{Path, PathBuf};

use formulary_core::ecosystems::conda::{RecordStore, RepoData, RepoDataError};

/// How a compressed stored document starts (a plain one starts with `{`).
const STORED_PREFIX: &str = "zstd+base64:";

/// Records' bytes in an anonymous file.
#[derive(Debug)]
pub(crate) struct SpoolFile {
    file: File,
}

impl RecordStore for SpoolFile {
    fn len(&self) -> u64 {
        self.file.metadata().map_or(0, |metadata| metadata.len())
    }

    fn read(&self, range: Range<u64>) -> io::Result<Cow<'_, [u8]>> {
        let length = usize::try_from(range.end.saturating_sub(range.start))
            .map_err(|_| io::Error::other("a range too large to read"))?;
        let mut bytes = vec![0; length];
        read_exact_at(&self.file, &mut bytes, range.start)?;
        Ok(Cow::Owned(bytes))
    }
}

#[cfg(unix)]
pub(crate) fn read_exact_at(file: &File, buffer: &mut [u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buffer, offset)
}

#[cfg(windows)]
pub(crate) fn read_exact_at(file: &File, mut buffer: &mut [u8], mut offset: u64) -> io::Result<()> {
    while !buffer.is_empty() {
        match std::os::windows::fs::FileExt::seek_read(file, buffer, offset)? {
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            read => {
                buffer = &mut buffer[read..];
                offset += read as u64;
            }
        }
    }
    Ok(())
}

/// Where spool files are made.
#[derive(Debug, Clone, Default)]
pub(crate) struct SpoolFolder(Option<PathBuf>);

impl SpoolFolder {
    /// Spool files beside the blobs (`None`: the system's temporary folder).
    pub(crate) fn new(folder: Option<&Path>) -> SpoolFolder {
        SpoolFolder(folder.map(Path::to_path_buf))
    }

    /// A new anonymous file.
    pub(crate) fn file(&self) -> io::Result<File> {
        match &self.0 {
            Some(folder) => tempfile::tempfile_in(folder).or_else(|_| tempfile::tempfile()),
            None => tempfile::tempfile(),
        }
    }

    /// Reads a `repodata.json` from `reader` into a new spool file (blocking: run it off the
    /// async threads).
    pub(crate) fn parse(
        &self,
        reader: impl Read,
    ) -> Result<(RepoData, Vec<String>), RepoDataError> {
        let file = self.file()?;
        let mut spool = BufWriter::with_capacity(1 << 20, file.try_clone()?);
        RepoData::parse_reader(
            BufReader::with_capacity(1 << 20, reader),
            &mut spool,
            Box::new(SpoolFile { file }),
        )
    }
}

/// Reads a document stored whole by an earlier version back: compressed (zstd, base64, after
/// a prefix) or plain. Documents are now stored in parts (`super::stored`).
pub(crate) fn stored_reader(text: &str) -> io::Result<Box<dyn Read + '_>> {
    Ok(match text.strip_prefix(STORED_PREFIX) {
        Some(encoded) => Box::new(zstd::stream::read::Decoder::new(
            base64::read::DecoderReader::new(
                encoded.as_bytes(),
                &base64::engine::general_purpose::STANDARD,
            ),
        )?),
        None => Box::new(text.as_bytes()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOCUMENT: &str = r#"{"info":{"subdir":"noarch","base_url":"https://up.example/ch/"},
      "packages":{"six-1.16.0-pyh6c4a22f_0.tar.bz2":{"name":"six","version":"1.16.0","build":"pyh6c4a22f_0","sha256":"aa","timestamp":1620240338000,"x":{"kept":true}}},
      "packages.conda":{"six-1.17.0-pyhd8ed1ab_0.conda":{"name":"six","version":"1.17.0","build":"pyhd8ed1ab_0","sha256":"bb"}},
      "removed":[],"repodata_version":1}"#;

    #[test]
    fn a_spooled_document_reads_and_renders_like_one_in_memory() {
        let folder = tempfile::tempdir().expect("a folder");
        let spool = SpoolFolder::new(Some(folder.path()));
        let (spooled, skipped) = spool.parse(DOCUMENT.as_bytes()).expect("parsed");
        assert!(skipped.is_empty());
        let (in_memory, _) = RepoData::parse(DOCUMENT.as_bytes().to_vec()).expect("parsed");
        assert_eq!(
            spooled.render(|_| true).expect("rendered"),
            in_memory.render(|_| true).expect("rendered")
        );
        let record = spooled
            .record("six-1.16.0-pyh6c4a22f_0.tar.bz2")
            .expect("found");
        assert_eq!(
            spooled.facts(record).expect("facts").sha256.as_deref(),
            Some("aa")
        );
        // The spool file is anonymous: nothing is left in the folder.
        assert_eq!(std::fs::read_dir(folder.path()).expect("listed").count(), 0);

        // Stored whole and compressed by an earlier version: still reads.
        let mut compressed = Vec::new();
        zstd::stream::copy_encode(DOCUMENT.as_bytes(), &mut compressed, 3).expect("compressed");
        let stored = format!(
            "{STORED_PREFIX}{}",
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &compressed)
        );
        let mut decoded = Vec::new();
        stored_reader(&stored)
            .expect("a reader")
            .read_to_end(&mut decoded)
            .expect("decoded");
        assert_eq!(decoded, DOCUMENT.as_bytes());
        let (again, _) = spool
            .parse(stored_reader(&stored).expect("a reader"))
            .expect("parsed");
        assert_eq!(again.records().len(), 2);
        // A plain document stored by an earlier version still reads.
        let mut plain = Vec::new();
        stored_reader(DOCUMENT)
            .expect("plain")
            .read_to_end(&mut plain)
            .expect("read");
        assert_eq!(plain, DOCUMENT.as_bytes());
    }
}
