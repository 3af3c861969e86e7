//! Acknowledgements: how a source learns the final fate of the events it emitted.
//!
//! A source creates one [`AckBatch`] per unit it can acknowledge (a Redis read, a
//! file chunk, an HTTP request) and attaches an [`AckToken`] to each event. A
//! token is an `Arc` clone — no allocation per event. Whoever decides an event's
//! fate calls [`AckToken::resolve`]; when the last token of the batch is dropped,
//! the source receives a [`BatchOutcome`] counting each fate. A token dropped
//! without a fate counts as `unresolved`, so a source never acknowledges an event
//! that was lost on the way (for example by a crash of a task).
//!
//! Counts are enough for a source that acknowledges a whole unit or nothing.
//! A source that settles each entry on its own (a Redis read of many stream
//! entries, where one dropped entry must not hold back its neighbours) uses an
//! [`IndexedAckBatch`] instead: token `i` records the fate of entry `i`, and the
//! source receives [`Fates`], one per index, besides the counts. Both kinds of
//! token have the same size; the counting path pays nothing for the other.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
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

impl Fate {
    fn from_u8(v: u8) -> Fate {
        match v {
            0 => Fate::Delivered,
            1 => Fate::Filtered,
            2 => Fate::Dropped,
            3 => Fate::DeadLettered,
            _ => Fate::Unresolved,
        }
    }
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

/// Who receives the outcome, and in which form.
enum Reply {
    Counts(oneshot::Sender<BatchOutcome>),
    Fates(oneshot::Sender<Fates>),
}

struct Shared {
    counts: [AtomicU64; 5],
    /// One fate per index for an [`IndexedAckBatch`]; empty otherwise.
    fates: Box<[AtomicU8]>,
    tx: Mutex<Option<Reply>>,
}

impl Shared {
    fn new(reply: Reply, entries: usize) -> Arc<Self> {
        Arc::new(Self {
            counts: Default::default(),
            fates: (0..entries)
                .map(|_| AtomicU8::new(Fate::Unresolved as u8))
                .collect(),
            tx: Mutex::new(Some(reply)),
        })
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        let c = |i: usize| self.counts[i].load(Ordering::Relaxed);
        let mut outcome = BatchOutcome {
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
        // The source may have stopped listening: sends may fail.
        match tx {
            None => {}
            Some(Reply::Counts(tx)) => {
                let _ = tx.send(outcome);
            }
            Some(Reply::Fates(tx)) => {
                let fates: Vec<Fate> = self
                    .fates
                    .iter_mut()
                    .map(|f| Fate::from_u8(*f.get_mut()))
                    .collect();
                // An index that never got a token is as undecided as a token
                // dropped without a fate.
                let tokens: u64 = outcome.delivered
                    + outcome.filtered
                    + outcome.dropped
                    + outcome.dead_lettered
                    + outcome.unresolved;
                outcome.unresolved += (fates.len() as u64).saturating_sub(tokens);
                let _ = tx.send(Fates { outcome, fates });
            }
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
        let shared = Shared::new(Reply::Counts(tx), 0);
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

/// A batch whose source learns the fate of each event, by index: for a
/// source that settles its entries one by one (see the module docs). The
/// outcome is sent once this handle and every token from it are dropped.
#[derive(Clone)]
pub struct IndexedAckBatch {
    shared: Arc<Shared>,
}

impl IndexedAckBatch {
    /// A batch of `entries` events (indices `0..entries`) and the receiver of
    /// their fates.
    ///
    /// # Panics
    /// If `entries` does not fit in a `u32` (a token keeps its index in 32
    /// bits so that it stays as small as a counting token).
    pub fn new(entries: usize) -> (Self, oneshot::Receiver<Fates>) {
        assert!(
            u32::try_from(entries).is_ok(),
            "IndexedAckBatch holds at most u32::MAX entries, not {entries}"
        );
        let (tx, rx) = oneshot::channel();
        let shared = Shared::new(Reply::Fates(tx), entries);
        (Self { shared }, rx)
    }

    /// The token of event `index`. Take one token per index: an index
    /// without a token is reported `Unresolved`.
    ///
    /// # Panics
    /// If `index` is not below the `entries` the batch was made for.
    pub fn token(&self, index: usize) -> AckToken {
        assert!(
            index < self.shared.fates.len(),
            "token index {index} out of an IndexedAckBatch of {}",
            self.shared.fates.len()
        );
        AckToken {
            // Fits: `new` checked that every index below `entries` fits a u32.
            link: Link::Indexed(self.shared.clone(), index as u32),
            fate: Fate::Unresolved,
        }
    }
}

/// The outcome of an [`IndexedAckBatch`]: the counts, and each event's fate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fates {
    /// How many events had each fate (an index without a token counts as
    /// unresolved).
    pub outcome: BatchOutcome,
    /// `fates[i]` is the fate of the event with token `i`.
    pub fates: Vec<Fate>,
}

impl Fates {
    /// Every event of `entries` unresolved: what a source assumes when the
    /// outcome never arrives.
    pub fn unresolved(entries: usize) -> Self {
        Self {
            outcome: BatchOutcome {
                unresolved: entries as u64,
                ..Default::default()
            },
            fates: vec![Fate::Unresolved; entries],
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
    /// Entry `.1` of a source's indexed batch.
    Indexed(Arc<Shared>, u32),
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
            Link::Indexed(shared, index) => {
                shared.counts[self.fate as usize].fetch_add(1, Ordering::Relaxed);
                shared.fates[*index as usize].store(self.fate as u8, Ordering::Relaxed);
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

    #[tokio::test]
    async fn indexed_outcome_names_the_fate_of_each_event() {
        let (batch, rx) = IndexedAckBatch::new(4);
        let mut tokens: Vec<AckToken> = (0..4).map(|i| batch.token(i)).collect();
        drop(batch);
        tokens[0].resolve(Fate::Delivered);
        tokens[1].resolve(Fate::Dropped);
        tokens[3].resolve(Fate::DeadLettered);
        // Resolution order does not matter; drop them out of order too.
        tokens.reverse();
        drop(tokens);
        let got = rx.await.expect("sent on last drop");
        assert_eq!(
            got.fates,
            [
                Fate::Delivered,
                Fate::Dropped,
                Fate::Unresolved,
                Fate::DeadLettered
            ]
        );
        assert_eq!(
            (got.outcome.delivered, got.outcome.dropped),
            (1, 1),
            "{got:?}"
        );
        assert_eq!(
            (got.outcome.dead_lettered, got.outcome.unresolved),
            (1, 1),
            "{got:?}"
        );
    }

    #[tokio::test]
    async fn an_index_without_a_token_is_unresolved() {
        let (batch, rx) = IndexedAckBatch::new(3);
        let mut t = batch.token(1);
        t.resolve(Fate::Filtered);
        drop((batch, t));
        let got = rx.await.unwrap();
        assert_eq!(
            got.fates,
            [Fate::Unresolved, Fate::Filtered, Fate::Unresolved]
        );
        assert_eq!(got.outcome.unresolved, 2);
        assert_eq!(got.outcome.filtered, 1);
    }

    #[tokio::test]
    async fn a_fanned_out_indexed_event_gets_the_worst_fate_of_its_copies() {
        let (batch, rx) = IndexedAckBatch::new(2);
        let mut first = batch.token(0);
        first.resolve(Fate::Delivered);
        let copies = batch.token(1).split(2);
        drop((batch, first));
        for (mut copy, fate) in copies.into_iter().zip([Fate::Delivered, Fate::Dropped]) {
            copy.resolve(fate);
        }
        assert_eq!(rx.await.unwrap().fates, [Fate::Delivered, Fate::Dropped]);
    }

    #[test]
    fn an_indexed_token_is_no_larger_than_a_counting_token() {
        // Tokens travel with every event: the index must not grow them.
        assert_eq!(std::mem::size_of::<AckToken>(), 24);
    }

    #[test]
    #[should_panic(expected = "out of an IndexedAckBatch")]
    fn a_token_past_the_end_is_a_broken_contract() {
        let (batch, _rx) = IndexedAckBatch::new(1);
        let _ = batch.token(1);
    }
}
