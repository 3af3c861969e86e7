//! What a disk buffer has done, for `/stats` and the final counters.

use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Counters shared by the writer, the reader and the acknowledgement log.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    written: AtomicU64,
    read: AtomicU64,
    read_earlier: AtomicU64,
    corrupt_records: AtomicU64,
    corrupt_bytes: AtomicU64,
}

impl Stats {
    pub(crate) fn add_written(&self, n: u64) {
        self.written.fetch_add(n, Relaxed);
    }

    pub(crate) fn add_read(&self, n: u64, earlier: bool) {
        self.read.fetch_add(n, Relaxed);
        if earlier {
            self.read_earlier.fetch_add(n, Relaxed);
        }
    }

    pub(crate) fn add_corrupt(&self, bytes: u64) {
        self.corrupt_records.fetch_add(1, Relaxed);
        self.corrupt_bytes.fetch_add(bytes, Relaxed);
    }
}

/// A disk buffer's counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StatsSnapshot {
    /// Events made durable by this process.
    pub written: u64,
    /// Events read back and handed to the engine by this process (after a
    /// restart this includes the earlier run's unacknowledged events).
    pub read: u64,
    /// Of `read`, the events an earlier run had written (what it left on
    /// disk, also at a shutdown deadline): with them, this run's ledger
    /// balances (`received + read_earlier = the fates of this run`).
    pub read_earlier: u64,
    /// Damaged stretches skipped (a torn tail, a record failing its
    /// checksum, a record that does not decode); each counts once.
    pub corrupt_records: u64,
    /// Bytes in those stretches.
    pub corrupt_bytes: u64,
    /// Bytes written and not yet acknowledged.
    pub used_bytes: u64,
    /// The bound on `used_bytes`.
    pub max_bytes: u64,
}

impl Stats {
    pub(crate) fn snapshot(&self, used_bytes: u64, max_bytes: u64) -> StatsSnapshot {
        StatsSnapshot {
            written: self.written.load(Relaxed),
            read: self.read.load(Relaxed),
            read_earlier: self.read_earlier.load(Relaxed),
            corrupt_records: self.corrupt_records.load(Relaxed),
            corrupt_bytes: self.corrupt_bytes.load(Relaxed),
            used_bytes,
            max_bytes,
        }
    }
}
