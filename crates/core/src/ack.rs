//! Acknowledgements: how a source learns the final fate of the events it emitted.
//!
//! A source creates one [`AckBatch`] per unit it can acknowledge (a Redis read, a
//! file chunk, an HTTP request) and attaches an [`AckToken`] to each event. A
//! token is an `Arc` clone — no allocation per event. Whoever decides an event's
//! fate calls [`AckToken::resolve`]; when the last token of the batch is dropped,
//! the source receives a [`BatchOutcome`] counting each fate. A token dropped
//! without a fate counts as `unresolved`, so a source never acknowledges an event
//! that was lost on the way (for example by a crash of a task).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

/// The final fate of one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(u8)]
pub enum Fate {
    /// The sink has it.
    Delivered = 0,
    /// A transform removed it on purpose.
    Filtered = 1,
    /// It was given up on after a permanent error or exhausted retries, and
    /// no dead-letter queue could keep it.
    Dropped = 2,
    /// It failed for good but is kept, with the reason, in the dead-letter
    /// queue, from where it can be replayed. Settled for its source: the
    /// event is durable on disk, so a source may let it go upstream.
    DeadLettered = 3,
    /// Nobody decided; the event was lost in flight.
    #[default]
    Unresolved = 4,
}

/// Counts of fates for one acknowledged batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    /// Events the sink accepted.
    pub delivered: u64,
    /// Events filtered by a transform.
    pub filtered: u64,
    /// Events given up on.
    pub dropped: u64,
    /// Events kept in the dead-letter queue (settled: they are on disk).
    pub dead_lettered: u64,
    /// Events dropped without a decision.
    pub unresolved: u64,
}

impl BatchOutcome {
    /// Every event reached a final, decided fate.
    pub fn is_final(&self) -> bool {
        self.unresolved == 0
    }
}

struct Shared {
    counts: [AtomicU64; 5],
    tx: Mutex<Option<oneshot::Sender<BatchOutcome>>>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        let c = |i: usize| self.counts[i].load(Ordering::Relaxed);
        let outcome = BatchOutcome {
            delivered: c(0),
            filtered: c(1),
            dropped: c(2),
            dead_lettered: c(3),
            unresolved: c(4),
        };
        // A poisoned lock only means another thread panicked while holding it;
        // the sender inside is still valid.
        let tx = match self.tx.get_mut() {
            Ok(tx) => tx.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if let Some(tx) = tx {
            let _ = tx.send(outcome); // the source may have stopped listening
        }
    }
}

/// The source's handle on one acknowledged batch; hands out tokens. Clones
/// share the batch: the outcome is sent once every clone and every token is
/// dropped.
#[derive(Clone)]
pub struct AckBatch {
    shared: Arc<Shared>,
}

impl AckBatch {
    /// A new batch and the receiver of its outcome. The outcome is sent once
    /// this handle and every token from it are dropped.
    pub fn new() -> (Self, oneshot::Receiver<BatchOutcome>) {
        let (tx, rx) = oneshot::channel();
        let shared = Arc::new(Shared {
            counts: Default::default(),
            tx: Mutex::new(Some(tx)),
        });
        (Self { shared }, rx)
    }

    /// A token for one event of this batch.
    pub fn token(&self) -> AckToken {
        AckToken {
            link: Link::Batch(self.shared.clone()),
            fate: Fate::Unresolved,
        }
    }
}

/// One event's link back to its source's [`AckBatch`].
#[derive(Default)]
pub struct AckToken {
    link: Link,
    fate: Fate,
}

/// Where a token reports its fate.
#[derive(Default, Clone)]
enum Link {
    /// Nobody listens.
    #[default]
    None,
    /// A source's batch.
    Batch(Arc<Shared>),
    /// One copy of a fanned-out event (see [`crate::fanout`]).
    Copy(Arc<crate::fanout::Joint>),
}

impl AckToken {
    /// A token for an event whose source does not need acknowledgements.
    pub const fn none() -> Self {
        Self {
            link: Link::None,
            fate: Fate::Unresolved,
        }
    }

    /// Record the event's fate; it is reported when the token drops.
    pub fn resolve(&mut self, fate: Fate) {
        self.fate = fate;
    }

    /// Turn this token into `n` tokens, one per copy of a fanned-out event.
    /// The original is resolved once, when the last copy is dropped, with the
    /// worst fate among the copies (see [`crate::fanout`]).
    pub fn split(self, n: usize) -> Vec<AckToken> {
        if n == 1 || matches!(self.link, Link::None) {
            let mut out = Vec::with_capacity(n);
            out.push(self);
            out.resize_with(n, AckToken::none);
            if n == 0 {
                out.clear();
            }
            return out;
        }
        let joint = Arc::new(crate::fanout::Joint::new(self));
        (0..n)
            .map(|_| AckToken {
                link: Link::Copy(joint.clone()),
                fate: Fate::Unresolved,
            })
            .collect()
    }
}

impl Clone for AckToken {
    /// A copy (e.g. for bus fan-out) must be resolved on its own.
    fn clone(&self) -> Self {
        Self {
            link: self.link.clone(),
            fate: Fate::Unresolved,
        }
    }
}

impl Drop for AckToken {
    fn drop(&mut self) {
        match &self.link {
            Link::None => {}
            Link::Batch(shared) => {
                shared.counts[self.fate as usize].fetch_add(1, Ordering::Relaxed);
            }
            Link::Copy(joint) => joint.settle(self.fate),
        }
    }
}

impl std::fmt::Debug for AckToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AckToken")
            .field("attached", &!matches!(self.link, Link::None))
            .field("fate", &self.fate)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn outcome_counts_every_fate_once_all_tokens_drop() {
        let (batch, rx) = AckBatch::new();
        let mut a = batch.token();
        let mut b = batch.token();
        let c = batch.token();
        let mut d = batch.token();
        drop(batch);
        a.resolve(Fate::Delivered);
        b.resolve(Fate::Filtered);
        d.resolve(Fate::DeadLettered);
        drop((a, b, c, d));
        let outcome = rx.await.expect("sent on last drop");
        assert_eq!(
            outcome,
            BatchOutcome {
                delivered: 1,
                filtered: 1,
                dropped: 0,
                dead_lettered: 1,
                unresolved: 1
            }
        );
        assert!(!outcome.is_final());
    }
}
