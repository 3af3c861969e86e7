//! Reading the log back into the engine.
//!
//! One thread reads records in log order from the acknowledgement pointer on,
//! never past the durable end the writer publishes (so it never sees a
//! half-written record of a live segment), and hands them to the engine's
//! intake in chunks, each chunk with one acknowledgement batch watched by the
//! [`AckLog`]. The intake's bound in events holds the reader back when the
//! engine is busy, so memory stays bounded however large the backlog on disk.
//!
//! Damage never stops it: a record that fails its checksum or does not decode,
//! or the torn tail of a segment a crash cut short, is skipped, counted and
//! logged, and reading resumes at the next intact record.
//!
//! At shutdown (every appender gone) the reader stops at the next chunk
//! boundary; what it has not read stays on disk for the next start.

use super::ack::AckLog;
use super::record::{self, Parsed};
use super::segment::{list_segments, segment_path, Position};
use super::stats::Stats;
use crate::IntakeSender;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;
use switchyard_core::{event_codec, AckBatch, Event};
use tokio::runtime::Handle;
use tokio::sync::watch;
use tracing::{error, warn};

/// Bytes read from a segment at a time (more when one record is larger).
const WINDOW: u64 = 1 << 20;

pub(crate) struct Reader {
    dir: PathBuf,
    durable: watch::Receiver<Position>,
    ack: Arc<AckLog>,
    stats: Arc<Stats>,
    intake: IntakeSender,
    /// Most events per chunk handed to the engine.
    chunk_events: usize,
    /// The first segment this run writes: those before it are an earlier
    /// run's.
    first_new: u64,
    /// The next byte to read.
    pos: Position,
    /// The current segment, opened on first use.
    file: Option<File>,
    /// Bytes of the current segment read ahead, starting at `win_base`.
    win: Vec<u8>,
    win_base: u64,
}

/// The next run of records: events to deliver and the bytes they (and any
/// skipped damage) occupy.
struct Chunk {
    events: Vec<Event>,
    bytes: u64,
}

impl Reader {
    pub(crate) fn new(
        dir: PathBuf,
        durable: watch::Receiver<Position>,
        ack: Arc<AckLog>,
        stats: Arc<Stats>,
        intake: IntakeSender,
        start: Position,
        first_new: u64,
    ) -> Self {
        Self {
            dir,
            durable,
            ack,
            stats,
            intake,
            chunk_events: 1000,
            first_new,
            pos: start,
            file: None,
            win: Vec::new(),
            win_base: 0,
        }
    }

    /// Read and hand over until shutdown. Runs on its own thread; `handle`
    /// drives the async steps.
    pub(crate) fn run(mut self, handle: Handle) {
        loop {
            // Every appender gone: stop; unread records wait for the next start.
            if self.durable.has_changed().is_err() {
                // A finished segment read to its end is passed first, so it
                // is deleted now rather than at the next start.
                let durable = *self.durable.borrow();
                if self.pos.segment < durable.segment
                    && self.segment_len().is_ok_and(|len| self.pos.offset >= len)
                {
                    self.next_segment(durable.segment);
                }
                return;
            }
            let durable = *self.durable.borrow_and_update();
            let complete = self.pos.segment < durable.segment;
            let limit = if complete {
                match self.segment_len() {
                    Ok(n) => n,
                    Err(e) => {
                        error!(segment = self.pos.segment, error = %e, "disk buffer: cannot read segment; skipping it");
                        0
                    }
                }
            } else {
                durable.offset
            };
            if self.pos.offset < limit {
                let chunk = match self.read_chunk(limit) {
                    Ok(c) => c,
                    Err(e) => {
                        error!(segment = self.pos.segment, error = %e, "disk buffer: read failed; skipping the rest of the segment");
                        let bytes = limit - self.pos.offset;
                        self.stats.add_corrupt(bytes);
                        self.pos.offset = limit;
                        Chunk {
                            events: Vec::new(),
                            bytes,
                        }
                    }
                };
                if !self.hand_over(&handle, chunk) {
                    return;
                }
            } else if complete {
                self.next_segment(durable.segment);
            } else if handle.block_on(self.durable.changed()).is_err() {
                return;
            }
        }
    }

    fn segment_len(&mut self) -> io::Result<u64> {
        Ok(self.file()?.metadata()?.len())
    }

    fn file(&mut self) -> io::Result<&File> {
        if self.file.is_none() {
            self.file = Some(File::open(segment_path(&self.dir, self.pos.segment))?);
            self.win.clear();
        }
        Ok(self.file.as_ref().expect("just opened"))
    }

    /// Move past a finished segment to the next one that exists.
    fn next_segment(&mut self, durable_segment: u64) {
        let next = list_segments(&self.dir)
            .ok()
            .and_then(|ids| ids.into_iter().find(|n| *n > self.pos.segment))
            .unwrap_or(durable_segment);
        self.pos = Position {
            segment: next,
            offset: 0,
        };
        self.file = None;
        self.win.clear();
        // Settled at once: passing it lets the finished segment be deleted.
        self.ack.push(self.pos, 0, true);
    }

    /// Make the window hold `[from, from + len)` of the current segment.
    fn fill(&mut self, from: u64, len: u64) -> io::Result<()> {
        let mut win = std::mem::take(&mut self.win);
        win.resize(len as usize, 0);
        let result = self.file()?.read_exact_at(&mut win, from);
        self.win = win;
        self.win_base = from;
        result
    }

    /// Read up to `chunk_events` records from the current position, stopping
    /// at `limit`.
    fn read_chunk(&mut self, limit: u64) -> io::Result<Chunk> {
        let start = self.pos.offset;
        let mut events = Vec::new();
        while events.len() < self.chunk_events && self.pos.offset < limit {
            let off = self.pos.offset;
            let win_end = self.win_base + self.win.len() as u64;
            if off < self.win_base || off >= win_end {
                self.fill(off, WINDOW.min(limit - off))?;
            }
            let rel = (off - self.win_base) as usize;
            let at_end = self.win_base + self.win.len() as u64 == limit;
            let parsed = record::parse(&self.win[rel..], at_end);
            match parsed {
                Parsed::Record { body, len } => {
                    match event_codec::decode(body) {
                        Ok(e) => events.push(e),
                        Err(e) => self.skipped(len as u64, &e.to_string()),
                    }
                    self.pos.offset += len as u64;
                }
                Parsed::NeedMore(n) => {
                    self.fill(off, (n as u64).max(WINDOW).min(limit - off))?;
                }
                Parsed::Corrupt => {
                    // Find the next intact record in the rest of the segment.
                    self.fill(off, limit - off)?;
                    let skip = record::resync(&self.win).unwrap_or(self.win.len());
                    self.skipped(skip as u64, "checksum, length or torn write");
                    self.pos.offset += skip as u64;
                }
            }
        }
        Ok(Chunk {
            events,
            bytes: self.pos.offset - start,
        })
    }

    fn skipped(&self, bytes: u64, why: &str) {
        self.stats.add_corrupt(bytes);
        warn!(
            segment = self.pos.segment,
            offset = self.pos.offset,
            bytes,
            reason = why,
            "disk buffer: skipped a damaged record"
        );
    }

    /// Give a chunk to the engine; false once the engine is gone.
    fn hand_over(&mut self, handle: &Handle, chunk: Chunk) -> bool {
        if chunk.events.is_empty() {
            self.ack.push(self.pos, chunk.bytes, true);
            return true;
        }
        let (batch, outcome) = AckBatch::new();
        let events: Vec<Event> = chunk
            .events
            .into_iter()
            .map(|e| e.with_ack(batch.token()))
            .collect();
        drop(batch);
        self.stats
            .add_read(events.len() as u64, self.pos.segment < self.first_new);
        let index = self.ack.push(self.pos, chunk.bytes, false);
        let ack = self.ack.clone();
        let intake = self.intake.clone();
        handle.block_on(async move {
            ack.watch(index, outcome);
            intake.send(events).await.is_ok()
        })
    }
}
