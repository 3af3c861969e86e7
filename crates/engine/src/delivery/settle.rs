//! The end of an event's delivery: delivered, dead-lettered, or dropped.
//! Every event is counted once and its source is told through its
//! acknowledgement token. A failed event goes to the dead-letter queue when
//! one is configured; it is dropped (logged and counted) only when there is
//! none or the queue is full.

use super::stats::DeliveryStats;
use crate::counters::Counters;
use crate::dlq::Dlq;
use std::sync::Arc;
use switchyard_core::{Event, Fate};
use time::OffsetDateTime;
use tracing::{error, warn};

/// Why an event failed for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The sink said it will never accept it.
    Permanent,
    /// Transient failures outlived the retries.
    RetriesExhausted,
    /// The last attempt timed out and no retry was left.
    Timeout,
}

/// What is known about a failed delivery.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The class.
    pub kind: FailureKind,
    /// The last error's message.
    pub message: String,
    /// Attempts made.
    pub attempts: u32,
    /// When the first attempt failed.
    pub first_failure: OffsetDateTime,
    /// When the last attempt failed.
    pub last_failure: OffsetDateTime,
}

/// Records fates for one sink.
pub struct Settle {
    sink: String,
    counters: Arc<Counters>,
    stats: Arc<DeliveryStats>,
    dlq: Option<Arc<Dlq>>,
}

impl Settle {
    /// Settle events of `sink`, into `dlq` when there is one.
    pub fn new(
        sink: &str,
        counters: Arc<Counters>,
        stats: Arc<DeliveryStats>,
        dlq: Option<Arc<Dlq>>,
    ) -> Self {
        Self {
            sink: sink.to_string(),
            counters,
            stats,
            dlq,
        }
    }

    /// The sink's name.
    pub fn sink(&self) -> &str {
        &self.sink
    }

    /// The sink has them.
    pub fn delivered(&self, events: Vec<Event>) {
        self.counters.add_sent(events.len() as u64);
        resolve(events, Fate::Delivered);
    }

    /// They failed for good: into the dead-letter queue, or dropped.
    pub async fn failed(&self, events: Vec<Event>, failure: &Failure) {
        if events.is_empty() {
            return;
        }
        let Some(dlq) = self.dlq.clone() else {
            error!(sink = %self.sink, events = events.len(), error = %failure.message, "events dropped: no dead-letter queue");
            self.drop_events(events);
            return;
        };
        // The append syncs the file: keep it off the async workers.
        let (sink, f) = (self.sink.clone(), failure.clone());
        let joined = tokio::task::spawn_blocking(move || {
            let result = dlq.append(&sink, &events, &f);
            (events, result)
        })
        .await;
        let (mut events, result) = match joined {
            Ok(r) => r,
            Err(e) => {
                // The events died with the task; their tokens count them as
                // unresolved, so sources will send them again.
                error!(sink = %self.sink, error = %e, "dead-letter write task failed");
                return;
            }
        };
        let (kept, reason) = match result {
            Ok(ids) => {
                if let (Some(first), Some(last)) = (ids.first(), ids.last()) {
                    warn!(sink = %self.sink, events = ids.len(), first_id = first, last_id = last, kind = ?failure.kind, error = %failure.message, attempts = failure.attempts, "events dead-lettered");
                }
                (ids.len(), "dlq full")
            }
            Err(e) => {
                error!(sink = %self.sink, events = events.len(), error = %e, "cannot write to the dead-letter queue");
                (0, "dlq write failed")
            }
        };
        let rest = events.split_off(kept.min(events.len()));
        let n = events.len() as u64;
        self.counters.add_dead_lettered(n);
        DeliveryStats::add(&self.stats.dead_lettered, n);
        resolve(events, Fate::DeadLettered);
        if !rest.is_empty() {
            error!(sink = %self.sink, events = rest.len(), reason, error = %failure.message, "events dropped");
            DeliveryStats::add(&self.stats.dlq_full_dropped, rest.len() as u64);
            self.drop_events(rest);
        }
    }

    fn drop_events(&self, events: Vec<Event>) {
        self.counters.add_dropped(events.len() as u64);
        resolve(events, Fate::Dropped);
    }
}

fn resolve(mut events: Vec<Event>, fate: Fate) {
    for event in &mut events {
        event.resolve(fate);
    }
}
