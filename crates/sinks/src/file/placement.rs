//! Where the single file's next batch will start within a block, so that it
//! can be laid out for a direct append from its own buffer
//! ([`Lines::after_partial_block`](super::lines::Lines::after_partial_block)).
//!
//! With several batches in flight, the end of the last batch *written* is
//! not where the next batch *encoded* lands: the batches queued in between
//! move it. So the sink encodes and queues its batches in one order and
//! counts the bytes it queued; the writer counts the bytes it took off the
//! queue and records where the file's partial block ended after them. The
//! next batch starts the difference past that partial block.
//!
//! A wrong prediction (a rotation, a failed write, someone else appending)
//! costs the append a copy of the batch, never correctness.

use super::direct::BLOCK;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

/// The writer's side, shared with the sink.
#[derive(Debug, Default)]
pub struct Placement {
    progress: Mutex<Progress>,
    /// Direct appends that copied their batch: the layout did not match.
    copied: AtomicU64,
}

#[derive(Debug, Default, Clone, Copy)]
struct Progress {
    /// Bytes of lines the writer has taken off the queue, written or not.
    taken: u64,
    /// Bytes of the file's partial last block after them.
    tail: usize,
}

impl Placement {
    /// The writer opened the file (or a new one after a rotation); its
    /// partial last block has `tail` bytes.
    pub fn opened(&self, tail: usize) {
        self.lock().tail = tail % BLOCK;
    }

    /// The writer took a batch of `len` bytes of lines off the queue; after
    /// it, the file's partial block has `tail` bytes (`None`: unknown until
    /// the file is opened again).
    /// `copied`: the append had to copy the lines (the layout missed).
    pub fn took(&self, len: usize, tail: Option<usize>, copied: bool) {
        if copied {
            self.copied.fetch_add(1, Relaxed);
        }
        let mut p = self.lock();
        p.taken += len as u64;
        if let Some(tail) = tail {
            p.tail = tail % BLOCK;
        }
    }

    /// Where a batch queued after `queued` bytes of lines (the sink's count
    /// since it started) will start within a block.
    pub fn next_tail(&self, queued: u64) -> usize {
        let p = *self.lock();
        let ahead = queued.saturating_sub(p.taken);
        ((p.tail as u64 + ahead) % BLOCK as u64) as usize
    }

    /// Direct appends so far that copied their batch.
    pub fn copied(&self) -> u64 {
        self.copied.load(Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_batches_still_queued_move_the_next_start() {
        let p = Placement::default();
        p.opened(100);
        // Nothing queued yet: the next batch starts at the file's tail.
        assert_eq!(p.next_tail(0), 100);
        // Two batches queued (1000 and 5000 bytes), none written.
        assert_eq!(p.next_tail(1000), 1100);
        assert_eq!(p.next_tail(6000), (100 + 6000) % BLOCK);
        // The first is written: the file's tail is now 1100, 5000 bytes ahead.
        p.took(1000, Some(1100), false);
        assert_eq!(p.next_tail(6000), (1100 + 5000) % BLOCK);
        // A failed write leaves the tail as it was.
        p.took(5000, None, false);
        assert_eq!(p.next_tail(6000), 1100);
        // A new file after a rotation.
        p.opened(0);
        assert_eq!(p.next_tail(6000), 0);
        assert_eq!(p.next_tail(6010), 10);
    }
}
