//! The acknowledgement pointer: everything before it is settled.
//!
//! The reader hands the engine chunks of records in log order, each with its
//! own acknowledgement batch. Chunks settle in any order (batches are
//! delivered concurrently and retried), but the pointer only moves over a
//! contiguous prefix of settled chunks, so a restart never skips an event
//! whose fate is still open. Moving it gives the chunks' bytes back to the
//! size budget; a background task persists it and deletes segments that lie
//! wholly before it.
//!
//! A chunk whose outcome has unresolved events (lost in flight, e.g. a task
//! that panicked) never settles: the pointer stays before it for the rest of
//! the run and the events are delivered again after a restart.

use super::budget::Budget;
use super::segment::{list_segments, segment_path, sync_dir, write_ack, Position};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use switchyard_core::BatchOutcome;
use tokio::sync::{oneshot, Notify};
use tracing::{debug, warn};

/// Whether an outcome lets the pointer pass its events. Every fate but
/// `unresolved` is final; the destructuring makes a new fate a compile error
/// here, so whoever adds one decides whether it settles an event (a
/// dead-lettered event does: the DLQ holds it).
fn settles(outcome: &BatchOutcome) -> bool {
    let BatchOutcome {
        delivered: _,
        filtered: _,
        dropped: _,
        dead_lettered: _,
        unresolved,
    } = *outcome;
    unresolved == 0
}

struct Slot {
    end: Position,
    bytes: u64,
    settled: bool,
}

struct Tracker {
    slots: VecDeque<Slot>,
    /// Index of `slots[0]`.
    first: u64,
    acked: Position,
}

pub(crate) struct AckLog {
    dir: PathBuf,
    tracker: Mutex<Tracker>,
    budget: Arc<Budget>,
    moved: Notify,
    /// Outcome watchers still waiting.
    pending: AtomicUsize,
    idle: Notify,
    /// Serializes writes of the pointer file; holds the oldest segment that
    /// may still exist.
    persisted: Mutex<(Position, u64)>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every update under these locks is completed before anything can panic.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl AckLog {
    /// A log whose pointer starts at `start`; segments from `oldest` on exist.
    pub(crate) fn new(dir: PathBuf, start: Position, oldest: u64, budget: Arc<Budget>) -> Self {
        Self {
            dir,
            tracker: Mutex::new(Tracker {
                slots: VecDeque::new(),
                first: 0,
                acked: start,
            }),
            budget,
            moved: Notify::new(),
            pending: AtomicUsize::new(0),
            idle: Notify::new(),
            persisted: Mutex::new((start, oldest)),
        }
    }

    /// Record the next stretch of the log, up to `end`, holding `bytes`.
    /// Returns its index for [`AckLog::settle`]. A stretch with nothing to
    /// deliver (skipped damage, the end of a segment) is pushed settled.
    pub(crate) fn push(&self, end: Position, bytes: u64, settled: bool) -> u64 {
        let mut t = lock(&self.tracker);
        let index = t.first + t.slots.len() as u64;
        t.slots.push_back(Slot {
            end,
            bytes,
            settled,
        });
        drop(t);
        if settled {
            self.settle(index);
        }
        index
    }

    /// Mark stretch `index` settled and move the pointer over every settled
    /// stretch at the front.
    pub(crate) fn settle(&self, index: u64) {
        let mut t = lock(&self.tracker);
        let Some(at) = index.checked_sub(t.first) else {
            return;
        };
        if let Some(slot) = t.slots.get_mut(at as usize) {
            slot.settled = true;
        }
        let mut freed = 0;
        while t.slots.front().is_some_and(|s| s.settled) {
            let slot = t.slots.pop_front().expect("front exists");
            t.first += 1;
            t.acked = slot.end;
            freed += slot.bytes;
        }
        drop(t);
        if freed > 0 {
            self.budget.release(freed);
        }
        self.moved.notify_one();
    }

    /// Settle stretch `index` when its outcome arrives, if the outcome is
    /// final.
    pub(crate) fn watch(self: &Arc<Self>, index: u64, outcome: oneshot::Receiver<BatchOutcome>) {
        self.pending.fetch_add(1, Ordering::SeqCst);
        let log = self.clone();
        tokio::spawn(async move {
            match outcome.await {
                Ok(o) if settles(&o) => log.settle(index),
                Ok(o) => warn!(
                    unresolved = o.unresolved,
                    "disk buffer: events lost in flight; they stay in the buffer and are delivered again after a restart"
                ),
                Err(_) => warn!("disk buffer: an acknowledgement was lost; its events are delivered again after a restart"),
            }
            if log.pending.fetch_sub(1, Ordering::SeqCst) == 1 {
                log.idle.notify_waiters();
            }
        });
    }

    /// Wait until every watched outcome has arrived.
    pub(crate) async fn idle(&self) {
        loop {
            let idle = self.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            if self.pending.load(Ordering::SeqCst) == 0 {
                return;
            }
            idle.await;
        }
    }

    /// The pointer now.
    pub(crate) fn acked(&self) -> Position {
        lock(&self.tracker).acked
    }

    /// Write the pointer if it moved, then delete the segments wholly before
    /// it. Blocking.
    pub(crate) fn persist(&self) -> std::io::Result<()> {
        let mut persisted = lock(&self.persisted);
        let acked = self.acked();
        if acked == persisted.0 {
            return Ok(());
        }
        write_ack(&self.dir, acked)?;
        persisted.0 = acked;
        if persisted.1 < acked.segment {
            for n in list_segments(&self.dir)?
                .into_iter()
                .filter(|n| *n < acked.segment)
            {
                std::fs::remove_file(segment_path(&self.dir, n))?;
                debug!(
                    segment = n,
                    "disk buffer: segment fully acknowledged, deleted"
                );
            }
            persisted.1 = acked.segment;
            sync_dir(&self.dir)?;
        }
        Ok(())
    }

    /// Persist the pointer whenever it moves; one write at a time, so a burst
    /// of acknowledgements costs one write. Runs until aborted.
    pub(crate) async fn persist_loop(self: Arc<Self>) {
        loop {
            self.moved.notified().await;
            let log = self.clone();
            match tokio::task::spawn_blocking(move || log.persist()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    warn!(dir = %self.dir.display(), error = %e, "disk buffer: cannot persist the acknowledgement pointer; will retry")
                }
                Err(e) => warn!(error = %e, "disk buffer: pointer writer task failed"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(segment: u64, offset: u64) -> Position {
        Position { segment, offset }
    }

    #[test]
    fn pointer_moves_only_over_a_settled_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let budget = Arc::new(Budget::new(1000, 300));
        let log = AckLog::new(dir.path().into(), pos(0, 0), 0, budget.clone());
        let a = log.push(pos(0, 100), 100, false);
        let b = log.push(pos(0, 200), 100, false);
        let c = log.push(pos(1, 100), 100, false);
        log.settle(c);
        log.settle(b);
        assert_eq!(log.acked(), pos(0, 0), "the first chunk is still open");
        assert_eq!(budget.used(), 300);
        log.settle(a);
        assert_eq!(log.acked(), pos(1, 100));
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn persisting_deletes_segments_before_the_pointer() {
        let dir = tempfile::tempdir().unwrap();
        for n in 0..3 {
            std::fs::write(segment_path(dir.path(), n), b"x").unwrap();
        }
        let budget = Arc::new(Budget::new(1000, 0));
        let log = AckLog::new(dir.path().into(), pos(0, 0), 0, budget);
        log.push(pos(2, 0), 0, true);
        log.persist().unwrap();
        assert_eq!(list_segments(dir.path()).unwrap(), vec![2]);
        assert_eq!(
            super::super::segment::read_ack(dir.path()).unwrap(),
            Some(pos(2, 0))
        );
    }

    #[test]
    fn only_outcomes_without_unresolved_events_settle() {
        let done = BatchOutcome {
            delivered: 3,
            filtered: 1,
            dropped: 1,
            dead_lettered: 1,
            unresolved: 0,
        };
        assert!(settles(&done));
        assert!(!settles(&BatchOutcome {
            unresolved: 1,
            ..done
        }));
    }
}
