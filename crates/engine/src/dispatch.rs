//! The dispatch loop: intake → transform → batch → deliver (with retries).
//!
//! Delivery is awaited inside the loop, so a slow sink slows intake and the
//! intake bound pushes back on sources. Every event ends with a recorded fate
//! (delivered, filtered or dropped) that is both counted and reported to its
//! source through its acknowledgement token.

use crate::backoff::Backoff;
use crate::batcher::Batcher;
use crate::counters::Counters;
use crate::intake::IntakeReceiver;
use std::sync::Arc;
use std::time::Duration;
use switchyard_core::{Event, Fate, Sink, SinkErrorKind, Transform, Verdict};
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
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            batch_size: 100,
            flush_interval: Duration::from_secs(5),
            retry_attempts: 3,
            retry_backoff: Duration::from_secs(1),
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
    loop {
        let deadline = batcher.deadline();
        tokio::select! {
            chunk = intake.recv() => {
                let Some(chunk) = chunk else { break };
                counters.add_received(chunk.len() as u64);
                for mut event in chunk {
                    if transform.apply(&mut event) == Verdict::Filter {
                        event.resolve(Fate::Filtered);
                        counters.add_filtered(1);
                        continue;
                    }
                    if let Some(batch) = batcher.push(event) {
                        deliver.batch(batch).await;
                    }
                }
            }
            _ = sleep_until(deadline), if deadline.is_some() => {
                deliver.batch(batcher.take()).await;
            }
        }
    }
    deliver.batch(batcher.take()).await;
    if let Err(error) = sink.close().await {
        error!(%error, "sink close failed");
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
    async fn batch(&self, mut batch: Vec<Event>) {
        if batch.is_empty() {
            return;
        }
        let n = batch.len() as u64;
        let mut retry = 0;
        let fate = loop {
            match self.sink.send(&batch).await {
                Ok(()) => {
                    self.counters.add_sent(n);
                    break Fate::Delivered;
                }
                Err(e) if e.kind == SinkErrorKind::Transient && retry < self.retries => {
                    let delay = self.backoff.delay(retry, e.retry_after);
                    warn!(error = %e, retry = retry + 1, of = self.retries, ?delay, "delivery failed; will retry");
                    tokio::time::sleep(delay).await;
                    retry += 1;
                }
                Err(e) => {
                    error!(error = %e, events = n, attempts = retry + 1, "delivery failed; batch dropped");
                    self.counters.add_dropped(n);
                    break Fate::Dropped;
                }
            }
        };
        debug!(events = n, ?fate, "batch done");
        for event in &mut batch {
            event.resolve(fate);
        }
    }
}
