//! The loop of one sink: its buffer → batch → the sink's delivery stack. Each
//! sink node of a [`topology`](crate::topology) runs one.
//!
//! At most `max_in_flight` batches are inside the delivery stack at once
//! (the concurrency limit's bound); when that many are, the loop stops
//! taking from intake, so a slow or failing sink slows intake and the intake
//! bound pushes back on sources. Batches are handed over in order; with more
//! than one in flight a retried batch can land after a later one. Every event
//! ends with a recorded fate (delivered, dead-lettered or dropped; filtering
//! happens before, in the topology's routers)
//! that is both counted and reported to its source through its
//! acknowledgement token.
//!
//! A stop drains: the loop runs until its intake is closed and empty, then
//! flushes the last batch and waits for the deliveries in flight. When the
//! stop's [`Cutoff`] is reached first, the loop stops feeding the stack, the
//! stack lets go of every batch it holds, and every event still here — in
//! the batcher, in the stack, arriving from the intake — is abandoned
//! ([`Settle::abandoned`]: kept on the disk buffer, dead-lettered with the
//! reason `shutdown`, or counted as lost).

use crate::batcher::Batcher;
use crate::counters::Counters;
use crate::delivery::settle::Failure;
use crate::delivery::{self, DeliveryConfig, DeliveryStats, Settle};
use crate::dlq::Dlq;
use crate::intake::IntakeReceiver;
use crate::shutdown::Cutoff;
use futures_util::stream::{FuturesUnordered, StreamExt};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use switchyard_core::{Event, Sink};
use tower::{Service, ServiceExt};
use tracing::{error, warn};

/// How one sink's loop batches and delivers: the per-sink policy of a
/// [`topology`](crate::topology) sink node.
#[derive(Clone)]
pub struct SinkPolicy {
    /// Events per batch.
    pub batch_size: usize,
    /// Longest time an event waits in an unfilled batch.
    pub flush_interval: Duration,
    /// The delivery stack's settings.
    pub delivery: DeliveryConfig,
    /// The sink's name in logs and dead-letter records (its service name).
    pub sink_name: String,
    /// Where events that fail for good are kept; `None`: they are dropped.
    pub dlq: Option<Arc<Dlq>>,
}

impl SinkPolicy {
    /// The defaults of a `switchyard run` sink (`batch.max_events: 100`,
    /// `batch.timeout: 5s`, the delivery stack's defaults), without a
    /// dead-letter queue.
    pub fn new(sink_name: impl Into<String>) -> Self {
        Self {
            batch_size: 100,
            flush_interval: Duration::from_secs(5),
            delivery: DeliveryConfig::default(),
            sink_name: sink_name.into(),
            dlq: None,
        }
    }
}

/// How a sink loop ends when its stop outlasts the deadline.
#[derive(Debug, Clone, Default)]
pub struct Stop {
    /// Once reached, nothing is delivered any more: what is left is
    /// abandoned.
    pub cutoff: Cutoff,
    /// The loop's intake is fed by a disk buffer: abandoned events stay
    /// there, unacknowledged, for the next start.
    pub on_disk: bool,
}

/// The loop of one sink: take batches from `intake` until it is closed and
/// empty, deliver them through the delivery stack, then close the sink.
/// `stats` receives the stack's figures. With a dead-letter queue whose
/// `auto_retry` is on, its records for this sink are re-sent every
/// `retry_interval` while the loop runs. Delivery is given up at
/// `stop.cutoff`.
pub async fn run_sink(
    mut intake: IntakeReceiver,
    sink: Arc<dyn Sink>,
    policy: SinkPolicy,
    counters: Arc<Counters>,
    stats: Arc<DeliveryStats>,
    stop: Stop,
) {
    let cutoff = stop.cutoff.clone();
    let settle = Arc::new(
        Settle::new(
            &policy.sink_name,
            counters.clone(),
            stats.clone(),
            policy.dlq.clone(),
        )
        .with_cutoff(stop.cutoff, stop.on_disk),
    );
    // One bucket for new batches and dead-letter re-sends alike.
    let rate = delivery::RateLimitLayer::new(policy.delivery.rate_limit, stats.clone());
    let mut stack = delivery::build_with_rate_limit(
        sink.clone(),
        &policy.delivery,
        settle.clone(),
        stats.clone(),
        rate.clone(),
    );
    let auto_retry = policy
        .dlq
        .as_ref()
        .filter(|d| d.config().auto_retry)
        .map(|dlq| {
            tokio::spawn(crate::dlq::auto_retry(
                dlq.clone(),
                sink.clone(),
                policy.sink_name.clone(),
                stats.clone(),
                rate,
                policy.batch_size,
                policy.delivery.timeout.unwrap_or(Duration::from_secs(30)),
            ))
        });
    let mut batcher = Batcher::new(policy.batch_size, policy.flush_interval);
    let mut in_flight = InFlight::new(policy.delivery.max_in_flight(), &counters);
    let mut cut_off = false;
    // One wait for the whole loop: no waiter registered per chunk.
    let reached = cutoff.reached();
    tokio::pin!(reached);
    loop {
        let deadline = batcher.deadline();
        tokio::select! {
            chunk = intake.recv(), if !in_flight.is_full() => {
                let Some(chunk) = chunk else { break };
                counters.add_received(chunk.len() as u64);
                for event in chunk {
                    if let Some(batch) = batcher.push(event) {
                        in_flight.push(timed(start(&mut stack, batch).await, &counters)).await;
                    }
                }
            }
            _ = in_flight.next_done() => {}
            _ = sleep_until(deadline), if deadline.is_some() && !in_flight.is_full() => {
                in_flight.push(timed(start(&mut stack, batcher.take()).await, &counters)).await;
            }
            _ = &mut reached => {
                cut_off = true;
                break;
            }
        }
    }
    if cut_off {
        // The stack lets go of its batches by itself; what never reached it
        // is abandoned here, while the intake's writers finish.
        let abandon_rest = async {
            let failure = Failure::shutdown(0, None, None);
            settle.abandoned(batcher.take(), &failure).await;
            while let Some(chunk) = intake.recv().await {
                counters.add_received(chunk.len() as u64);
                settle.abandoned(chunk, &failure).await;
            }
        };
        tokio::join!(abandon_rest, in_flight.drain());
    } else {
        let last = batcher.take();
        if !last.is_empty() {
            in_flight
                .push(timed(start(&mut stack, last).await, &counters))
                .await;
        }
        in_flight.drain().await;
    }
    if cutoff.is_reached() {
        let c = counters.snapshot();
        let dead_lettered = settle.abandoned_to_dlq();
        if c.lost > 0 {
            error!(sink = %policy.sink_name, lost = c.lost, dead_lettered, kept_on_disk = c.kept_on_disk, "shutdown deadline passed: {} undelivered events lost", c.lost);
        } else if dead_lettered + c.kept_on_disk > 0 {
            warn!(sink = %policy.sink_name, dead_lettered, kept_on_disk = c.kept_on_disk, "shutdown deadline passed: delivery abandoned, nothing lost");
        }
    }
    if let Some(task) = auto_retry {
        task.abort();
        let _ = task.await;
    }
    if let Err(error) = sink.close().await {
        error!(%error, "sink close failed");
    }
}

/// Hand a batch to the stack; the returned future settles it.
async fn start(
    stack: &mut delivery::DeliveryService,
    batch: Vec<Event>,
) -> <delivery::DeliveryService as Service<Vec<Event>>>::Future {
    // The stack never fails and is always ready; `ready` keeps the tower
    // contract all the same.
    let Ok(svc) = stack.ready().await;
    svc.call(batch)
}

/// `delivery`, observed into the worker-task histogram when it ends.
fn timed<F: Future>(delivery: F, counters: &Arc<Counters>) -> impl Future<Output = F::Output> {
    let counters = counters.clone();
    async move {
        let started = std::time::Instant::now();
        let out = delivery.await;
        counters.observe_worker_task(started.elapsed().as_secs_f64());
        out
    }
}

/// Deliveries under way, at most `limit` of them; the number running is
/// published as the busy workers of `counters`.
struct InFlight<'c, F> {
    limit: usize,
    running: FuturesUnordered<F>,
    counters: &'c Counters,
}

impl<'c, F: Future> InFlight<'c, F> {
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
