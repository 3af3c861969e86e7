//! What one ingest server may hold at once, across all its clients: open
//! connections, requests in progress, and body bytes. Without these bounds
//! every connection could buffer up to `max_body`, so a few dozen unfinished
//! uploads were enough to take hundreds of MiB.
//!
//! The body budget is taken as the bytes arrive, not as the client announces
//! them: a client that declares a large `Content-Length` and then stalls holds
//! only what it has sent, so stalled uploads cannot starve honest clients of
//! the budget. Going over a bound never waits: the request is answered `503`
//! with `Retry-After` at once, and the client tries again later.

use super::IngestCounters;
use axum::body::{Body, Bytes};
use http_body_util::BodyExt;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// The bounds of one ingest server.
///
/// The defaults are sized for a small host (2 cores, a few hundred MiB for
/// the whole process): 1024 connections cost about 10 KiB each while idle
/// (socket and parser buffers), 256 requests in progress is far more than two
/// cores parse at once while leaving room for requests that wait for queue
/// room or acknowledgements, and 64 MiB of bodies is six full 10 MiB bodies
/// at once — the same order as the sink buffer's default 64 MiB.
#[derive(Clone, Debug)]
pub struct IngestLimits {
    /// Most open connections; more are closed as soon as they are accepted.
    pub max_connections: usize,
    /// Most ingest requests in progress (from the complete request head to
    /// the answer); more are answered `503` with `Retry-After`.
    pub max_concurrent_requests: usize,
    /// Most body bytes held across all requests, from the first byte read
    /// until the request's events are in the queue; a request that would go
    /// over is answered `503` with `Retry-After`.
    pub max_body_memory: usize,
    /// Longest time from a request's first byte to its complete head; then
    /// the connection is closed.
    pub header_timeout: Duration,
    /// Longest time to receive a whole body, counted from the complete head;
    /// then `408` and the connection is closed.
    pub body_timeout: Duration,
    /// Longest an open connection waits for the first byte of a request
    /// (just opened, or kept alive after an answer); then it is closed.
    pub idle_timeout: Duration,
}

impl Default for IngestLimits {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            max_concurrent_requests: 256,
            max_body_memory: 64 << 20,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// The shared state behind [`IngestLimits`]' request bounds.
pub(super) struct Gates {
    requests: Arc<Semaphore>,
    bytes: Arc<Semaphore>,
    max_body_memory: usize,
    body_timeout: Duration,
    counters: Arc<IngestCounters>,
}

/// A request's place among those in progress; dropped with the request.
pub(super) struct InProgress {
    _permit: OwnedSemaphorePermit,
    counters: Arc<IngestCounters>,
}

impl Drop for InProgress {
    fn drop(&mut self) {
        self.counters.requests_in_progress.fetch_sub(1, Relaxed);
    }
}

/// Body bytes taken from the shared budget; given back when dropped.
pub(super) struct Held {
    permit: Option<OwnedSemaphorePermit>,
    bytes: usize,
    counters: Arc<IngestCounters>,
}

impl Held {
    fn add(&mut self, permit: OwnedSemaphorePermit, n: usize) {
        match &mut self.permit {
            Some(p) => p.merge(permit),
            None => self.permit = Some(permit),
        }
        self.bytes += n;
        self.counters.body_bytes_held.fetch_add(n as u64, Relaxed);
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.counters
            .body_bytes_held
            .fetch_sub(self.bytes as u64, Relaxed);
    }
}

/// Why a body was not read.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum BodyError {
    /// Longer than `max_body` (announced or sent).
    TooLarge,
    /// The shared budget of body bytes is spent.
    NoMemory,
    /// Not complete within the body timeout.
    TimedOut,
    /// The client went away or sent a malformed body.
    Broken,
}

impl Gates {
    pub(super) fn new(limits: &IngestLimits, counters: Arc<IngestCounters>) -> Self {
        // A semaphore holds at most `Semaphore::MAX_PERMITS`; no host has
        // that much memory, so clamping changes nothing in practice.
        let max_body_memory = limits.max_body_memory.min(Semaphore::MAX_PERMITS);
        Self {
            requests: Arc::new(Semaphore::new(
                limits.max_concurrent_requests.min(Semaphore::MAX_PERMITS),
            )),
            bytes: Arc::new(Semaphore::new(max_body_memory)),
            max_body_memory,
            body_timeout: limits.body_timeout,
            counters,
        }
    }

    /// A place among the requests in progress, or `None` when all are taken.
    pub(super) fn enter(&self) -> Option<InProgress> {
        let permit = self.requests.clone().try_acquire_owned().ok()?;
        self.counters.requests_in_progress.fetch_add(1, Relaxed);
        Some(InProgress {
            _permit: permit,
            counters: self.counters.clone(),
        })
    }

    /// Read a whole body of at most `max_body` bytes, taking each chunk from
    /// the shared budget as it arrives, within the body timeout. The bytes
    /// stay counted until the returned [`Held`] is dropped.
    pub(super) async fn read_body(
        &self,
        body: Body,
        announced: Option<u64>,
        max_body: usize,
    ) -> Result<(Bytes, Held), BodyError> {
        if announced.is_some_and(|n| n > max_body as u64) {
            return Err(BodyError::TooLarge);
        }
        if announced.is_some_and(|n| n > self.max_body_memory as u64) {
            // Could never fit, even with every other request gone.
            return Err(BodyError::NoMemory);
        }
        let deadline = Instant::now() + self.body_timeout;
        let mut held = Held {
            permit: None,
            bytes: 0,
            counters: self.counters.clone(),
        };
        let chunks = tokio::time::timeout_at(deadline, self.chunks(body, max_body, &mut held))
            .await
            .map_err(|_| BodyError::TimedOut)??;
        // One copy into a buffer of the exact size: the chunks are freed
        // right after, so the peak is one body twice, never a growth factor.
        let bytes = match chunks.len() {
            0 => Bytes::new(),
            1 => chunks.into_iter().next().unwrap_or_default(),
            _ => {
                let mut all = Vec::with_capacity(held.bytes);
                for c in &chunks {
                    all.extend_from_slice(c);
                }
                Bytes::from(all)
            }
        };
        Ok((bytes, held))
    }

    async fn chunks(
        &self,
        mut body: Body,
        max_body: usize,
        held: &mut Held,
    ) -> Result<Vec<Bytes>, BodyError> {
        let mut chunks = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|_| BodyError::Broken)?;
            let Ok(data) = frame.into_data() else {
                continue; // trailers
            };
            if data.is_empty() {
                continue;
            }
            if held.bytes + data.len() > max_body {
                return Err(BodyError::TooLarge);
            }
            let n = u32::try_from(data.len()).map_err(|_| BodyError::NoMemory)?;
            let permit = self
                .bytes
                .clone()
                .try_acquire_many_owned(n)
                .map_err(|_| BodyError::NoMemory)?;
            held.add(permit, data.len());
            chunks.push(data);
        }
        Ok(chunks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::stream;

    fn gates(limits: IngestLimits) -> (Gates, Arc<IngestCounters>) {
        let counters = Arc::new(IngestCounters::default());
        (Gates::new(&limits, counters.clone()), counters)
    }

    fn body(chunks: &[&'static [u8]]) -> Body {
        let chunks: Vec<Result<Bytes, std::io::Error>> =
            chunks.iter().map(|c| Ok(Bytes::from_static(c))).collect();
        Body::from_stream(stream::iter(chunks))
    }

    #[tokio::test]
    async fn body_bytes_are_counted_while_held_and_given_back_when_dropped() {
        let (g, counters) = gates(IngestLimits {
            max_body_memory: 10,
            ..IngestLimits::default()
        });
        let (bytes, held) = g
            .read_body(body(&[b"abc", b"def"]), None, 100)
            .await
            .unwrap();
        assert_eq!(&bytes[..], b"abcdef");
        assert_eq!(counters.body_bytes_held.load(Relaxed), 6);
        // The budget has 4 bytes left: a 5-byte chunk does not fit.
        let err = g.read_body(body(&[b"12345"]), None, 100).await.err();
        assert_eq!(err, Some(BodyError::NoMemory));
        assert_eq!(counters.body_bytes_held.load(Relaxed), 6);
        drop(held);
        assert_eq!(counters.body_bytes_held.load(Relaxed), 0);
        assert!(g.read_body(body(&[b"12345"]), None, 100).await.is_ok());
    }

    #[tokio::test]
    async fn announced_lengths_over_the_bounds_are_refused_before_reading() {
        let (g, _) = gates(IngestLimits {
            max_body_memory: 10,
            ..IngestLimits::default()
        });
        let err = g.read_body(body(&[]), Some(101), 100).await.err();
        assert_eq!(err, Some(BodyError::TooLarge));
        let err = g.read_body(body(&[]), Some(11), 100).await.err();
        assert_eq!(err, Some(BodyError::NoMemory));
        let err = g.read_body(body(&[b"123456"]), None, 5).await.err();
        assert_eq!(err, Some(BodyError::TooLarge));
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_stalls_is_cut_at_the_body_timeout_and_its_bytes_given_back() {
        let (g, counters) = gates(IngestLimits {
            body_timeout: Duration::from_secs(5),
            ..IngestLimits::default()
        });
        let (mut tx, rx) = futures_channel();
        tx.push(Ok(Bytes::from_static(b"part")));
        let read = g.read_body(Body::from_stream(rx), Some(100), 1000);
        let err = read.await.err();
        assert_eq!(err, Some(BodyError::TimedOut));
        assert_eq!(counters.body_bytes_held.load(Relaxed), 0);
        drop(tx);
    }

    /// A body stream that yields what was pushed, then stays pending.
    fn futures_channel() -> (
        Pusher,
        impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
    ) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let stream = stream::unfold(rx, |mut rx| async move {
            let item = rx.recv().await?;
            Some((item, rx))
        });
        (Pusher(tx), stream)
    }

    struct Pusher(tokio::sync::mpsc::UnboundedSender<Result<Bytes, std::io::Error>>);

    impl Pusher {
        fn push(&mut self, item: Result<Bytes, std::io::Error>) {
            let _ = self.0.send(item);
        }
    }

    #[test]
    fn in_progress_places_are_bounded_and_counted() {
        let (g, counters) = gates(IngestLimits {
            max_concurrent_requests: 2,
            ..IngestLimits::default()
        });
        let a = g.enter().unwrap();
        let _b = g.enter().unwrap();
        assert!(g.enter().is_none());
        assert_eq!(counters.requests_in_progress.load(Relaxed), 2);
        drop(a);
        assert_eq!(counters.requests_in_progress.load(Relaxed), 1);
        assert!(g.enter().is_some());
    }
}
