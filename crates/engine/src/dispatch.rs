//! The dispatch loop: intake → transform → batch → deliver (with retries).
//!
//! Up to `concurrency` batches are being delivered at once; when that many are
//! in flight the loop stops taking from intake, so a slow sink slows intake and
//! the intake bound pushes back on sources. Batches are handed to the sink in
//! order; with more than one in flight a retried batch can land after a later
//! one. Every event ends with a recorded fate (delivered, filtered or dropped)
//! that is both counted and reported to its source through its
//! acknowledgement token.

use crate::backoff::Backoff;
use crate::batcher::Batcher;
use crate::counters::Counters;
use crate::intake::IntakeReceiver;
use futures_util::stream::{FuturesUnordered, StreamExt};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use switchyard_core::{
    Event, EventFailure, Fate, Sink, SinkError, SinkErrorKind, Transform, Verdict,
};
use tracing::{debug, error, warn};

/// Batching and retry settings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Events per batch.
    pub batch_size: usize,
    /// Longest time an event waits in an unfilled batch.
    pub flush_interval: Duration,
    /// Retries after the first attempt.
    pub retry_attempts: u32,
    /// Ceiling of the first retry's delay.
    pub retry_backoff: Duration,
    /// Batches being delivered at the same time (at least 1). More than one
    /// lets the next batch be encoded and written while the sink still
    /// confirms the previous one (a file sync, an HTTP round trip).
    pub concurrency: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            batch_size: 100,
            flush_interval: Duration::from_secs(5),
            retry_attempts: 3,
            retry_backoff: Duration::from_secs(1),
            concurrency: 2,
        }
    }
}

/// Run until every intake sender is gone and the queue is drained; then flush
/// the last batch and close the sink.
pub async fn run(
    mut intake: IntakeReceiver,
    transform: Arc<dyn Transform>,
    sink: Box<dyn Sink>,
    config: EngineConfig,
    counters: Arc<Counters>,
) {
    let mut batcher = Batcher::new(config.batch_size, config.flush_interval);
    let deliver = Deliver {
        sink: sink.as_ref(),
        backoff: Backoff {
            base: config.retry_backoff,
        },
        retries: config.retry_attempts,
        counters: &counters,
    };
    let mut in_flight = InFlight::new(config.concurrency, &counters);
    loop {
        let deadline = batcher.deadline();
        tokio::select! {
            chunk = intake.recv(), if !in_flight.is_full() => {
                let Some(chunk) = chunk else { break };
                counters.add_received(chunk.len() as u64);
                for mut event in chunk {
                    if transform.apply(&mut event) == Verdict::Filter {
                        event.resolve(Fate::Filtered);
                        counters.add_filtered(1);
                        continue;
                    }
                    if let Some(batch) = batcher.push(event) {
                        in_flight.push(deliver.batch(batch)).await;
                    }
                }
            }
            _ = in_flight.next_done() => {}
            _ = sleep_until(deadline), if deadline.is_some() && !in_flight.is_full() => {
                in_flight.push(deliver.batch(batcher.take())).await;
            }
        }
    }
    in_flight.push(deliver.batch(batcher.take())).await;
    in_flight.drain().await;
    if let Err(error) = sink.close().await {
        error!(%error, "sink close failed");
    }
}

/// Deliveries under way, at most `limit` of them.
struct InFlight<'c, F> {
    limit: usize,
    running: FuturesUnordered<F>,
    counters: &'c Counters,
}

impl<'c, F: Future<Output = ()>> InFlight<'c, F> {
    fn new(limit: usize, counters: &'c Counters) -> Self {
        counters.set_in_flight(0, limit.max(1));
        Self {
            limit: limit.max(1),
            running: FuturesUnordered::new(),
            counters,
        }
    }

    fn publish(&self) {
        self.counters.set_in_flight(self.running.len(), self.limit);
    }

    fn is_full(&self) -> bool {
        self.running.len() >= self.limit
    }

    /// Start a delivery, first waiting for a free slot.
    async fn push(&mut self, delivery: F) {
        while self.is_full() {
            self.running.next().await;
        }
        self.running.push(delivery);
        self.publish();
    }

    /// Wait for one delivery to finish; pending forever when none runs.
    async fn next_done(&mut self) {
        if self.running.next().await.is_none() {
            std::future::pending::<()>().await;
        }
        self.publish();
    }

    async fn drain(&mut self) {
        while self.running.next().await.is_some() {}
        self.publish();
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

struct Deliver<'a> {
    sink: &'a dyn Sink,
    backoff: Backoff,
    retries: u32,
    counters: &'a Counters,
}

impl Deliver<'_> {
    /// Deliver `batch`, retrying what is worth retrying, and record every
    /// event's fate. After a partial failure only the events that failed
    /// transiently are sent again; the delivered ones are settled at once.
    async fn batch(&self, batch: Vec<Event>) {
        if batch.is_empty() {
            return;
        }
        let started = std::time::Instant::now();
        self.attempt(batch).await;
        self.counters
            .observe_worker_task(started.elapsed().as_secs_f64());
    }

    async fn attempt(&self, batch: Vec<Event>) {
        let mut pending = batch;
        let mut retry = 0;
        loop {
            let n = pending.len();
            let error = match self.sink.send(&pending).await {
                Ok(()) => {
                    self.settle(pending, Fate::Delivered);
                    debug!(events = n, "batch delivered");
                    return;
                }
                Err(e) => e,
            };
            let can_retry = retry < self.retries;
            let again = match error.kind {
                SinkErrorKind::Partial => self.sort_partial(pending, error.failed, can_retry),
                SinkErrorKind::Transient if can_retry => pending,
                _ => {
                    error!(error = %error, events = n, attempts = retry + 1, "delivery failed; batch dropped");
                    self.settle(pending, Fate::Dropped);
                    return;
                }
            };
            if again.is_empty() {
                return;
            }
            let delay = self.backoff.delay(retry, error.retry_after);
            warn!(error = %error.message, events = again.len(), retry = retry + 1, of = self.retries, ?delay, "delivery failed; will retry");
            tokio::time::sleep(delay).await;
            retry += 1;
            pending = again;
        }
    }

    /// Settle the events a partial failure did not name as delivered, give up
    /// the permanent failures (and the transient ones when no retry is left),
    /// and return the events to send again.
    fn sort_partial(
        &self,
        pending: Vec<Event>,
        failed: Vec<EventFailure>,
        can_retry: bool,
    ) -> Vec<Event> {
        let mut errors: Vec<Option<SinkError>> = vec![None; pending.len()];
        for f in failed {
            match errors.get_mut(f.index) {
                Some(slot) => *slot = Some(f.error),
                // A sink bug: the index names no event of this batch. Every
                // real event is still settled below; the report is logged.
                None => error!(
                    index = f.index,
                    events = pending.len(),
                    "sink reported a failure for an event outside the batch"
                ),
            }
        }
        let (mut delivered, mut dropped, mut again) = (Vec::new(), Vec::new(), Vec::new());
        for (event, error) in pending.into_iter().zip(errors) {
            match error {
                None => delivered.push(event),
                Some(e) if e.kind == SinkErrorKind::Transient && can_retry => again.push(event),
                Some(e) => {
                    error!(event = %event.id, error = %e, "delivery failed; event dropped");
                    dropped.push(event);
                }
            }
        }
        self.settle(delivered, Fate::Delivered);
        self.settle(dropped, Fate::Dropped);
        again
    }

    fn settle(&self, mut events: Vec<Event>, fate: Fate) {
        let n = events.len() as u64;
        match fate {
            Fate::Delivered => self.counters.add_sent(n),
            _ => self.counters.add_dropped(n),
        }
        for event in &mut events {
            event.resolve(fate);
        }
    }
}
