//! A batch's encoded lines, optionally laid out so that a direct write can
//! go to the device from this buffer itself.
//!
//! A direct append writes the file's partial last block again, followed by
//! the new lines, from a [`BLOCK`]-aligned address (see
//! [`direct`](super::direct)). Lines encoded at the right distance from an
//! aligned address leave room for those partial-block bytes right before
//! them; then the append copies only the partial block (under 4 KiB) instead
//! of the whole batch. The distance is a guess made when the batch is
//! encoded (the file's length may change before it is written, e.g. another
//! batch goes first); a wrong guess costs the copy, never correctness.

use super::direct::BLOCK;

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
        let tail = tail % BLOCK;
        let mut raw: Vec<u8> = Vec::with_capacity(capacity + 2 * BLOCK);
        let start = raw.as_ptr().align_offset(BLOCK) + tail;
        raw.resize(start, 0);
        Self { raw, start }
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
}
