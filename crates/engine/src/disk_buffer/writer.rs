//! Appending with group commit.
//!
//! Sources append chunks from many tasks; one writer thread takes every chunk
//! waiting at the start of a round, writes them in order and ends the round
//! with one `fdatasync` (the file sink's pattern). An append completes only
//! after the sync that covers it, so a source hears "accepted" only for
//! events that are on disk, while concurrent appends share the sync's cost.
//! The thread then publishes the durable end of the log for the reader.
//!
//! Segments roll at `segment_bytes` (a single chunk larger than that gets a
//! segment of its own). After a failed write the writer moves to a fresh
//! segment, so whatever half-written bytes the failure left are only ever
//! followed by the reader's skip-and-count, never by new records.

use super::budget::Budget;
use super::record;
use super::segment::{segment_path, sync_dir, Position};
use super::stats::Stats;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use switchyard_core::{Event, Fate};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tracing::error;

/// Largest amount one round writes before it syncs; bounds an append's wait.
const MAX_ROUND_BYTES: usize = 64 << 20;

struct Append {
    records: Vec<u8>,
    events: u64,
    done: oneshot::Sender<io::Result<()>>,
}

/// Why an append did not happen; the events are handed back.
pub(crate) enum AppendError {
    /// No room in the buffer within the wait.
    Full(Vec<Event>),
    /// The buffer's writer has stopped or failed.
    Failed(Vec<Event>),
}

/// The sources' end of a disk buffer. Cloneable; the writer thread stops once
/// every clone is gone.
#[derive(Clone)]
pub(crate) struct Appender {
    tx: mpsc::UnboundedSender<Append>,
    budget: Arc<Budget>,
}

impl Appender {
    /// Append `events` as records and wait until they are on disk; then they
    /// are the buffer's responsibility, so their sources' tokens are resolved
    /// as delivered. All or nothing: with no room before `wait` passes,
    /// nothing is written.
    pub(crate) async fn append(
        &self,
        events: Vec<Event>,
        wait: Option<Duration>,
    ) -> Result<(), AppendError> {
        let queued = self.queue(events, wait).await?;
        queued.settle().await
    }

    /// Like [`append`](Self::append), but return once the chunk is queued
    /// for the writer: the wait for the sync moves to a task of its own,
    /// which resolves the tokens as delivered after it — or leaves them
    /// unresolved (lost, so no source acknowledges them) if the write
    /// fails. A single caller appending chunk after chunk (a pipeline's
    /// router) then fills each group commit instead of paying one sync per
    /// chunk; the byte budget still makes it wait when the buffer is full.
    pub(crate) async fn append_pipelined(
        &self,
        events: Vec<Event>,
        wait: Option<Duration>,
    ) -> Result<(), AppendError> {
        let queued = self.queue(events, wait).await?;
        tokio::spawn(async move {
            // On failure the events are dropped unresolved; the error is
            // logged by `settle`.
            let _ = queued.settle().await;
        });
        Ok(())
    }

    /// Encode, take room from the budget, hand the records to the writer.
    async fn queue(
        &self,
        events: Vec<Event>,
        wait: Option<Duration>,
    ) -> Result<Queued, AppendError> {
        let deadline = wait.map(|w| Instant::now() + w);
        let mut records = Vec::with_capacity(events.len() * 192);
        for e in &events {
            record::encode(e, &mut records);
        }
        let bytes = records.len() as u64;
        if !self.budget.acquire(bytes, deadline).await {
            return Err(AppendError::Full(events));
        }
        let (done, result) = oneshot::channel();
        let request = Append {
            records,
            events: events.len() as u64,
            done,
        };
        let result = match self.tx.send(request) {
            Ok(()) => Some(result),
            Err(_) => None,
        };
        Ok(Queued {
            events,
            bytes,
            result,
            budget: self.budget.clone(),
        })
    }
}

/// A chunk handed to the writer, waiting for its sync.
struct Queued {
    events: Vec<Event>,
    bytes: u64,
    /// `None`: the writer had already stopped.
    result: Option<oneshot::Receiver<io::Result<()>>>,
    budget: Arc<Budget>,
}

impl Queued {
    async fn settle(self) -> Result<(), AppendError> {
        let written = match self.result {
            Some(result) => result.await.unwrap_or_else(|_| Err(stopped())),
            None => Err(stopped()),
        };
        match written {
            Ok(()) => {
                for mut e in self.events {
                    e.resolve(Fate::Delivered);
                }
                Ok(())
            }
            Err(e) => {
                error!(error = %e, "disk buffer append failed; the source is told nothing was accepted");
                // The bytes may be partly on disk; if the reader finds them it
                // delivers them (a duplicate for a retrying source) and
                // releases them again, which the budget tolerates.
                self.budget.release(self.bytes);
                Err(AppendError::Failed(self.events))
            }
        }
    }
}

fn stopped() -> io::Error {
    io::Error::other("the disk buffer's writer has stopped")
}

/// The writer thread's state: the segment being appended to.
pub(crate) struct Writer {
    dir: PathBuf,
    segment_bytes: u64,
    current: u64,
    file: File,
    len: u64,
    /// A write failed: start a new segment before the next one.
    roll_next: bool,
    durable: watch::Sender<Position>,
    stats: Arc<Stats>,
}

impl Writer {
    /// Create segment `first` (it must not exist) and publish its start as the
    /// durable end.
    pub(crate) fn create(
        dir: PathBuf,
        segment_bytes: u64,
        first: u64,
        durable: watch::Sender<Position>,
        stats: Arc<Stats>,
    ) -> io::Result<Self> {
        let file = new_segment(&dir, first)?;
        durable.send_replace(Position {
            segment: first,
            offset: 0,
        });
        Ok(Self {
            dir,
            segment_bytes,
            current: first,
            file,
            len: 0,
            roll_next: false,
            durable,
            stats,
        })
    }

    /// Start the thread; it returns the appenders' handle.
    pub(crate) fn spawn(self, budget: Arc<Budget>) -> io::Result<Appender> {
        let (tx, rx) = mpsc::unbounded_channel();
        std::thread::Builder::new()
            .name("disk-buffer-writer".into())
            .spawn(move || self.run(rx))?;
        Ok(Appender { tx, budget })
    }

    fn run(mut self, mut rx: mpsc::UnboundedReceiver<Append>) {
        while let Some(first) = rx.blocking_recv() {
            let mut round_bytes = first.records.len();
            let mut round = vec![first];
            while round_bytes < MAX_ROUND_BYTES {
                let Ok(next) = rx.try_recv() else { break };
                round_bytes += next.records.len();
                round.push(next);
            }
            let result = self.write_round(&round);
            if let Err(e) = &result {
                error!(dir = %self.dir.display(), error = %e, "disk buffer write failed");
                self.roll_next = true;
            } else {
                let events: u64 = round.iter().map(|a| a.events).sum();
                self.stats.add_written(events);
                self.durable.send_replace(Position {
                    segment: self.current,
                    offset: self.len,
                });
            }
            for a in round {
                let r = match &result {
                    Ok(()) => Ok(()),
                    Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
                };
                let _ = a.done.send(r); // the source may have given up waiting
            }
        }
        // Dropping `durable` tells the reader that no more records will come.
    }

    fn write_round(&mut self, round: &[Append]) -> io::Result<()> {
        for a in round {
            let n = a.records.len() as u64;
            if self.roll_next || (self.len > 0 && self.len + n > self.segment_bytes) {
                self.roll()?;
            }
            self.file.write_all(&a.records)?;
            self.len += n;
        }
        self.file.sync_data()
    }

    /// Close the current segment durably and open the next one.
    fn roll(&mut self) -> io::Result<()> {
        if !self.roll_next {
            self.file.sync_data()?;
        }
        let next = self.current + 1;
        self.file = new_segment(&self.dir, next)?;
        self.current = next;
        self.len = 0;
        self.roll_next = false;
        Ok(())
    }
}

fn new_segment(dir: &std::path::Path, n: u64) -> io::Result<File> {
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(segment_path(dir, n))?;
    sync_dir(dir)?;
    Ok(file)
}
