//! Sending large, immutable response bodies with `sendfile(2)` instead of copying them through
//! user space, as nginx does.
//!
//! hyper writes a body by handing the connection the body's own bytes (vectored writes, no
//! copy). The connection type here, [`ZeroCopyStream`], looks each write up in a registry of
//! bodies that also exist as files: an index document rendered once and copied to an in-memory
//! file (`memfd`), or a small package file read once from the blob store. When the bytes to
//! write lie inside a registered body, the same range is sent from its file with `sendfile`,
//! which on Linux moves page references rather than copying. Anything else is written normally.
//!
//! A registered body is kept alive by the registry, so its address cannot be reused by other
//! data while it is registered; its bytes never change (`Bytes` is immutable, blobs are
//! addressed by digest), so the file always holds the same content at the same offset. Bodies
//! are forgotten oldest first beyond a count and a byte budget; a response still holding one
//! then simply falls back to ordinary writes.

use std::collections::VecDeque;
use std::io::{IoSlice, Write};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock};
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// Bytes sent from files so far (for tests and diagnostics).
static SENT_FROM_FILES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Bodies smaller than this are written normally.
pub const MIN_BODY_BYTES: usize = 64 * 1024;
/// At most this many bodies are registered at once.
const MAX_BODIES: usize = 64;
/// At most this many bytes are registered at once.
const MAX_TOTAL_BYTES: usize = 192 * 1024 * 1024;
/// Package files up to this size are kept in memory (and registered) once read.
pub const MAX_BLOB_BYTES: u64 = 2 * 1024 * 1024;
/// At most this many bytes of package files are kept.
const MAX_BLOB_TOTAL_BYTES: usize = 48 * 1024 * 1024;
/// At most this many bytes of package files smaller than [`MIN_BODY_BYTES`] are kept (they are
/// written normally, but kept so that serving one again needs no file-system call).
const MAX_SMALL_BLOB_TOTAL_BYTES: usize = 8 * 1024 * 1024;

/// Small package files kept in memory, oldest first.
#[derive(Default)]
struct SmallBlobs {
    order: VecDeque<String>,
    bodies: std::collections::HashMap<String, Bytes>,
    total: usize,
}

fn small_blobs() -> &'static Mutex<SmallBlobs> {
    static SMALL: std::sync::OnceLock<Mutex<SmallBlobs>> = std::sync::OnceLock::new();
    SMALL.get_or_init(Mutex::default)
}

impl SmallBlobs {
    fn keep(&mut self, sha256: &str, body: Bytes) {
        if self.bodies.contains_key(sha256) {
            return;
        }
        self.total += body.len();
        self.bodies.insert(sha256.to_owned(), body);
        self.order.push_back(sha256.to_owned());
        while self.total > MAX_SMALL_BLOB_TOTAL_BYTES {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            if let Some(dropped) = self.bodies.remove(&oldest) {
                self.total -= dropped.len();
            }
        }
    }
}

struct Registered {
    start: usize,
    body: Bytes,
    file: Arc<std::fs::File>,
    /// The blob digest, for package files.
    blob: Option<String>,
}

#[derive(Default)]
struct Registry {
    bodies: VecDeque<Registered>,
}

fn registry() -> &'static RwLock<Registry> {
    static REGISTRY: std::sync::OnceLock<RwLock<Registry>> = std::sync::OnceLock::new();
    REGISTRY.get_or_init(RwLock::default)
}

/// Serialises registrations, so that one body is copied to a file once.
fn registering() -> &'static Mutex<()> {
    static LOCK: Mutex<()> = Mutex::new(());
    &LOCK
}

impl Registry {
    /// Where `slice` is sent from: a file range it stands for ([`crate::file_ranges`]), the
    /// file copy of a registered body it lies in, or nowhere (it is written as it is). A
    /// placeholder with nothing behind it is an error: it must not be written.
    fn locate(&self, slice: &[u8]) -> std::io::Result<Option<(Arc<std::fs::File>, u64)>> {
        match crate::file_ranges::locate(slice) {
            Some(placed) => placed.map(Some),
            None => Ok(self.find(slice)),
        }
    }

    /// The file and offset holding `slice`, when it lies inside a registered body.
    fn find(&self, slice: &[u8]) -> Option<(Arc<std::fs::File>, u64)> {
        if slice.is_empty() {
            return None;
        }
        let start = slice.as_ptr() as usize;
        self.bodies
            .iter()
            .find(|registered| {
                start >= registered.start
                    && start + slice.len() <= registered.start + registered.body.len()
            })
            .map(|registered| {
                (
                    Arc::clone(&registered.file),
                    (start - registered.start) as u64,
                )
            })
    }

    fn contains(&self, body: &Bytes) -> bool {
        let start = body.as_ptr() as usize;
        self.bodies
            .iter()
            .any(|registered| registered.start == start && registered.body.len() == body.len())
    }

    fn insert(&mut self, registered: Registered) {
        self.bodies.push_back(registered);
        let over = |bodies: &VecDeque<Registered>, blobs_only: bool, budget: usize| {
            bodies
                .iter()
                .filter(|registered| !blobs_only || registered.blob.is_some())
                .map(|registered| registered.body.len())
                .sum::<usize>()
                > budget
        };
        while self.bodies.len() > MAX_BODIES || over(&self.bodies, false, MAX_TOTAL_BYTES) {
            self.bodies.pop_front();
        }
        while over(&self.bodies, true, MAX_BLOB_TOTAL_BYTES) {
            match self
                .bodies
                .iter()
                .position(|registered| registered.blob.is_some())
            {
                Some(index) => {
                    self.bodies.remove(index);
                }
                None => break,
            }
        }
    }
}

/// Registers a rendered body (an index document) so that connections send it from an
/// in-memory file. Cheap when it is registered already; small bodies are left alone. A body
/// that cannot be copied to a file is just written normally.
pub fn register(body: &Bytes) {
    if body.len() < MIN_BODY_BYTES || read_registry().contains(body) {
        return;
    }
    let _one = registering()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if read_registry().contains(body) {
        return;
    }
    let file = rustix::fs::memfd_create("formulary-body", rustix::fs::MemfdFlags::CLOEXEC)
        .map_err(std::io::Error::from)
        .map(std::fs::File::from)
        .and_then(|mut file| file.write_all(body).map(|()| file));
    match file {
        Ok(file) => write_registry().insert(Registered {
            start: body.as_ptr() as usize,
            body: body.clone(),
            file: Arc::new(file),
            blob: None,
        }),
        Err(error) => tracing::debug!(%error, "could not copy a response body to a memory file"),
    }
}

/// The kept bytes of a package file, if it was read recently.
pub fn blob(sha256: &str) -> Option<Bytes> {
    let registered = read_registry()
        .bodies
        .iter()
        .find(|registered| registered.blob.as_deref() == Some(sha256))
        .map(|registered| registered.body.clone());
    registered.or_else(|| {
        small_blobs()
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .bodies
            .get(sha256)
            .cloned()
    })
}

/// Keeps the bytes of a package file read whole from `file`, and registers them so that
/// connections send them from that file (a file smaller than [`MIN_BODY_BYTES`] is only kept).
pub fn keep_blob(sha256: &str, body: Bytes, file: std::fs::File) {
    if body.len() < MIN_BODY_BYTES {
        small_blobs()
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .keep(sha256, body);
        return;
    }
    let _one = registering()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if blob(sha256).is_some() {
        return;
    }
    write_registry().insert(Registered {
        start: body.as_ptr() as usize,
        body,
        file: Arc::new(file),
        blob: Some(sha256.to_owned()),
    });
}

fn read_registry() -> std::sync::RwLockReadGuard<'static, Registry> {
    registry()
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write_registry() -> std::sync::RwLockWriteGuard<'static, Registry> {
    registry()
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A TCP listener whose connections send registered bodies with `sendfile` and have
/// `TCP_NODELAY` set (small responses must not wait for Nagle's algorithm).
#[derive(Debug)]
pub struct ZeroCopyListener {
    inner: TcpListener,
}

impl ZeroCopyListener {
    /// Wraps a bound listener.
    pub fn new(inner: TcpListener) -> ZeroCopyListener {
        ZeroCopyListener { inner }
    }
}

impl axum::serve::Listener for ZeroCopyListener {
    type Io = ZeroCopyStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (ZeroCopyStream, SocketAddr) {
        loop {
            match self.inner.accept().await {
                Ok((stream, address)) => {
                    if let Err(error) = stream.set_nodelay(true) {
                        tracing::debug!(%error, "could not set TCP_NODELAY");
                    }
                    return (ZeroCopyStream { inner: stream }, address);
                }
                Err(error) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    tracing::warn!(%error, "could not accept a connection");
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// A TCP connection that sends registered bodies with `sendfile`.
#[derive(Debug)]
pub struct ZeroCopyStream {
    inner: TcpStream,
}

impl ZeroCopyStream {
    fn poll_sendfile(
        &self,
        context: &mut Context<'_>,
        file: &std::fs::File,
        mut offset: u64,
        count: usize,
    ) -> Poll<std::io::Result<usize>> {
        loop {
            ready!(self.inner.poll_write_ready(context))?;
            match self.inner.try_io(Interest::WRITABLE, || {
                rustix::fs::sendfile(&self.inner, file, Some(&mut offset), count)
                    .map_err(std::io::Error::from)
            }) {
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
                Ok(sent) => {
                    SENT_FROM_FILES.fetch_add(sent as u64, std::sync::atomic::Ordering::Relaxed);
                    return Poll::Ready(Ok(sent));
                }
                // A file system that cannot feed sendfile: the same bytes, read and written.
                Err(error) if sendfile_unsupported(&error) => {
                    return self.poll_copy(context, file, offset, count)
                }
                Err(error) => return Poll::Ready(Err(error)),
            }
        }
    }

    /// Writes up to `count` bytes of `file` from `offset` by reading them first (at most
    /// [`COPY_BYTES`] at a time), for files `sendfile` cannot send.
    fn poll_copy(
        &self,
        context: &mut Context<'_>,
        file: &std::fs::File,
        offset: u64,
        count: usize,
    ) -> Poll<std::io::Result<usize>> {
        use std::os::unix::fs::FileExt;
        let mut buffer = vec![0; count.min(COPY_BYTES)];
        loop {
            ready!(self.inner.poll_write_ready(context))?;
            let read = file.read_at(&mut buffer, offset)?;
            if read == 0 {
                return Poll::Ready(Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "a file ended before the range the response sends from it",
                )));
            }
            match self.inner.try_write(&buffer[..read]) {
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
                other => return Poll::Ready(other),
            }
        }
    }
}

/// How much [`ZeroCopyStream::poll_copy`] reads at a time.
const COPY_BYTES: usize = 256 * 1024;

/// True for the errors `sendfile` gives when the file (not the connection) cannot be sent that
/// way, such as some FUSE and `/proc` files.
fn sendfile_unsupported(error: &std::io::Error) -> bool {
    [
        rustix::io::Errno::INVAL,
        rustix::io::Errno::NOSYS,
        rustix::io::Errno::OPNOTSUPP,
    ]
    .iter()
    .any(|errno| error.raw_os_error() == Some(errno.raw_os_error()))
}

impl ZeroCopyStream {
    fn poll_send_more(
        &self,
        context: &mut Context<'_>,
        buffers: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        loop {
            ready!(self.inner.poll_write_ready(context))?;
            match self.inner.try_io(Interest::WRITABLE, || {
                rustix::net::sendmsg(
                    &self.inner,
                    buffers,
                    &mut rustix::net::SendAncillaryBuffer::default(),
                    rustix::net::SendFlags::MORE | rustix::net::SendFlags::NOSIGNAL,
                )
                .map_err(std::io::Error::from)
            }) {
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
                other => return Poll::Ready(other),
            }
        }
    }
}

impl AsyncRead for ZeroCopyStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(context, buffer)
    }
}

impl AsyncWrite for ZeroCopyStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let found = read_registry().locate(buffer)?;
        match found {
            Some((file, offset)) => self.poll_sendfile(context, &file, offset, buffer.len()),
            None => Pin::new(&mut self.inner).poll_write(context, buffer),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffers: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let Some(first) = buffers.iter().position(|buffer| !buffer.is_empty()) else {
            return Poll::Ready(Ok(0));
        };
        let (found, plain_end) = {
            let registry = read_registry();
            match registry.locate(&buffers[first])? {
                Some(found) => (Some(found), first),
                // Write the ordinary slices up to the next one sent from a file in one call.
                None => (
                    None,
                    buffers[first..]
                        .iter()
                        .position(|buffer| !matches!(registry.locate(buffer), Ok(None)))
                        .map_or(buffers.len(), |index| first + index),
                ),
            }
        };
        match found {
            Some((file, offset)) => {
                self.poll_sendfile(context, &file, offset, buffers[first].len())
            }
            // A registered body follows: hold these bytes back to go out with its first
            // segment (MSG_MORE), as nginx does with TCP_CORK, rather than as a packet alone.
            None if plain_end < buffers.len() => {
                self.poll_send_more(context, &buffers[first..plain_end])
            }
            None => {
                Pin::new(&mut self.inner).poll_write_vectored(context, &buffers[first..plain_end])
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(context)
    }

    fn poll_shutdown(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(context)
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn small_package_files_are_kept_within_their_budget_oldest_dropped_first() {
        let mut small = SmallBlobs::default();
        let body = Bytes::from(vec![7u8; 4096]);
        let count = MAX_SMALL_BLOB_TOTAL_BYTES / 4096 + 10;
        for index in 0..count {
            small.keep(&format!("{index:064x}"), body.clone());
        }
        assert!(small.total <= MAX_SMALL_BLOB_TOTAL_BYTES);
        assert_eq!(small.total, small.bodies.len() * 4096);
        assert!(
            !small.bodies.contains_key(&format!("{:064x}", 0)),
            "oldest dropped"
        );
        assert_eq!(
            small.bodies.get(&format!("{:064x}", count - 1)),
            Some(&body),
            "newest kept"
        );
        keep_blob(
            "ab".repeat(32).as_str(),
            Bytes::from_static(b"tiny"),
            tempfile_for_test(),
        );
        assert_eq!(blob(&"ab".repeat(32)), Some(Bytes::from_static(b"tiny")));
    }

    fn tempfile_for_test() -> std::fs::File {
        tempfile::tempfile().expect("a temporary file")
    }

    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_file_sendfile_cannot_send_is_read_and_written_instead() {
        // The kernel refuses sendfile from this file (EINVAL) but reads it.
        let path = "/proc/self/cmdline";
        let expected = std::fs::read(path).expect("readable");
        let file = std::fs::File::open(path).expect("opened");
        {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let probe = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
            let refused = rustix::fs::sendfile(&probe, &file, Some(&mut 0), 16).map_err(Into::into);
            assert!(
                refused.as_ref().is_err_and(sendfile_unsupported),
                "this kernel must refuse sendfile from {path} for the test to mean anything: {refused:?}"
            );
        }
        let listener = ZeroCopyListener::new(TcpListener::bind("127.0.0.1:0").await.unwrap());
        let address = axum::serve::Listener::local_addr(&listener).unwrap();
        let sender = tokio::spawn(async move {
            let mut listener = listener;
            let (mut stream, _) = axum::serve::Listener::accept(&mut listener).await;
            let mut at = 0;
            while at < expected.len() {
                at += std::future::poll_fn(|context| {
                    stream.poll_sendfile(context, &file, at as u64, expected.len() - at)
                })
                .await
                .expect("sent");
            }
            stream.shutdown().await.unwrap();
            expected
        });
        let mut client = TcpStream::connect(address).await.unwrap();
        let mut received = Vec::new();
        client.read_to_end(&mut received).await.unwrap();
        let expected = sender.await.unwrap();
        assert!(!expected.is_empty());
        assert_eq!(received, expected, "the same bytes, read and written");
    }

    #[tokio::test]
    async fn registered_bodies_arrive_whole_and_in_order_with_other_writes() {
        let body = Bytes::from(
            (0..(3 * MIN_BODY_BYTES))
                .map(|index| (index % 251) as u8)
                .collect::<Vec<u8>>(),
        );
        register(&body);
        assert!(read_registry().find(&body[10..20]).is_some());
        let listener = ZeroCopyListener::new(TcpListener::bind("127.0.0.1:0").await.unwrap());
        let address = axum::serve::Listener::local_addr(&listener).unwrap();
        let sender = {
            let body = body.clone();
            tokio::spawn(async move {
                let mut listener = listener;
                let (mut stream, _) = axum::serve::Listener::accept(&mut listener).await;
                let head = b"head:".to_vec();
                let tail = b":tail".to_vec();
                // A vectored write mixing ordinary and registered slices, then the rest.
                let slices = [IoSlice::new(&head), IoSlice::new(&body[..1000])];
                let mut written = stream.write_vectored(&slices).await.unwrap();
                // Finish whatever part of the two slices was not written.
                let joined: Vec<u8> = [&head[..], &body[..1000]].concat();
                stream.write_all(&joined[written..]).await.unwrap();
                written = 1000;
                stream.write_all(&body[written..]).await.unwrap();
                stream.write_all(&tail).await.unwrap();
                stream.shutdown().await.unwrap();
            })
        };
        let mut client = TcpStream::connect(address).await.unwrap();
        let mut received = Vec::new();
        client.read_to_end(&mut received).await.unwrap();
        sender.await.unwrap();
        let expected: Vec<u8> = [&b"head:"[..], &body[..], &b":tail"[..]].concat();
        assert_eq!(received.len(), expected.len());
        assert!(
            received == expected,
            "the bytes arrive unchanged and in order"
        );
        assert!(
            SENT_FROM_FILES.load(std::sync::atomic::Ordering::Relaxed)
                >= (body.len() - 1000) as u64,
            "the registered part went out with sendfile"
        );
    }
}
