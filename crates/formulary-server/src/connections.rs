//! Serving HTTP/1.1 connections with limits, so that slow or stalled clients cannot hold the
//! server: a deadline for each request's headers, an idle timeout for kept-alive connections and
//! for transfers the client stopped reading, a bound on open connections (beyond it a short 503
//! problem+json), and a shutdown deadline after which transfers still running are cut and logged.
//!
//! Each connection goes through phases, watched by its own task: *reading a request head*
//! (from the accept, or from the first byte of the next request on a kept-alive connection),
//! *handling* (the application works; bounded by the router's own timeout), *sending* (the
//! response body goes out) and *idle* (kept alive between requests).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::response::Response;
use axum::serve::Listener;
use axum::Router;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tower::ServiceExt;

use crate::zero_copy::{ZeroCopyListener, ZeroCopyStream};

/// The limits [`serve`] applies.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// How long a client may take to send a request's headers, from the accept (or, on a
    /// kept-alive connection, from the first byte of the next request).
    pub header_read_timeout: Duration,
    /// How long a kept-alive connection may wait for its next request, and how long a response
    /// may wait for a client that does not read it, before the connection is closed.
    pub idle_timeout: Duration,
    /// Connections open at most; more are answered 503 and closed.
    pub max_connections: usize,
    /// How long transfers may go on after a shutdown signal before they are cut.
    pub shutdown_deadline: Duration,
}

/// What happened at shutdown.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServeSummary {
    /// Connections still open at the shutdown deadline, cut.
    pub cut: usize,
    /// Connections refused because the limit was reached, since the start.
    pub refused: u64,
}

const READING_HEAD: u8 = 0;
const HANDLING: u8 = 1;
const SENDING: u8 = 2;
const IDLE: u8 = 3;

/// Milliseconds since the first call: a cheap clock shared by a connection's parts.
fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    u64::try_from(START.get_or_init(Instant::now).elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// What a connection is doing, updated by its I/O and its requests, read by its watchdog.
#[derive(Debug)]
struct Activity {
    phase: AtomicU8,
    /// When the phase began.
    since: AtomicU64,
    /// When bytes last moved either way.
    last_io: AtomicU64,
    /// Requests whose responses are not finished.
    in_flight: AtomicUsize,
}

impl Activity {
    fn new() -> Activity {
        let now = now_ms();
        Activity {
            phase: AtomicU8::new(READING_HEAD),
            since: AtomicU64::new(now),
            last_io: AtomicU64::new(now),
            in_flight: AtomicUsize::new(0),
        }
    }

    fn enter(&self, phase: u8) {
        self.since.store(now_ms(), Ordering::Relaxed);
        self.phase.store(phase, Ordering::Relaxed);
    }

    fn read_some(&self) {
        self.last_io.store(now_ms(), Ordering::Relaxed);
        if self
            .phase
            .compare_exchange(IDLE, READING_HEAD, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            self.since.store(now_ms(), Ordering::Relaxed);
        }
    }

    /// Why the connection must close now, if it must.
    fn overdue(&self, limits: &ConnectionLimits) -> Option<Overdue> {
        let now = now_ms();
        let phase_age =
            Duration::from_millis(now.saturating_sub(self.since.load(Ordering::Relaxed)));
        let io_age =
            Duration::from_millis(now.saturating_sub(self.last_io.load(Ordering::Relaxed)));
        match self.phase.load(Ordering::Relaxed) {
            READING_HEAD if phase_age > limits.header_read_timeout => Some(Overdue::Reported(
                "its request headers did not arrive in time (a slow or stalled client)",
            )),
            IDLE if phase_age > limits.idle_timeout => Some(Overdue::Idle),
            SENDING if io_age > limits.idle_timeout => {
                Some(Overdue::Reported("the client stopped reading the response"))
            }
            _ => None,
        }
    }

    fn describe(&self) -> &'static str {
        match self.phase.load(Ordering::Relaxed) {
            READING_HEAD => "reading a request",
            HANDLING => "preparing a response",
            SENDING => "sending a response",
            _ => "idle",
        }
    }
}

/// Why a connection is closed by its watchdog.
#[derive(Debug, Clone, Copy)]
enum Overdue {
    /// Kept alive with nothing to do for too long: closed quietly.
    Idle,
    /// Stalled: closed with a log line saying why.
    Reported(&'static str),
}

/// Marks a request finished when its response body is dropped (sent, or abandoned).
#[derive(Debug)]
struct RequestGuard(Arc<Activity>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::Relaxed) == 1 {
            self.0.enter(IDLE);
        }
    }
}

/// A response body that tells the connection when it is done.
struct GuardedBody {
    body: Body,
    _guard: RequestGuard,
}

impl hyper::body::Body for GuardedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A connection's stream, noting when bytes move.
struct Watched {
    inner: ZeroCopyStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.activity.read_some();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(written)) if written > 0) {
            this.activity.last_io.store(now_ms(), Ordering::Relaxed);
        }
        polled
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(written)) if written > 0) {
            this.activity.last_io.store(now_ms(), Ordering::Relaxed);
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Serves `app` on `listener` within `limits` until `shutdown` completes, then lets transfers
/// finish until the shutdown deadline and cuts (and logs) those still running.
pub async fn serve(
    mut listener: ZeroCopyListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send,
) -> ServeSummary {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let (stop, stopping) = watch::channel(false);
    let (cut, cutting) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut refused = 0u64;
    let mut last_refusal_log: Option<Instant> = None;
    let mut shutdown = pin!(shutdown);
    loop {
        tokio::select! {
            (stream, address) = listener.accept() => {
                match Arc::clone(&permits).try_acquire_owned() {
                    Ok(permit) => {
                        let (app, stopping, cutting) = (app.clone(), stopping.clone(), cutting.clone());
                        connections.spawn(async move {
                            connection(stream, address, app, limits, stopping, cutting).await;
                            drop(permit);
                        });
                    }
                    Err(_) => {
                        refused += 1;
                        if last_refusal_log.is_none_or(|at| at.elapsed() > Duration::from_secs(10)) {
                            last_refusal_log = Some(Instant::now());
                            tracing::warn!(
                                limit = limits.max_connections,
                                refused_so_far = refused,
                                "refusing connections: the limit of open connections is reached (raise max_connections, or add replicas)"
                            );
                        }
                        connections.spawn(refuse(stream, limits.max_connections));
                    }
                }
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    let _ = stop.send(true);
    let open = connections.len();
    if open > 0 {
        tracing::info!(
            open,
            deadline_seconds = limits.shutdown_deadline.as_secs_f64(),
            "no longer accepting connections; letting open ones finish"
        );
    }
    let deadline = tokio::time::sleep(limits.shutdown_deadline);
    let mut deadline = pin!(deadline);
    let mut summary = ServeSummary { cut: 0, refused };
    loop {
        tokio::select! {
            next = connections.join_next() => if next.is_none() { break },
            () = &mut deadline => {
                summary.cut = connections.len();
                let _ = cut.send(true);
                // Each connection logs what it was doing and closes; give them a moment.
                let _ = tokio::time::timeout(Duration::from_millis(500), async {
                    while connections.join_next().await.is_some() {}
                })
                .await;
                connections.abort_all();
                tracing::warn!(
                    cut = summary.cut,
                    deadline_seconds = limits.shutdown_deadline.as_secs_f64(),
                    "the shutdown deadline passed: connections still open were cut"
                );
                break;
            }
        }
    }
    summary
}

/// Serves one connection until it ends, must close, or is cut at shutdown.
async fn connection(
    stream: ZeroCopyStream,
    address: SocketAddr,
    app: Router,
    limits: ConnectionLimits,
    mut stopping: watch::Receiver<bool>,
    mut cutting: watch::Receiver<bool>,
) {
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Watched {
        inner: stream,
        activity: Arc::clone(&activity),
    });
    let service_activity = Arc::clone(&activity);
    let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(address));
        request
            .extensions_mut()
            .insert(ConnectInfo(crate::state::Peer(address)));
        service_activity.in_flight.fetch_add(1, Ordering::Relaxed);
        service_activity.enter(HANDLING);
        let guard = RequestGuard(Arc::clone(&service_activity));
        let app = app.clone();
        async move {
            // File ranges in the answer may go out with sendfile (this connection sends them).
            let handled = crate::file_ranges::serving(app.oneshot(request.map(Body::new)));
            let response: Response = match handled.await {
                Ok(response) => response,
                Err(never) => match never {},
            };
            guard.0.enter(SENDING);
            Ok::<_, Infallible>(response.map(|body| {
                Body::new(GuardedBody {
                    body,
                    _guard: guard,
                })
            }))
        }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        // Body chunks reach the stream as they are, never copied into a buffer of hyper's:
        // registered bodies and file placeholders are recognised by their addresses.
        .writev(true)
        .serve_connection(io, service);
    let mut connection = pin!(connection);
    let check_every = (limits.header_read_timeout.min(limits.idle_timeout) / 4)
        .clamp(Duration::from_millis(50), Duration::from_secs(1));
    let mut watchdog = tokio::time::interval(check_every);
    watchdog.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut graceful = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%error, client = %address, "connection ended with an error");
                }
                return;
            }
            changed = stopping.changed(), if !graceful => {
                graceful = true;
                if changed.is_ok() {
                    // Idle connections close now; a response under way finishes first.
                    connection.as_mut().graceful_shutdown();
                }
            }
            _ = cutting.changed() => {
                tracing::warn!(
                    client = %address,
                    doing = activity.describe(),
                    "cut a connection at the shutdown deadline"
                );
                return;
            }
            _ = watchdog.tick() => {
                match activity.overdue(&limits) {
                    Some(Overdue::Idle) => return,
                    Some(Overdue::Reported(why)) => {
                        tracing::info!(client = %address, why, "closed a connection");
                        return;
                    }
                    None => {}
                }
            }
        }
    }
}

/// Answers a connection beyond the limit with a short 503 problem+json and closes it. The
/// request is read first (briefly), so that the client sees the answer rather than a reset.
async fn refuse(mut stream: ZeroCopyStream, limit: usize) {
    let mut request = Vec::with_capacity(1024);
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        let mut buffer = [0u8; 4096];
        while request.len() < 16 * 1024 && !request.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(read) => request.extend_from_slice(&buffer[..read]),
            }
        }
    })
    .await;
    let body = serde_json::json!({
        "type": "about:blank",
        "title": "Too many connections",
        "status": 503,
        "detail": format!("Formulary already serves its limit of {limit} open connections. Try again in a moment; if this persists, ask the administrator to raise max_connections."),
    })
    .to_string();
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/problem+json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        let _ = stream.write_all(response.as_bytes()).await;
        let _ = stream.shutdown().await;
    })
    .await;
}
