//! The end of an event's delivery: delivered, dead-lettered, or dropped.
//! Every event is counted once and its source is told through its
//! acknowledgement token. A failed event goes to the dead-letter queue when
//! one is configured; it is dropped (logged and counted) only when there is
//! none or the queue is full.
//!
//! At the shutdown deadline ([`Cutoff`]) the events still undelivered are
//! [abandoned](Settle::abandoned): a disk-buffered sink leaves them
//! unacknowledged on disk (the next start delivers them); otherwise they go
//! to the dead-letter queue with the reason `shutdown`, and what no queue
//! keeps is counted as lost. Abandoned events that stay in memory are never
//! given a fate: their sources see them unresolved, so a source that can
//! (Redis, the file tail) offers them again.

use super::stats::DeliveryStats;
use crate::counters::Counters;
use crate::dlq::Dlq;
use crate::shutdown::Cutoff;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use switchyard_core::{Event, Fate};
use time::OffsetDateTime;
use tracing::{debug, error, warn};

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
    /// The shutdown deadline came before it was delivered.
    Shutdown,
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

impl Failure {
    /// What is recorded for events abandoned at the shutdown deadline after
    /// `attempts` (the first of them failed at `first_failure`), the last
    /// one failing with `last_error`.
    pub fn shutdown(
        attempts: u32,
        first_failure: Option<OffsetDateTime>,
        last_error: Option<&str>,
    ) -> Self {
        let now = OffsetDateTime::now_utc();
        let message = match last_error {
            Some(e) => format!("not delivered before the shutdown deadline; last error: {e}"),
            None => "not delivered before the shutdown deadline".to_string(),
        };
        Self {
            kind: FailureKind::Shutdown,
            message,
            attempts,
            first_failure: first_failure.unwrap_or(now),
            last_failure: now,
        }
    }
}

/// Records fates for one sink.
pub struct Settle {
    sink: String,
    counters: Arc<Counters>,
    stats: Arc<DeliveryStats>,
    dlq: Option<Arc<Dlq>>,
    cutoff: Cutoff,
    /// The sink has a disk buffer: abandoned events stay on it.
    on_disk: bool,
    /// Events dead-lettered because of the shutdown deadline.
    abandoned_to_dlq: AtomicU64,
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
            cutoff: Cutoff::new(),
            on_disk: false,
            abandoned_to_dlq: AtomicU64::new(0),
        }
    }

    /// Give up delivering at `cutoff`; `on_disk`: the sink's events come
    /// from a disk buffer, where abandoned ones stay for the next start.
    pub fn with_cutoff(mut self, cutoff: Cutoff, on_disk: bool) -> Self {
        self.cutoff = cutoff;
        self.on_disk = on_disk;
        self
    }

    /// The deadline after which nothing is delivered any more.
    pub fn cutoff(&self) -> &Cutoff {
        &self.cutoff
    }

    /// Events dead-lettered so far because of the shutdown deadline.
    pub fn abandoned_to_dlq(&self) -> u64 {
        self.abandoned_to_dlq.load(Relaxed)
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
        if self.dlq.is_none() {
            error!(sink = %self.sink, events = events.len(), error = %failure.message, "events dropped: no dead-letter queue");
            self.drop_events(events);
            return;
        }
        let (_, rest, reason) = self.dead_letter(events, failure).await;
        if !rest.is_empty() {
            error!(sink = %self.sink, events = rest.len(), reason, error = %failure.message, "events dropped");
            DeliveryStats::add(&self.stats.dlq_full_dropped, rest.len() as u64);
            self.drop_events(rest);
        }
    }

    /// The shutdown deadline came before these were delivered (`failure`
    /// says what was tried; its kind is [`FailureKind::Shutdown`]). They
    /// stay on the sink's disk buffer, else go to the dead-letter queue;
    /// what neither keeps is lost. None of them gets a fate but
    /// dead-lettered ones: the others are unresolved for their sources.
    pub async fn abandoned(&self, events: Vec<Event>, failure: &Failure) {
        if events.is_empty() {
            return;
        }
        let n = events.len() as u64;
        if self.on_disk {
            // Dropped without a fate: the disk buffer's pointer stays before
            // them, and the next start reads them again.
            debug!(sink = %self.sink, events = n, "shutdown deadline: events stay in the disk buffer");
            self.counters.add_kept_on_disk(n);
            return;
        }
        if self.dlq.is_none() {
            error!(sink = %self.sink, events = n, "shutdown deadline: events not delivered and no dead-letter queue to keep them; lost");
            self.counters.add_lost(n);
            return;
        }
        let (kept, rest, reason) = self.dead_letter(events, failure).await;
        self.abandoned_to_dlq.fetch_add(kept, Relaxed);
        if kept < n {
            error!(sink = %self.sink, events = n - kept, reason, "shutdown deadline: events not delivered and not dead-lettered; lost");
        }
        self.counters.add_lost(n - kept);
        drop(rest);
    }

    /// Write `events` to the dead-letter queue; returns how many it kept,
    /// the events it did not keep (none when the write task died with
    /// them) and why.
    async fn dead_letter(
        &self,
        events: Vec<Event>,
        failure: &Failure,
    ) -> (u64, Vec<Event>, &'static str) {
        let Some(dlq) = self.dlq.clone() else {
            return (0, events, "no dead-letter queue");
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
                return (0, Vec::new(), "dlq write failed");
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
        (n, rest, reason)
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
