//! The engine's ledger. At any quiescent moment
//! `received = sent + filtered + dropped`.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Live counters, shared with whoever reports them.
#[derive(Debug, Default)]
pub struct Counters {
    received: AtomicU64,
    sent: AtomicU64,
    filtered: AtomicU64,
    dropped: AtomicU64,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct CountersSnapshot {
    /// Events taken from the intake queue.
    pub received: u64,
    /// Events the sink accepted.
    pub sent: u64,
    /// Events a transform removed.
    pub filtered: u64,
    /// Events given up on (permanent error or retries exhausted).
    pub dropped: u64,
}

impl Counters {
    pub(crate) fn add_received(&self, n: u64) {
        self.received.fetch_add(n, Relaxed);
    }
    pub(crate) fn add_sent(&self, n: u64) {
        self.sent.fetch_add(n, Relaxed);
    }
    pub(crate) fn add_filtered(&self, n: u64) {
        self.filtered.fetch_add(n, Relaxed);
    }
    pub(crate) fn add_dropped(&self, n: u64) {
        self.dropped.fetch_add(n, Relaxed);
    }

    /// Read all four.
    pub fn snapshot(&self) -> CountersSnapshot {
        CountersSnapshot {
            received: self.received.load(Relaxed),
            sent: self.sent.load(Relaxed),
            filtered: self.filtered.load(Relaxed),
            dropped: self.dropped.load(Relaxed),
        }
    }
}
