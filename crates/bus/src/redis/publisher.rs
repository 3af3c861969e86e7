//! The publishing side: [`Publisher::publish`] never waits. Events go into a
//! bounded local buffer; one background task takes them in batches and writes
//! each batch with one pipelined round trip (Streams `XADD`s, or the LIST
//! log's push). When Redis is slow or away the task reconnects with backoff
//! while the buffer fills; once it is full, new events are dropped — counted
//! and logged — and the caller still never blocks.
//!
//! After a connection breaks mid-batch the batch is written again, so an
//! event may be stored twice (at-least-once); it is never lost silently.
//! Events written again are counted (`resent`): the bound on such duplicates.

use super::link::{is_server_reply, Link};
use super::list_log::{self, ListConfig};
use super::settings::{redact, RedisTarget};
use super::streams::xadd_batch;
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use switchyard_core::Event;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{error, warn};

/// Where published events go.
#[derive(Debug, Clone)]
pub enum Wire {
    /// `XADD <stream> MAXLEN ~ <max_len> * data <json>`.
    Stream {
        /// Stream key.
        stream: String,
        /// Approximate bound of the stream.
        max_len: usize,
    },
    /// The LIST log.
    List(ListConfig),
}

/// Publisher settings.
#[derive(Debug, Clone)]
pub struct PublisherConfig {
    /// Destination.
    pub wire: Wire,
    /// Events buffered locally while Redis is slow or away.
    pub buffer: usize,
    /// Largest batch written in one round trip.
    pub pipeline: usize,
}

/// Totals since the publisher started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PublisherStats {
    /// Events handed to `publish`.
    pub published: u64,
    /// Events Redis confirmed.
    pub written: u64,
    /// Events dropped because the local buffer was full.
    pub dropped: u64,
    /// Events Redis refused (an error reply such as `WRONGTYPE`) and that were
    /// therefore given up on.
    pub refused: u64,
    /// Events still buffered or in flight when the publisher was closed.
    pub unsent: u64,
    /// Events written again after a connection broke mid-batch: Redis may
    /// have stored part of the batch before the break, so at most this many
    /// events are stored twice.
    pub resent: u64,
}

#[derive(Default)]
struct Counters {
    published: AtomicU64,
    written: AtomicU64,
    dropped: AtomicU64,
    refused: AtomicU64,
    resent: AtomicU64,
}

/// A non-blocking Redis publisher. Share it behind an `Arc`.
pub struct Publisher {
    tx: mpsc::Sender<Event>,
    counters: Arc<Counters>,
    task: JoinHandle<()>,
}

impl Publisher {
    /// Start the background writer. Connecting happens in the background too:
    /// a Redis that is down at start-up only fills the buffer.
    pub fn start(target: &RedisTarget, cfg: PublisherConfig) -> Result<Self, String> {
        let link = Link::new(target, "publisher", Duration::from_secs(30))?;
        let (tx, rx) = mpsc::channel(cfg.buffer.max(1));
        let counters = Arc::new(Counters::default());
        let task = tokio::spawn(write_loop(
            rx,
            link,
            cfg.wire,
            cfg.pipeline.max(1),
            counters.clone(),
        ));
        Ok(Self { tx, counters, task })
    }

    /// Queue one event; returns `false` (and counts a drop) when the buffer
    /// is full. Never waits.
    pub fn publish(&self, event: Event) -> bool {
        self.counters.published.fetch_add(1, Relaxed);
        match self.tx.try_send(event) {
            Ok(()) => true,
            Err(_) => {
                let n = self.counters.dropped.fetch_add(1, Relaxed) + 1;
                // Logged on the 1st, 2nd, 4th, 8th... drop: visible, never a flood.
                if n.is_power_of_two() {
                    warn!(
                        dropped_total = n,
                        "Redis publisher buffer full; event dropped"
                    );
                }
                false
            }
        }
    }

    /// Queue several events; returns how many were accepted.
    pub fn publish_all(&self, events: impl IntoIterator<Item = Event>) -> usize {
        events.into_iter().map(|e| self.publish(e) as usize).sum()
    }

    /// Totals so far.
    pub fn stats(&self) -> PublisherStats {
        let c = &self.counters;
        PublisherStats {
            published: c.published.load(Relaxed),
            written: c.written.load(Relaxed),
            dropped: c.dropped.load(Relaxed),
            refused: c.refused.load(Relaxed),
            unsent: 0,
            resent: c.resent.load(Relaxed),
        }
    }

    /// Stop accepting, write what is buffered, and return the totals. Gives
    /// up after `timeout` (Redis unreachable); what was not written is
    /// reported as `unsent`.
    pub async fn close(self, timeout: Duration) -> PublisherStats {
        let Self { tx, counters, task } = self;
        drop(tx);
        let abort = task.abort_handle();
        if tokio::time::timeout(timeout, task).await.is_err() {
            abort.abort();
        }
        let c = &counters;
        let (published, written, dropped, refused) = (
            c.published.load(Relaxed),
            c.written.load(Relaxed),
            c.dropped.load(Relaxed),
            c.refused.load(Relaxed),
        );
        let unsent = published.saturating_sub(written + dropped + refused);
        if unsent > 0 {
            error!(unsent, "Redis publisher closed with events not written");
        }
        PublisherStats {
            published,
            written,
            dropped,
            refused,
            unsent,
            resent: c.resent.load(Relaxed),
        }
    }
}

/// A batch ready to write: encoded stream payloads, or events for the LIST
/// log (which encodes after it has their `LogID`s).
enum Ready {
    Payloads(Vec<Vec<u8>>),
    Events(Vec<Event>),
}

impl Ready {
    fn len(&self) -> u64 {
        match self {
            Ready::Payloads(p) => p.len() as u64,
            Ready::Events(e) => e.len() as u64,
        }
    }
}

/// Take the next batch from the buffer and encode it; `None` once the
/// buffer is closed and empty.
async fn next_batch(
    rx: &mut mpsc::Receiver<Event>,
    wire: &Wire,
    pipeline: usize,
    counters: &Counters,
) -> Option<Ready> {
    let mut batch = Vec::with_capacity(pipeline);
    if rx.recv_many(&mut batch, pipeline).await == 0 {
        return None;
    }
    Some(match wire {
        Wire::List(_) => Ready::Events(batch),
        Wire::Stream { .. } => Ready::Payloads(
            batch
                .iter()
                .filter_map(|e| {
                    let mut json = Vec::with_capacity(512);
                    // Encoding an in-memory event cannot fail (string keys
                    // only); if it ever does, the event is counted as refused.
                    let ok = e.write_json(&mut json).is_ok();
                    if !ok {
                        counters.refused.fetch_add(1, Relaxed);
                    }
                    ok.then_some(json)
                })
                .collect(),
        ),
    })
}

async fn write(
    conn: &mut redis::aio::MultiplexedConnection,
    wire: &Wire,
    ready: &mut Ready,
) -> redis::RedisResult<()> {
    match (wire, ready) {
        (Wire::Stream { stream, max_len }, Ready::Payloads(p)) => {
            xadd_batch(conn, stream, *max_len, p).await
        }
        (Wire::List(cfg), Ready::Events(e)) => list_log::push_batch(conn, cfg, e).await,
        // next_batch builds the variant from the same wire.
        _ => unreachable!("batch kind always matches the wire"),
    }
}

/// Batches on the wire at once. Several keep Redis busy while replies travel
/// back and the next batches are encoded: with 376-byte events, four gave
/// about a quarter more events/s than two, eight no more than four. After a
/// broken connection every batch on the wire is written again, so this also
/// bounds the duplicates (`depth × pipeline` events). The LIST log stays at
/// one: its ids are handed out per batch and must be pushed in order.
fn depth(wire: &Wire) -> usize {
    match wire {
        Wire::Stream { .. } => 4,
        Wire::List(_) => 1,
    }
}

type OnWire = JoinHandle<(Ready, redis::RedisResult<()>)>;

/// Write batches, up to [`depth`] at a time on the one multiplexed
/// connection (which keeps them in order), settling them oldest first.
async fn write_loop(
    mut rx: mpsc::Receiver<Event>,
    mut link: Link,
    wire: Wire,
    pipeline: usize,
    counters: Arc<Counters>,
) {
    let wire = Arc::new(wire);
    let depth = depth(&wire);
    let mut on_wire: VecDeque<OnWire> = VecDeque::new();
    let mut closed = false;
    loop {
        if on_wire.is_empty() {
            if closed {
                return;
            }
            match next_batch(&mut rx, &wire, pipeline, &counters).await {
                Some(b) => on_wire.push_back(launch(&mut link, &wire, b).await),
                None => return,
            }
            continue;
        }
        let done = if on_wire.len() < depth && !closed {
            tokio::select! {
                biased;
                done = &mut on_wire[0] => done,
                next = next_batch(&mut rx, &wire, pipeline, &counters) => {
                    match next {
                        Some(b) => on_wire.push_back(launch(&mut link, &wire, b).await),
                        None => closed = true,
                    }
                    continue;
                }
            }
        } else {
            (&mut on_wire[0]).await
        };
        on_wire.pop_front();
        settle(done, &mut link, &wire, &counters).await;
    }
}

async fn launch(link: &mut Link, wire: &Arc<Wire>, mut ready: Ready) -> OnWire {
    let mut conn = link.get().await;
    let wire = wire.clone();
    tokio::spawn(async move {
        let result = write(&mut conn, &wire, &mut ready).await;
        (ready, result)
    })
}

/// Count a finished batch; after a broken connection, write it again.
async fn settle(
    done: Result<(Ready, redis::RedisResult<()>), tokio::task::JoinError>,
    link: &mut Link,
    wire: &Wire,
    counters: &Counters,
) {
    let (mut ready, mut result) = match done {
        Ok(d) => d,
        Err(e) => {
            // The write task never panics; if it ever does, say so loudly.
            error!(error = %e, "Redis publish task failed; its batch is lost");
            return;
        }
    };
    while let Err(e) = &result {
        if is_server_reply(e) {
            break;
        }
        link.broken(e);
        let mut conn = link.get().await;
        counters.resent.fetch_add(ready.len(), Relaxed);
        result = write(&mut conn, wire, &mut ready).await;
    }
    let n = ready.len();
    match result {
        Ok(()) => {
            counters.written.fetch_add(n, Relaxed);
        }
        Err(e) => {
            error!(events = n, error = %redact(&e.to_string()), "Redis refused a publish batch; events dropped");
            counters.refused.fetch_add(n, Relaxed);
        }
    }
}
