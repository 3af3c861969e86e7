//! The ledger of a sink's loop. At any quiescent moment
//! `received = sent + dead_lettered + dropped + kept_on_disk + lost` (the
//! last two only grow when a stop reaches its deadline). Filtering happens
//! before a sink, in the topology's routers, which count it themselves
//! ([`SourceStats`](crate::topology::SourceStats)).

use prometheus_client::metrics::histogram::Histogram;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Live counters, shared with whoever reports them.
#[derive(Debug, Default)]
pub struct Counters {
    received: AtomicU64,
    sent: AtomicU64,
    dropped: AtomicU64,
    in_flight: AtomicU64,
    slots: AtomicU64,
    worker_task: Option<Histogram>,
    dead_lettered: AtomicU64,
    kept_on_disk: AtomicU64,
    lost: AtomicU64,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct CountersSnapshot {
    /// Events taken from the intake queue.
    pub received: u64,
    /// Events the sink accepted.
    pub sent: u64,
    /// Events a transform removed: always 0 for one sink's loop; set in a
    /// ledger of a whole pipeline, from its routers' figures.
    pub filtered: u64,
    /// Events given up on (permanent error or retries exhausted) that no
    /// dead-letter queue kept.
    pub dropped: u64,
    /// Events kept in the dead-letter queue.
    pub dead_lettered: u64,
    /// Events of a disk-buffered sink not delivered by the shutdown
    /// deadline: left unacknowledged in the disk buffer, so the next start
    /// delivers them.
    pub kept_on_disk: u64,
    /// Events not delivered by the shutdown deadline that nothing could
    /// keep (no disk buffer, no room in a dead-letter queue).
    pub lost: u64,
}

impl Counters {
    pub(crate) fn add_received(&self, n: u64) {
        self.received.fetch_add(n, Relaxed);
    }
    pub(crate) fn add_sent(&self, n: u64) {
        self.sent.fetch_add(n, Relaxed);
    }
    pub(crate) fn add_dropped(&self, n: u64) {
        self.dropped.fetch_add(n, Relaxed);
    }

    /// Counters whose engine also observes each batch's delivery time,
    /// retries included, into `worker_task`.
    pub fn with_worker_histogram(worker_task: Histogram) -> Self {
        Self {
            worker_task: Some(worker_task),
            ..Self::default()
        }
    }

    pub(crate) fn observe_worker_task(&self, seconds: f64) {
        if let Some(h) = &self.worker_task {
            h.observe(seconds);
        }
    }

    pub(crate) fn set_in_flight(&self, running: usize, slots: usize) {
        self.in_flight.store(running as u64, Relaxed);
        self.slots.store(slots as u64, Relaxed);
    }

    /// Batches being delivered now, and the most that may be (the workers
    /// busy and the workers there are).
    pub fn workers(&self) -> (u64, u64) {
        (self.in_flight.load(Relaxed), self.slots.load(Relaxed))
    }

    pub(crate) fn add_dead_lettered(&self, n: u64) {
        self.dead_lettered.fetch_add(n, Relaxed);
    }
    pub(crate) fn add_kept_on_disk(&self, n: u64) {
        self.kept_on_disk.fetch_add(n, Relaxed);
    }
    pub(crate) fn add_lost(&self, n: u64) {
        self.lost.fetch_add(n, Relaxed);
    }

    /// Events taken in and not settled yet: in the batcher or the delivery
    /// stack (what a stop at once would lose from memory).
    pub fn unsettled(&self) -> u64 {
        let c = self.snapshot();
        c.received
            .saturating_sub(c.sent + c.dropped + c.dead_lettered + c.kept_on_disk + c.lost)
    }

    /// Read them all.
    pub fn snapshot(&self) -> CountersSnapshot {
        CountersSnapshot {
            received: self.received.load(Relaxed),
            sent: self.sent.load(Relaxed),
            // A sink's loop filters nothing; a whole pipeline's ledger
            // fills this from its routers.
            filtered: 0,
            dropped: self.dropped.load(Relaxed),
            dead_lettered: self.dead_lettered.load(Relaxed),
            kept_on_disk: self.kept_on_disk.load(Relaxed),
            lost: self.lost.load(Relaxed),
        }
    }
}
