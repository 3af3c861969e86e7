//! A batch's encoded lines, optionally laid out so that a direct write can
//! go to the device from this buffer itself.
//!
//! A direct append writes the file's partial last block again, followed by
//! the new lines, from a [`BLOCK`]-aligned address (see
//! [`direct`](super::direct)). Lines encoded at the right distance from an
//! aligned address leave room for those partial-block bytes right before
//! them; then the append copies only the partial block (under 4 KiB) instead
//! of the whole batch. The distance is predicted when the batch is encoded
//! ([`placement`](super::placement)); a wrong prediction costs the copy,
//! never correctness.

use super::direct::BLOCK;
use std::sync::Mutex;

/// Encoded lines, with unused room before them.
#[derive(Debug, Default)]
pub struct Lines {
    raw: Vec<u8>,
    /// Where the lines start in `raw`; the bytes before are room.
    start: usize,
}

impl Lines {
    /// No room before the lines; `capacity` bytes reserved for them.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            raw: Vec::with_capacity(capacity),
            start: 0,
        }
    }

    /// Lines that start `tail` bytes past an aligned address (`tail` below
    /// [`BLOCK`]), so that a partial block of `tail` bytes put right before
    /// them starts aligned. The layout holds as long as the lines fit in
    /// `capacity`; more bytes move the buffer, and the room is then unusable.
    pub fn after_partial_block(capacity: usize, tail: usize) -> Self {
        Self::laid_out(Vec::new(), capacity, Some(tail))
    }

    /// Lines in `raw` (its bytes discarded, its memory kept): after a
    /// partial block of `tail` bytes as [`Lines::after_partial_block`] lays
    /// them out, or from the start with no `tail`.
    fn laid_out(mut raw: Vec<u8>, capacity: usize, tail: Option<usize>) -> Self {
        raw.clear();
        match tail {
            None => {
                raw.reserve(capacity);
                Self { raw, start: 0 }
            }
            Some(tail) => {
                raw.reserve(capacity + 2 * BLOCK);
                let start = raw.as_ptr().align_offset(BLOCK) + tail % BLOCK;
                raw.resize(start, 0);
                Self { raw, start }
            }
        }
    }

    /// Where encoders append lines. Only appending keeps the lines intact.
    pub fn buf(&mut self) -> &mut Vec<u8> {
        &mut self.raw
    }

    /// The lines.
    pub fn bytes(&self) -> &[u8] {
        &self.raw[self.start..]
    }

    /// Bytes of lines.
    pub fn len(&self) -> usize {
        self.raw.len() - self.start
    }

    /// No lines yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Put `prefix` right before the lines, when there is room for it there
    /// and it then starts at an aligned address; `false` (and nothing
    /// changed) otherwise. [`Lines::with_prefix`] then gives both.
    pub fn take_prefix(&mut self, prefix: &[u8]) -> bool {
        let Some(from) = self.start.checked_sub(prefix.len()) else {
            return false;
        };
        if !(self.raw.as_ptr() as usize + from).is_multiple_of(BLOCK) {
            return false;
        }
        self.raw[from..self.start].copy_from_slice(prefix);
        true
    }

    /// The `len` bytes before the lines and the lines: after
    /// [`Lines::take_prefix`] accepted a prefix of `len` bytes, that prefix
    /// and the lines, starting at an aligned address.
    pub fn with_prefix(&self, len: usize) -> &[u8] {
        &self.raw[self.start - len..]
    }
}

/// Buffers of batches already written, kept for the next batches.
///
/// A batch of multi-KB events is several MiB. Allocated for each batch, such
/// a buffer came fresh from the kernel every time, and each 4 KiB of it cost
/// a page fault and a zeroed page while the batch was encoded: 7 % of the
/// Redis → file dispatcher's CPU at 2 KB bodies. A kept buffer is already
/// mapped. Bounded: at most [`Spare::KEEP`] buffers, none over
/// [`Spare::MAX_BYTES`], so an idle sink holds at most
/// `KEEP × MAX_BYTES` of them.
#[derive(Debug, Default)]
pub struct Spare {
    kept: Mutex<Vec<Vec<u8>>>,
}

impl Spare {
    /// Buffers kept at most: one per batch the engine has in flight by
    /// default.
    pub const KEEP: usize = 4;
    /// A larger buffer is freed rather than kept.
    pub const MAX_BYTES: usize = 8 << 20;

    /// Lines for a batch of about `capacity` bytes, laid out for a partial
    /// block of `tail` bytes when there is one (see
    /// [`Lines::after_partial_block`]); in a kept buffer if there is one.
    pub fn lines(&self, capacity: usize, tail: Option<usize>) -> Lines {
        let raw = self.kept.lock().unwrap_or_else(|p| p.into_inner()).pop();
        Lines::laid_out(raw.unwrap_or_default(), capacity, tail)
    }

    /// Keep the buffer of written `lines` for a later batch, if there is room.
    pub fn keep(&self, lines: Lines) {
        let raw = lines.raw;
        if raw.capacity() == 0 || raw.capacity() > Self::MAX_BYTES {
            return;
        }
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        if kept.len() < Self::KEEP {
            kept.push(raw);
        }
    }

    /// Buffers kept now.
    pub fn kept(&self) -> usize {
        self.kept.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

impl From<Vec<u8>> for Lines {
    fn from(raw: Vec<u8>) -> Self {
        Self { raw, start: 0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_before_the_lines_takes_the_partial_block_aligned() {
        for tail in [0, 1, 17, BLOCK - 1] {
            let mut lines = Lines::after_partial_block(10_000, tail);
            lines.buf().extend_from_slice(b"new line\n");
            assert_eq!(lines.bytes(), b"new line\n");
            let prefix = vec![b'p'; tail];
            assert!(lines.take_prefix(&prefix), "room was made");
            let staged = lines.with_prefix(tail);
            assert_eq!(staged.as_ptr() as usize % BLOCK, 0);
            assert_eq!(&staged[..tail], &prefix[..]);
            assert_eq!(&staged[tail..], b"new line\n");
            assert_eq!(lines.bytes(), b"new line\n");
        }
    }

    #[test]
    fn a_prefix_of_another_length_is_refused_and_changes_nothing() {
        let mut lines = Lines::after_partial_block(100, 10);
        lines.buf().extend_from_slice(b"x\n");
        assert!(!lines.take_prefix(&[b'p'; 11]));
        assert!(!lines.take_prefix(&[b'p'; 9]));
        assert_eq!(lines.bytes(), b"x\n");
        let mut plain = Lines::from(b"y\n".to_vec());
        assert!(!plain.take_prefix(b"p"));
        assert_eq!(plain.len(), 2);
    }

    #[test]
    fn spare_buffers_are_reused_laid_out_and_bounded() {
        let spare = Spare::default();
        let mut lines = spare.lines(10_000, Some(100));
        lines.buf().extend_from_slice(b"first\n");
        let addr = lines.bytes().as_ptr() as usize;
        spare.keep(lines);
        assert_eq!(spare.kept(), 1);
        // The kept buffer comes back empty, laid out for another partial block.
        let mut lines = spare.lines(10_000, Some(7));
        assert_eq!(spare.kept(), 0);
        assert!(lines.is_empty());
        lines.buf().extend_from_slice(b"second\n");
        assert_eq!(lines.bytes(), b"second\n");
        assert_eq!(lines.bytes().as_ptr() as usize % BLOCK, 7);
        assert!(lines.take_prefix(&[b'p'; 7]));
        assert_eq!(
            (lines.bytes().as_ptr() as usize) & !(BLOCK - 1),
            addr & !(BLOCK - 1),
            "same memory"
        );
        // Without a partial block the lines start at the buffer's start.
        spare.keep(lines);
        let lines = spare.lines(10, None);
        assert!(lines.is_empty());
        assert!(lines.raw.capacity() >= 10);
        // At most KEEP buffers, none over MAX_BYTES.
        for _ in 0..Spare::KEEP + 3 {
            spare.keep(Lines::with_capacity(64));
        }
        assert_eq!(spare.kept(), Spare::KEEP);
        let spare = Spare::default();
        spare.keep(Lines::with_capacity(Spare::MAX_BYTES + 1));
        spare.keep(Lines::default());
        assert_eq!(spare.kept(), 0);
    }
}
