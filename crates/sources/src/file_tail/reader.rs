//! One tailed file: its open handle, how far it has been read, the partial
//! last line, and the acknowledgements of what was sent but not yet final.

use super::checkpoint::FileId;
use super::multiline::Multiline;
use std::collections::VecDeque;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::ops::Range;
use std::path::PathBuf;
use std::time::Instant;
use switchyard_core::BatchOutcome;
use tokio::sync::oneshot;

/// Lines read in one go: where each lies in the read buffer, and the file
/// offset just past the last one.
pub struct Lines {
    /// Byte ranges of the lines in the buffer (no newline, `\r` trimmed).
    pub ranges: Vec<Range<usize>>,
    /// File offset after the last line.
    pub end: u64,
    /// Joined events cut at a multiline bound.
    pub cut: u64,
}

/// A sent chunk waiting for its outcome.
struct Pending {
    generation: u32,
    end: u64,
    outcome: oneshot::Receiver<BatchOutcome>,
}

/// State of one file being tailed.
pub struct TailedFile {
    /// Identity.
    pub id: FileId,
    /// Path it was last seen under.
    pub path: PathBuf,
    file: File,
    /// Offset of the next byte to read.
    read_at: u64,
    /// Bytes after the last newline.
    partial: Vec<u8>,
    /// When the partial line last grew.
    partial_since: Option<Instant>,
    /// Bumped on truncation: outcomes of older content no longer move the
    /// checkpoint.
    generation: u32,
    pending: VecDeque<Pending>,
    /// Offset up to which every line has a final outcome.
    delivered: u64,
    /// A chunk came back unresolved: the offset stays before it for the rest
    /// of this run.
    stalled: bool,
    /// Still matched by the include patterns.
    pub present: bool,
    /// Since when it is not matched and nothing new was read from it.
    pub gone_since: Option<Instant>,
}

impl TailedFile {
    /// Open `path` and start reading at `offset`.
    pub fn open(path: PathBuf, id: FileId, offset: u64) -> std::io::Result<Self> {
        let mut file = File::open(&path)?;
        file.seek(SeekFrom::Start(offset))?;
        Ok(Self {
            id,
            path,
            file,
            read_at: offset,
            partial: Vec::new(),
            partial_since: None,
            generation: 0,
            pending: VecDeque::new(),
            delivered: offset,
            stalled: false,
            present: true,
            gone_since: None,
        })
    }

    /// Start over from offset 0 if the file shrank below what was read
    /// (copy-truncate rotation). True when it did.
    pub fn check_truncated(&mut self) -> std::io::Result<bool> {
        let len = self.file.metadata()?.len();
        if len >= self.read_at {
            return Ok(false);
        }
        self.file.seek(SeekFrom::Start(0))?;
        self.read_at = 0;
        self.partial.clear();
        self.partial_since = None;
        self.generation += 1;
        self.delivered = 0;
        self.stalled = false;
        Ok(true)
    }

    /// Read up to `budget` bytes and return the complete lines in them. A
    /// partial last line is kept until its newline arrives, or returned as a
    /// line once it has waited `partial_timeout` (or reached `max_line`).
    /// With `multiline`, the ranges are joined events instead of lines, and
    /// the open last event is kept like a partial line.
    pub fn read_lines(
        &mut self,
        budget: usize,
        max_line: usize,
        partial_timeout: std::time::Duration,
        multiline: Option<&Multiline>,
        buf: &mut Vec<u8>,
    ) -> std::io::Result<Lines> {
        buf.clear();
        buf.extend_from_slice(&self.partial);
        let carried = self.partial.len();
        self.partial.clear();
        let got = (&mut self.file).take(budget as u64).read_to_end(buf)?;
        self.read_at += got as u64;
        let mut lines = Vec::new();
        let mut start = 0;
        while let Some(nl) = memchr::memchr(b'\n', &buf[start..]) {
            push_line(&mut lines, buf, start..start + nl, max_line);
            start += nl + 1;
        }
        if let Some(ml) = multiline {
            return Ok(self.join(ml, lines, start, got, max_line, partial_timeout, buf));
        }
        let rest = &buf[start..];
        let mut end = self.read_at - rest.len() as u64;
        let now = Instant::now();
        if !rest.is_empty() {
            let grew = got > 0 && (rest.len() > carried || start > 0);
            if grew || self.partial_since.is_none() {
                self.partial_since = Some(now);
            }
            let waited = self
                .partial_since
                .is_some_and(|t| now.duration_since(t) >= partial_timeout);
            if waited || rest.len() >= max_line {
                push_line(&mut lines, buf, start..buf.len(), max_line);
                end = self.read_at;
                self.partial_since = None;
            } else {
                self.partial.extend_from_slice(rest);
            }
        } else {
            self.partial_since = None;
        }
        Ok(Lines {
            ranges: lines,
            end,
            cut: 0,
        })
    }

    /// Join `lines` into events. What is held back — the open last event and
    /// the partial line after it — waits `partial_timeout` after the last
    /// byte that reached it, then goes out as it is. `rest` is where the
    /// partial line starts in `buf`.
    #[allow(clippy::too_many_arguments)] // the read's own state, passed on once
    fn join(
        &mut self,
        ml: &Multiline,
        mut lines: Vec<Range<usize>>,
        mut rest: usize,
        got: usize,
        max_line: usize,
        partial_timeout: std::time::Duration,
        buf: &[u8],
    ) -> Lines {
        let now = Instant::now();
        let flush = got == 0
            && self
                .partial_since
                .is_some_and(|t| now.duration_since(t) >= partial_timeout);
        if rest < buf.len() && (flush || buf.len() - rest >= max_line) {
            push_line(&mut lines, buf, rest..buf.len(), max_line);
            rest = buf.len();
        }
        let mut events = Vec::with_capacity(lines.len());
        let mut cut = 0;
        let open = ml.group(buf, &lines, &mut events, &mut cut);
        let hold_from = match open {
            Some(o) if flush => {
                events.push(o);
                rest
            }
            Some(o) => o.start,
            None => rest,
        };
        let held = buf.len() - hold_from;
        if held > 0 {
            self.partial.extend_from_slice(&buf[hold_from..]);
            if got > 0 || self.partial_since.is_none() {
                self.partial_since = Some(now);
            }
        } else {
            self.partial_since = None;
        }
        Lines {
            ranges: events,
            end: self.read_at - held as u64,
            cut,
        }
    }

    /// Remember a sent chunk that ends at `end`.
    pub fn sent(&mut self, end: u64, outcome: oneshot::Receiver<BatchOutcome>) {
        self.pending.push_back(Pending {
            generation: self.generation,
            end,
            outcome,
        });
    }

    /// Take the outcomes that have arrived, in order, and return the offset up
    /// to which every line is final. A chunk that came back unresolved (lost
    /// in flight) stops the offset there, so it is read again after a restart.
    pub fn settle(&mut self) -> u64 {
        while let Some(front) = self.pending.front_mut() {
            let outcome = match front.outcome.try_recv() {
                Ok(outcome) => Some(outcome),
                Err(oneshot::error::TryRecvError::Empty) => break,
                Err(oneshot::error::TryRecvError::Closed) => None,
            };
            let p = self.pending.pop_front().expect("front exists");
            if p.generation != self.generation {
                continue;
            }
            match outcome {
                Some(o) if o.is_final() && !self.stalled => {
                    self.delivered = self.delivered.max(p.end)
                }
                _ => self.stalled = true,
            }
        }
        self.delivered
    }

    /// Chunks whose outcome is not known yet.
    pub fn in_flight(&self) -> usize {
        self.pending.len()
    }

    /// Offset of the next byte to read.
    pub fn read_at(&self) -> u64 {
        self.read_at
    }
}

fn push_line(lines: &mut Vec<Range<usize>>, buf: &[u8], line: Range<usize>, max_line: usize) {
    // Blank lines carry nothing and are skipped; over-long ones are split.
    let end = if buf[line.clone()].ends_with(b"\r") {
        line.end - 1
    } else {
        line.end
    };
    let step = max_line.max(1);
    let mut at = line.start;
    while at < end {
        let to = (at + step).min(end);
        lines.push(at..to);
        at = to;
    }
}
