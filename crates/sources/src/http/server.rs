//! The ingest server's accept loop and connections: the connection bound,
//! the idle and header timeouts, and a graceful stop.
//!
//! Each connection moves through three phases, kept in [`Activity`]:
//! *idle* (open, waiting for the first byte of a request), *head* (bytes
//! arrived, the request head is not complete yet) and *busy* (the request is
//! with the router, whose body timeout bounds the upload). The connection's
//! task wakes at each phase change and at the current phase's deadline, and
//! ends an idle connection gracefully or drops one whose head is late. HTTP/1.1 serves one request
//! at a time per connection, so a phase is the connection's whole state.

use super::IngestCounters;
use super::IngestLimits;
use axum::body::Body;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tower::ServiceExt;
use tracing::{debug, warn};

/// Serve `app` on `listener` within `limits` until `shutdown` resolves; then
/// stop accepting, let requests in progress finish (their timeouts bound
/// them), close idle connections, and return once every connection is gone.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: &IngestLimits,
    counters: Arc<IngestCounters>,
    shutdown: impl Future<Output = ()> + Send,
) {
    let slots = Arc::new(Semaphore::new(
        limits.max_connections.min(Semaphore::MAX_PERMITS),
    ));
    // Connections hold a receiver: `stopping.closed()` resolves once the
    // last one has ended, and `send(true)` asks them all to finish.
    let (stopping, stop_rx) = watch::channel(false);
    let timeouts = Timeouts {
        idle: limits.idle_timeout,
        header: limits.header_timeout,
    };
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, usually: give the connections
                    // in progress a moment to end instead of spinning.
                    warn!(error = %e, "ingest cannot accept a connection; retrying in 100 ms");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            // Closing at once costs the client a retry; keeping it open would
            // cost the server the memory the bound is there to protect.
            counters.connections_refused.fetch_add(1, Relaxed);
            debug!("ingest connection refused: too many open connections");
            drop(stream);
            continue;
        };
        tokio::spawn(connection(
            stream,
            app.clone(),
            timeouts,
            counters.clone(),
            stop_rx.clone(),
            slot,
        ));
    }
    drop(listener);
    drop(stop_rx);
    let _ = stopping.send(true);
    stopping.closed().await;
}

#[derive(Clone, Copy)]
struct Timeouts {
    idle: Duration,
    header: Duration,
}

const IDLE: u8 = 0;
const HEAD: u8 = 1;
const BUSY: u8 = 2;

/// A connection's phase and when it began, shared by its reader (which sees
/// the first byte of a request), its service (which sees the request start
/// and end) and its task (which enforces the deadlines).
struct Activity {
    phase: AtomicU8,
    /// Milliseconds since `origin` when the phase began.
    since: AtomicU64,
    origin: Instant,
    /// Wakes the connection's task when the phase changes: its deadline
    /// may now be earlier (idle to head) or start (busy to idle).
    changed: Notify,
}

impl Activity {
    fn new() -> Self {
        Self {
            phase: AtomicU8::new(IDLE),
            since: AtomicU64::new(0),
            origin: Instant::now(),
            changed: Notify::new(),
        }
    }

    fn set(&self, phase: u8) {
        let now = self.origin.elapsed().as_millis() as u64;
        self.since.store(now, Relaxed);
        self.phase.store(phase, Relaxed);
        self.changed.notify_one();
    }

    /// Bytes arrived: an idle connection starts a request head.
    fn bytes_read(&self) {
        if self.phase.load(Relaxed) == IDLE {
            self.set(HEAD);
        }
    }

    /// The phase and its deadline (`None` while busy).
    fn deadline(&self, t: Timeouts) -> (u8, Option<Instant>) {
        let phase = self.phase.load(Relaxed);
        let since = self.origin + Duration::from_millis(self.since.load(Relaxed));
        match phase {
            IDLE => (phase, Some(since + t.idle)),
            HEAD => (phase, Some(since + t.header)),
            _ => (phase, None),
        }
    }
}

/// Marks the connection busy while a request is with the router.
struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.set(IDLE);
    }
}

async fn connection(
    stream: TcpStream,
    app: Router,
    timeouts: Timeouts,
    counters: Arc<IngestCounters>,
    mut stop: watch::Receiver<bool>,
    _slot: OwnedSemaphorePermit,
) {
    counters.connections_open.fetch_add(1, Relaxed);
    let _open = OpenGuard(counters.clone());
    let _ = stream.set_nodelay(true);
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Watched {
        inner: stream,
        activity: activity.clone(),
    });
    let service = {
        let activity = activity.clone();
        hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            activity.set(BUSY);
            let busy = Busy(activity.clone());
            let app = app.clone();
            async move {
                let response = app.oneshot(req.map(Body::new)).await;
                drop(busy);
                response
            }
        })
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    // The header deadline is ours (it must not count the idle wait before
    // the first byte, which hyper's own timer does).
    builder.header_read_timeout(None);
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    // Set once the connection was asked to end gracefully (idle, or the
    // server stopping): only the header deadline still applies then.
    let mut ending = false;
    let mut stop_seen = false;
    loop {
        let (phase, deadline) = activity.deadline(timeouts);
        // No deadline of ours while busy, nor for an idle connection that
        // was already asked to end.
        let wake = match phase {
            IDLE if ending => None,
            _ => deadline,
        };
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    debug!(error = %e, "ingest connection ended with an error");
                }
                return;
            }
            () = activity.changed.notified() => continue,
            () = sleep_until_some(wake) => {
                // The phase may have moved on since `deadline` was taken.
                let (now_phase, now_deadline) = activity.deadline(timeouts);
                if now_phase != phase || now_deadline.is_none_or(|d| d > Instant::now()) {
                    continue;
                }
                if phase == HEAD {
                    counters.header_timeouts.fetch_add(1, Relaxed);
                    debug!("ingest connection closed: request head not complete in time");
                    return;
                }
                counters.idle_closed.fetch_add(1, Relaxed);
                // Idle: nothing is lost by closing, and hyper does it at once.
                ending = true;
                conn.as_mut().graceful_shutdown();
            }
            // A dropped sender means the server is gone: stop as well.
            _ = stop.changed(), if !stop_seen => {
                stop_seen = true;
                if !ending {
                    ending = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

async fn sleep_until_some(wake: Option<Instant>) {
    match wake {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

struct OpenGuard(Arc<IngestCounters>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.connections_open.fetch_sub(1, Relaxed);
    }
}

/// The connection's socket, telling [`Activity`] when bytes arrive.
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.bytes_read();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
