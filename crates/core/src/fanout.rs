//! Fan-out acknowledgements: one event sent to several sinks is one event to
//! its source.
//!
//! Each copy carries its own token; the copies share a [`Joint`] that holds the
//! original token. When the last copy is dropped the original is resolved with
//! the *worst* fate any copy had, so a source acknowledges an event upstream
//! (a Redis `XACK`, a file checkpoint) only when every sink is done with it,
//! and never counts one event twice.

use crate::ack::{AckToken, Fate};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Mutex;

/// How bad a fate is for the source, from best to worst. A copy that was
/// filtered on one path while another copy was delivered leaves the event
/// delivered; one lost copy makes the whole event lost.
fn severity(fate: Fate) -> u8 {
    match fate {
        Fate::Filtered => 0,
        Fate::Delivered => 1,
        Fate::DeadLettered => 2,
        Fate::Dropped => 3,
        Fate::Unresolved => 4,
    }
}

fn from_severity(s: u8) -> Fate {
    match s {
        0 => Fate::Filtered,
        1 => Fate::Delivered,
        2 => Fate::DeadLettered,
        3 => Fate::Dropped,
        _ => Fate::Unresolved,
    }
}

/// The state the copies of one event share.
pub(crate) struct Joint {
    original: Mutex<Option<AckToken>>,
    worst: AtomicU8,
}

impl Joint {
    pub(crate) fn new(original: AckToken) -> Self {
        Self {
            original: Mutex::new(Some(original)),
            worst: AtomicU8::new(0),
        }
    }

    /// Record one copy's fate (called as the copy's token is dropped).
    pub(crate) fn settle(&self, fate: Fate) {
        self.worst.fetch_max(severity(fate), Ordering::AcqRel);
    }
}

impl Drop for Joint {
    fn drop(&mut self) {
        let original = match self.original.get_mut() {
            Ok(o) => o.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if let Some(mut token) = original {
            token.resolve(from_severity(*self.worst.get_mut()));
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::ack::{AckBatch, Fate};

    async fn outcome_of(fates: &[Fate]) -> crate::BatchOutcome {
        let (batch, rx) = AckBatch::new();
        let copies = batch.token().split(fates.len());
        drop(batch);
        for (mut t, f) in copies.into_iter().zip(fates) {
            t.resolve(*f);
        }
        rx.await.unwrap()
    }

    #[tokio::test]
    async fn the_source_sees_one_event_with_the_worst_fate() {
        let o = outcome_of(&[Fate::Delivered, Fate::Delivered]).await;
        assert_eq!((o.delivered, o.dropped, o.unresolved), (1, 0, 0));
        let o = outcome_of(&[Fate::Delivered, Fate::Filtered]).await;
        assert_eq!((o.delivered, o.filtered), (1, 0));
        let o = outcome_of(&[Fate::Filtered, Fate::Filtered]).await;
        assert_eq!((o.delivered, o.filtered), (0, 1));
        let o = outcome_of(&[Fate::Delivered, Fate::DeadLettered]).await;
        assert_eq!((o.delivered, o.dead_lettered), (0, 1));
        let o = outcome_of(&[Fate::Delivered, Fate::Dropped]).await;
        assert_eq!((o.delivered, o.dropped), (0, 1));
        let o = outcome_of(&[Fate::Dropped, Fate::Unresolved, Fate::Delivered]).await;
        assert_eq!((o.dropped, o.unresolved), (0, 1));
    }

    #[tokio::test]
    async fn the_source_waits_for_the_last_copy() {
        let (batch, mut rx) = AckBatch::new();
        let mut copies = batch.token().split(2);
        drop(batch);
        let mut last = copies.pop().unwrap();
        let mut first = copies.pop().unwrap();
        first.resolve(Fate::Delivered);
        drop(first);
        assert!(rx.try_recv().is_err(), "one copy is still on its way");
        last.resolve(Fate::Delivered);
        drop(last);
        assert_eq!(rx.await.unwrap().delivered, 1);
    }

    #[test]
    fn splitting_a_detached_token_allocates_nothing_shared() {
        let copies = crate::AckToken::none().split(3);
        assert_eq!(copies.len(), 3);
    }
}
