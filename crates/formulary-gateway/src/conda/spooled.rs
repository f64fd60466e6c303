//! Bytes the conda gateway built (shards, `repodata.json.zst`) kept in anonymous spool files
//! rather than in memory, and read back by position when served: a conda-forge-size
//! subdirectory's shards and compressed document cost disk and page cache, not the server's
//! resident memory. A file is anonymous (the system removes it when its last handle closes, so
//! a kill leaves nothing behind), and a [`Span`] exists only once its bytes are written whole:
//! a write that fails (a full disk) fails the build, never serves a truncated file.

use std::fs::File;
use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures::Stream;
use sha2::Digest;

use super::spool::SpoolFolder;

/// Where some bytes are in a [`Spooled`] file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    at: u64,
    len: u32,
}

impl Span {
    /// How many bytes.
    pub(crate) fn len(self) -> usize {
        self.len as usize
    }
}

/// An anonymous file that bytes are appended to (from several threads at once: each append
/// reserves its own range) and read back from by position.
#[derive(Debug)]
pub(crate) struct Spooled {
    file: File,
    end: AtomicU64,
}

impl Spooled {
    /// A new empty file in the spool folder.
    pub(crate) fn new(folder: &SpoolFolder) -> io::Result<Spooled> {
        Ok(Spooled {
            file: folder.file()?,
            end: AtomicU64::new(0),
        })
    }

    /// Writes `bytes` at the end of the file; their span once they are all written.
    pub(crate) fn append(&self, bytes: &[u8]) -> io::Result<Span> {
        let len = u32::try_from(bytes.len())
            .map_err(|_| io::Error::other("a spooled item larger than 4 GB"))?;
        let at = self.end.fetch_add(u64::from(len), Ordering::SeqCst);
        write_all_at(&self.file, bytes, at)?;
        Ok(Span { at, len })
    }

    /// The bytes of `span`.
    pub(crate) fn read(&self, span: Span) -> io::Result<Bytes> {
        let mut bytes = vec![0; span.len()];
        super::spool::read_exact_at(&self.file, &mut bytes, span.at)?;
        Ok(Bytes::from(bytes))
    }
}

#[cfg(unix)]
fn write_all_at(file: &File, bytes: &[u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, bytes, offset)
}

#[cfg(windows)]
fn write_all_at(file: &File, mut bytes: &[u8], mut offset: u64) -> io::Result<()> {
    while !bytes.is_empty() {
        match std::os::windows::fs::FileExt::seek_write(file, bytes, offset)? {
            0 => return Err(io::ErrorKind::WriteZero.into()),
            written => {
                bytes = &bytes[written..];
                offset += written as u64;
            }
        }
    }
    Ok(())
}

/// A whole document in its own anonymous file (`repodata.json.zst`), with the entity tag of
/// its bytes, sent from the file as it is read.
#[derive(Debug)]
pub struct SpooledDocument {
    file: File,
    len: u64,
    /// `"<sha256 of the bytes>"`.
    pub etag: String,
}

/// How much of a spooled document a response reads at a time.
const CHUNK: usize = 256 << 10;

/// Writes a document into a spool file while hashing it (see [`SpooledDocument::write`]).
pub(crate) struct DocumentWriter {
    file: io::BufWriter<File>,
    len: u64,
    hasher: sha2::Sha256,
}

impl Write for DocumentWriter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let written = self.file.write(bytes)?;
        self.hasher.update(&bytes[..written]);
        self.len += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl SpooledDocument {
    /// A writer for a new document in the spool folder.
    pub(crate) fn writer(folder: &SpoolFolder) -> io::Result<DocumentWriter> {
        Ok(DocumentWriter {
            file: io::BufWriter::with_capacity(CHUNK, folder.file()?),
            len: 0,
            hasher: sha2::Sha256::new(),
        })
    }

    /// The document a writer wrote, once every byte is on disk (or the error that stopped it).
    pub(crate) fn finish(writer: DocumentWriter) -> io::Result<SpooledDocument> {
        let DocumentWriter { file, len, hasher } = writer;
        let file = file.into_inner().map_err(io::IntoInnerError::into_error)?;
        Ok(SpooledDocument {
            file,
            len,
            etag: format!("\"{}\"", hex::encode(hasher.finalize())),
        })
    }

    /// How many bytes the document has.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when the document is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The spool file holding the document's bytes from offset 0 (never written again), for
    /// a server that sends it with `sendfile`.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// The document's bytes, read from its file a chunk at a time as the client takes them
    /// (a read that fails ends the stream with the error, so the response is cut short
    /// against its `Content-Length`, never completed with wrong bytes).
    pub fn stream(
        self: &Arc<Self>,
    ) -> impl Stream<Item = Result<Bytes, io::Error>> + Send + 'static {
        let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Bytes, io::Error>>(2);
        let document = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let mut at = 0;
            while at < document.len {
                let size = usize::try_from((document.len - at).min(CHUNK as u64)).unwrap_or(CHUNK);
                let mut chunk = vec![0; size];
                let read = super::spool::read_exact_at(&document.file, &mut chunk, at);
                let failed = read.is_err();
                if sender
                    .blocking_send(read.map(|()| Bytes::from(chunk)))
                    .is_err()
                    || failed
                {
                    return;
                }
                at += size as u64;
            }
        });
        futures::stream::unfold(receiver, |mut receiver| async move {
            receiver.recv().await.map(|item| (item, receiver))
        })
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;

    use super::*;

    #[tokio::test]
    async fn spooled_bytes_read_back_and_leave_nothing_in_the_folder() {
        let folder = tempfile::tempdir().expect("a folder");
        let spool = SpoolFolder::new(Some(folder.path()));
        let spooled = Arc::new(Spooled::new(&spool).expect("a spool file"));
        let spans: Vec<Span> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..4u8)
                .map(|worker| {
                    let spooled = &spooled;
                    scope.spawn(move || {
                        spooled
                            .append(&vec![worker; 1000 + usize::from(worker)])
                            .expect("appended")
                    })
                })
                .collect();
            workers
                .into_iter()
                .map(|worker| worker.join().expect("joined"))
                .collect()
        });
        for (worker, span) in spans.into_iter().enumerate() {
            let bytes = spooled.read(span).expect("read back");
            assert_eq!(bytes.len(), 1000 + worker);
            assert!(bytes.iter().all(|&byte| usize::from(byte) == worker));
        }

        // A document larger than one chunk streams back whole, with the hash of its bytes.
        let content: Vec<u8> = (0..(CHUNK * 2 + 17)).map(|at| (at % 251) as u8).collect();
        let mut writer = SpooledDocument::writer(&spool).expect("a writer");
        writer.write_all(&content).expect("written");
        let document = Arc::new(SpooledDocument::finish(writer).expect("finished"));
        assert_eq!(document.len(), content.len() as u64);
        assert_eq!(
            document.etag,
            format!("\"{}\"", hex::encode(sha2::Sha256::digest(&content)))
        );
        let mut streamed = Vec::new();
        let mut stream = std::pin::pin!(document.stream());
        while let Some(chunk) = stream.next().await {
            streamed.extend_from_slice(&chunk.expect("a chunk"));
        }
        assert_eq!(streamed, content);
        assert_eq!(std::fs::read_dir(folder.path()).expect("listed").count(), 0);
    }

    /// A full disk (Linux's `/dev/full` answers every write with ENOSPC): the append and the
    /// document fail, so no span or document exists to be served half written.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_full_disk_fails_the_write_and_nothing_is_kept() {
        let full = || {
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/full")
                .expect("/dev/full")
        };
        let spooled = Spooled {
            file: full(),
            end: AtomicU64::new(0),
        };
        let error = spooled.append(&[1; 4096]).expect_err("a full disk");
        assert_eq!(error.raw_os_error(), Some(28), "{error}");
        let mut writer = DocumentWriter {
            file: io::BufWriter::with_capacity(CHUNK, full()),
            len: 0,
            hasher: sha2::Sha256::new(),
        };
        // Buffered writes may succeed; the document cannot be finished.
        let written = writer.write_all(&vec![7; CHUNK * 2]);
        assert!(written.is_err() || SpooledDocument::finish(writer).is_err());
    }
}
