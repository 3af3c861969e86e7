//! What a Redis consumer reports: what it read, claimed, acknowledged, set
//! aside, and how far behind the group is.

use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Live counters of one Redis source, shared with whoever reports them.
#[derive(Debug, Default)]
pub struct ConsumerStats {
    /// Entries read as new (`>`), or LIST entries read past the offset.
    pub read: AtomicU64,
    /// Entries re-read from this consumer's own pending list at start-up.
    pub redelivered: AtomicU64,
    /// Entries taken over from idle consumers (`XAUTOCLAIM`).
    pub claimed: AtomicU64,
    /// Entries acknowledged (`XACK`) after delivery, or LIST entries the
    /// offset moved past.
    pub acked: AtomicU64,
    /// Entries left unacknowledged: the engine never decided their fate
    /// (lost in flight), or Redis was unreachable at shutdown. They stay
    /// pending and are delivered again (re-read or claimed).
    pub not_acked: AtomicU64,
    /// Entries the engine reported delivered.
    pub delivered: AtomicU64,
    /// Entries a transform filtered out (acknowledged).
    pub filtered: AtomicU64,
    /// Entries the engine kept in its dead-letter queue (acknowledged).
    pub dead_lettered: AtomicU64,
    /// Entries the engine gave up on without a dead-letter queue: copied to
    /// `<stream>:dead`, then acknowledged.
    pub dropped: AtomicU64,
    /// Entries whose fate nobody decided (counted again in `not_acked`).
    pub unresolved: AtomicU64,
    /// Poison entries set aside (`<stream>:dead`) or skipped (LIST).
    pub poison: AtomicU64,
    /// Entries lost before delivery: trimmed while pending (Streams) or
    /// missing `LogID`s (LIST gaps from trimming or expiry).
    pub lost: AtomicU64,
    /// Times a connection was lost and replaced.
    pub reconnects: AtomicU64,
    /// Last seen stream length (`XLEN`) or list length (`LLEN`).
    pub length: AtomicU64,
    /// Last seen group pending count (`XPENDING`), or LIST lag (last id −
    /// offset).
    pub pending: AtomicU64,
}

/// A copy of [`ConsumerStats`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[allow(missing_docs)] // the fields mirror ConsumerStats
pub struct ConsumerSnapshot {
    pub read: u64,
    pub redelivered: u64,
    pub claimed: u64,
    pub acked: u64,
    pub not_acked: u64,
    pub delivered: u64,
    pub filtered: u64,
    pub dead_lettered: u64,
    pub dropped: u64,
    pub unresolved: u64,
    pub poison: u64,
    pub lost: u64,
    pub reconnects: u64,
    pub length: u64,
    pub pending: u64,
}

impl ConsumerStats {
    /// Read every counter.
    pub fn snapshot(&self) -> ConsumerSnapshot {
        ConsumerSnapshot {
            read: self.read.load(Relaxed),
            redelivered: self.redelivered.load(Relaxed),
            claimed: self.claimed.load(Relaxed),
            acked: self.acked.load(Relaxed),
            not_acked: self.not_acked.load(Relaxed),
            delivered: self.delivered.load(Relaxed),
            filtered: self.filtered.load(Relaxed),
            dead_lettered: self.dead_lettered.load(Relaxed),
            dropped: self.dropped.load(Relaxed),
            unresolved: self.unresolved.load(Relaxed),
            poison: self.poison.load(Relaxed),
            lost: self.lost.load(Relaxed),
            reconnects: self.reconnects.load(Relaxed),
            length: self.length.load(Relaxed),
            pending: self.pending.load(Relaxed),
        }
    }

    /// What the source lost, by reason (the `reason` label of
    /// `dispatcher_component_discarded_events_total`): `lost`, entries gone
    /// from Redis before delivery (a LIST gap from trimming or expiry, a
    /// pending stream entry trimmed, or a dropped entry trimmed before its
    /// copy was kept); `poison`, entries that are no event (the LIST source
    /// skips them, the Streams source keeps them in `<stream>:dead`).
    pub fn discards(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("lost", self.lost.load(Relaxed)),
            ("poison", self.poison.load(Relaxed)),
        ]
    }

    /// Add `n` to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }
}
