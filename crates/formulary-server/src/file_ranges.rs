//! Sending a range of a file (a large package file, a spooled document) with `sendfile(2)`,
//! without reading it into memory first, as nginx does.
//!
//! hyper sends a response body as the chunks the body yields, handing each chunk's own bytes to
//! the connection ([`crate::ZeroCopyStream`]) unchanged: [`crate::connections`] forces its
//! vectored-write strategy, so it never copies a chunk into a buffer of its own. A file range is
//! therefore sent as *placeholder chunks*: byte slices of a reserved region of memory that is
//! never written (zero pages the kernel maps only on demand, so it costs no resident memory),
//! each slot of which stands, while its chunk lives, for a range of a file. When the connection
//! is asked to write bytes that lie in the region, it sends the file range they stand for
//! with `sendfile` instead. A placeholder that stands for nothing is never written: the
//! connection fails instead, so a client may see a short body (against its `Content-Length`),
//! never wrong bytes.
//!
//! Placeholders are made only while a request is served by such a connection
//! ([`available`]); anywhere else (a body read in-process), and when every slot is taken, the
//! bytes are read from the file as usual.

use std::collections::BTreeMap;
use std::fs::File;
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use bytes::Bytes;
use futures::Stream;

/// The most a placeholder chunk stands for.
const SLOT_BYTES: usize = 1 << 20;
/// Placeholder chunks alive at once (about one per large response being sent).
const SLOTS: usize = 256;

tokio::task_local! {
    /// Set while a request is served by a connection that sends placeholders with sendfile.
    static SENDS_FILES: ();
}

/// Runs `future` (the handling of one request) as served by a connection that recognises
/// placeholders.
pub(crate) async fn serving<F: std::future::Future>(future: F) -> F::Output {
    SENDS_FILES.scope((), future).await
}

/// True while handling a request whose connection recognises placeholders.
pub(crate) fn available() -> bool {
    SENDS_FILES.try_with(|()| ()).is_ok()
}

/// What a slot stands for.
struct Placed {
    file: Arc<File>,
    offset: u64,
    len: usize,
}

struct Slots {
    /// The reserved region: `SLOTS * SLOT_BYTES` bytes, never written.
    region: Box<[u8]>,
    free: Mutex<Vec<usize>>,
    placed: RwLock<BTreeMap<usize, Placed>>,
}

/// The slots, made when the first placeholder is (so a server that never sends a large file
/// never reserves the region).
static SLOTS_CELL: OnceLock<Slots> = OnceLock::new();

fn slots() -> &'static Slots {
    SLOTS_CELL.get_or_init(|| Slots {
        // A zeroed allocation this large is fresh pages from the kernel: nothing is resident
        // until touched, and nothing ever touches it.
        region: vec![0u8; SLOTS * SLOT_BYTES].into_boxed_slice(),
        free: Mutex::new((0..SLOTS).rev().collect()),
        placed: RwLock::new(BTreeMap::new()),
    })
}

/// Owns a slot while its chunk lives; frees it when hyper drops the chunk.
struct SlotOwner {
    slot: usize,
    len: usize,
}

impl AsRef<[u8]> for SlotOwner {
    fn as_ref(&self) -> &[u8] {
        let start = self.slot * SLOT_BYTES;
        &slots().region[start..start + self.len]
    }
}

impl Drop for SlotOwner {
    fn drop(&mut self) {
        let slots = slots();
        slots
            .placed
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&self.slot);
        slots
            .free
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(self.slot);
    }
}

/// A chunk standing for `len` (at most [`SLOT_BYTES`]) bytes of `file` from `offset`, or `None`
/// when every slot is taken.
fn placeholder(file: &Arc<File>, offset: u64, len: usize) -> Option<Bytes> {
    debug_assert!(len > 0 && len <= SLOT_BYTES);
    let slots = slots();
    let slot = slots
        .free
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .pop()?;
    slots
        .placed
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert(
            slot,
            Placed {
                file: Arc::clone(file),
                offset,
                len,
            },
        );
    Some(Bytes::from_owner(SlotOwner { slot, len }))
}

/// Where the bytes of `slice` come from, when it lies in the placeholder region: the file and
/// the offset of its first byte, or an error when no file range stands behind it (it must then
/// not be written).
pub(crate) fn locate(slice: &[u8]) -> Option<std::io::Result<(Arc<File>, u64)>> {
    // Asked for every write of every response: with no placeholder ever made, nothing to look up.
    let slots = SLOTS_CELL.get()?;
    let base = slots.region.as_ptr() as usize;
    let start = slice.as_ptr() as usize;
    if slice.is_empty() || start < base || start >= base + slots.region.len() {
        return None;
    }
    let slot = (start - base) / SLOT_BYTES;
    let within = start - base - slot * SLOT_BYTES;
    let placed = slots
        .placed
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    Some(match placed.get(&slot) {
        Some(placed) if within + slice.len() <= placed.len => {
            Ok((Arc::clone(&placed.file), placed.offset + within as u64))
        }
        _ => Err(std::io::Error::other(
            "a file placeholder with no file range behind it (not sent)",
        )),
    })
}

/// The bytes `start..start + len` of `file` as a body stream: placeholder chunks where the
/// connection sends them with sendfile ([`available`] when the body is made), chunks read from
/// the file otherwise (and whenever no slot is free). A read that fails ends the stream with
/// the error, so the response is cut short, never completed with wrong bytes.
pub(crate) fn stream(
    file: Arc<File>,
    start: u64,
    len: u64,
) -> impl Stream<Item = std::io::Result<Bytes>> + Send + 'static {
    let sends_files = available();
    futures::stream::unfold(
        (file, start, start + len),
        move |(file, at, end)| async move {
            if at >= end {
                return None;
            }
            let size = usize::try_from((end - at).min(SLOT_BYTES as u64)).unwrap_or(SLOT_BYTES);
            let placed = if sends_files {
                placeholder(&file, at, size)
            } else {
                None
            };
            let chunk = match placed {
                Some(chunk) => Ok(chunk),
                None => read_at(&file, at, size).await,
            };
            Some((chunk, (file, at + size as u64, end)))
        },
    )
}

/// Reads `size` bytes of `file` from `at`, off the async workers.
async fn read_at(file: &Arc<File>, at: u64, size: usize) -> std::io::Result<Bytes> {
    let file = Arc::clone(file);
    tokio::task::spawn_blocking(move || {
        use std::os::unix::fs::FileExt;
        let mut buffer = vec![0; size];
        file.read_exact_at(&mut buffer, at)?;
        Ok(Bytes::from(buffer))
    })
    .await
    .map_err(std::io::Error::other)?
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use futures::StreamExt;

    use super::*;

    fn file_of(content: &[u8]) -> Arc<File> {
        let mut file = tempfile::tempfile().expect("a temporary file");
        file.write_all(content).expect("written");
        Arc::new(file)
    }

    #[tokio::test]
    async fn placeholders_stand_for_their_range_until_dropped() {
        let content: Vec<u8> = (0..(SLOT_BYTES * 2 + 100))
            .map(|at| (at % 251) as u8)
            .collect();
        let file = file_of(&content);
        let chunks: Vec<Bytes> = serving(async {
            stream(Arc::clone(&file), 10, content.len() as u64 - 10)
                .map(|chunk| chunk.expect("a chunk"))
                .collect()
                .await
        })
        .await;
        assert_eq!(
            chunks.iter().map(Bytes::len).collect::<Vec<_>>(),
            [SLOT_BYTES, SLOT_BYTES, 90]
        );
        for (index, chunk) in chunks.iter().enumerate() {
            let (_, offset) = locate(&chunk[5..]).expect("a placeholder").expect("placed");
            assert_eq!(offset, 10 + (index * SLOT_BYTES) as u64 + 5);
        }
        let stale = chunks[2].as_ptr() as usize;
        drop(chunks);
        // The slot is free again: the address no longer stands for anything.
        let slice = &slots().region[stale - slots().region.as_ptr() as usize..][..1];
        assert!(locate(slice).expect("in the region").is_err());
        assert!(locate(b"ordinary bytes").is_none());
    }

    #[tokio::test]
    async fn without_a_sendfile_connection_the_bytes_are_read() {
        let content = b"0123456789".repeat(1000);
        let file = file_of(&content);
        let read: Vec<u8> = stream(file, 5, 100)
            .map(|chunk| chunk.expect("a chunk").to_vec())
            .concat()
            .await;
        assert_eq!(read, content[5..105]);
    }
}
