//! The out-of-order policy and the memory it needs.
//!
//! Loki (as the spec describes it) rejects an entry older than the newest
//! one it already holds for the same stream, with a `400` for the whole
//! push. Within one push the sink sorts each stream, so the only way to be
//! out of order is to be older than what an earlier push already delivered.
//! [`LastPushed`] remembers, per stream, the newest timestamp Loki accepted;
//! the [`Policy`] decides what happens to an older entry before it is sent.
//!
//! The memory is updated only after a push succeeds: a batch that failed
//! and is retried must not find its own entries "already pushed" and drop
//! them. It is bounded: when full, the stream with the oldest last entry
//! (the likeliest to be idle) is forgotten, and its next entries are sent as
//! they are — Loki then judges them.

use std::collections::HashMap;
use std::sync::Mutex;

/// What to do with an entry older than its stream's last pushed entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Send it anyway; Loki decides (a rejection is a permanent failure of
    /// the push, so its events go to the dead-letter queue).
    Accept,
    /// Do not send it; it fails permanently, counted, with the reason.
    Drop,
    /// Send it stamped with the stream's last timestamp (its original time
    /// stays in the line when the line is the record's JSON).
    RewriteTimestamp,
}

impl Policy {
    /// `accept`, `drop` or `rewrite_timestamp` (`rewrite-timestamp` too).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "accept" => Some(Self::Accept),
            "drop" => Some(Self::Drop),
            "rewrite_timestamp" | "rewrite-timestamp" => Some(Self::RewriteTimestamp),
            _ => None,
        }
    }
}

/// The newest delivered timestamp (Unix nanoseconds) of each stream, keyed
/// by the stream's label text, for at most `capacity` streams.
#[derive(Debug)]
pub struct LastPushed {
    capacity: usize,
    streams: Mutex<HashMap<String, i128>>,
}

impl LastPushed {
    /// Remember at most `capacity` streams.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            streams: Mutex::new(HashMap::new()),
        }
    }

    /// The newest timestamp delivered for `stream`, if known.
    pub fn get(&self, stream: &str) -> Option<i128> {
        self.lock().get(stream).copied()
    }

    /// `stream` was delivered up to `ts`.
    pub fn delivered(&self, stream: &str, ts: i128) {
        let mut map = self.lock();
        if let Some(last) = map.get_mut(stream) {
            *last = (*last).max(ts);
            return;
        }
        if map.len() >= self.capacity {
            // Forget the stream whose newest entry is oldest. A linear scan,
            // paid only when a new stream arrives at a full map.
            if let Some(oldest) = map.iter().min_by_key(|(_, t)| **t).map(|(k, _)| k.clone()) {
                map.remove(&oldest);
            }
        }
        map.insert(stream.to_string(), ts);
    }

    /// Streams remembered now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when no stream is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, i128>> {
        // The map holds plain numbers: a panic elsewhere cannot leave it
        // half-updated, so a poisoned lock is still safe to use.
        self.streams.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_parse() {
        assert_eq!(Policy::parse("accept"), Some(Policy::Accept));
        assert_eq!(Policy::parse("drop"), Some(Policy::Drop));
        assert_eq!(
            Policy::parse("rewrite_timestamp"),
            Some(Policy::RewriteTimestamp)
        );
        assert_eq!(
            Policy::parse("rewrite-timestamp"),
            Some(Policy::RewriteTimestamp)
        );
        assert_eq!(Policy::parse("Drop"), None);
    }

    #[test]
    fn remembers_the_newest_and_forgets_the_stalest_stream_when_full() {
        let m = LastPushed::new(2);
        m.delivered("a", 10);
        m.delivered("a", 5);
        assert_eq!(m.get("a"), Some(10), "never moves back");
        m.delivered("b", 20);
        m.delivered("c", 30);
        assert_eq!(m.len(), 2);
        assert_eq!(m.get("a"), None, "a had the oldest entry");
        assert_eq!((m.get("b"), m.get("c")), (Some(20), Some(30)));
    }
}
