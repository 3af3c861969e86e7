//! A disk buffer in front of the engine: an event is accepted from its source
//! only once it is on disk, survives a crash of the process (`kill -9`), and is
//! delivered after a restart.
//!
//! ```text
//!  sources ─▶ Appender ─▶ writer thread ─▶ segment files ─▶ reader thread ─▶ intake ─▶ engine
//!              (budget)   (group fdatasync)                  (skip damage)        │
//!                 ▲                                                               │
//!                 └──── bytes back ◀── AckLog (pointer file, deletes segments) ◀──┘
//! ```
//!
//! Delivery is at-least-once: the pointer moves only over events whose fate
//! is final, so after a crash every event that was not yet acknowledged is
//! delivered again — including some that the sink already had (duplicates,
//! never losses).
//!
//! # Layout
//! - [`record`]: one record's bytes (magic, length, CRC, event) and resync.
//! - [`segment`]: file names, positions, the acknowledgement pointer file.
//! - [`budget`]: the bound in bytes and the writers' wait for room.
//! - [`writer`]: appends with group commit; publishes the durable end.
//! - [`reader`]: reads records back into the engine's intake.
//! - [`ack`]: the contiguous settled prefix; persists the pointer.
//! - [`stats`]: the counters shown in `/stats`.

mod ack;
mod budget;
mod reader;
mod record;
mod segment;
mod stats;
mod writer;

pub use segment::Position;
pub use stats::StatsSnapshot;

use crate::IntakeSender;
use ack::AckLog;
use budget::Budget;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tracing::{info, warn};
pub(crate) use writer::{AppendError, Appender};

/// Where and how big.
#[derive(Debug, Clone)]
pub struct DiskBufferConfig {
    /// Directory of the segment files and the pointer; created if missing.
    /// One buffer per directory: two processes must not share it.
    pub dir: PathBuf,
    /// Bound on bytes written and not yet acknowledged. A full buffer makes
    /// sources wait (backpressure).
    pub max_bytes: u64,
    /// Size at which a segment is closed and the next one started.
    pub segment_bytes: u64,
}

impl DiskBufferConfig {
    /// A buffer in `dir` of at most `max_bytes`, with segments of an eighth of
    /// that (between 1 and 64 MiB), so acknowledged space is given back to
    /// the file system in steps.
    pub fn new(dir: impl Into<PathBuf>, max_bytes: u64) -> Self {
        Self {
            dir: dir.into(),
            max_bytes,
            segment_bytes: (max_bytes / 8).clamp(1 << 20, 64 << 20),
        }
    }
}

/// Why a disk buffer did not open.
#[derive(Debug, thiserror::Error)]
#[error("cannot open disk buffer in `{dir}`: {source} — check --buffer-dir")]
pub struct OpenError {
    dir: String,
    #[source]
    source: io::Error,
}

/// Take the directory's lock file. Two processes appending to and
/// acknowledging one log would corrupt each other's pointer, so the second
/// one is refused (the lock goes with the process, even on `kill -9`).
fn lock_dir(dir: &std::path::Path) -> io::Result<std::fs::File> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("lock"))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(io::Error::other(
            "another process is using this directory (its `lock` file is held); give each dispatcher or sink its own directory",
        )),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}

/// An opened disk buffer, not yet connected to the engine.
pub struct DiskBuffer {
    /// Held (locked) for as long as the buffer runs: one process per
    /// directory.
    lock: std::fs::File,
    config: DiskBufferConfig,
    start: Position,
    next_segment: u64,
    budget: Arc<Budget>,
    stats: Arc<stats::Stats>,
}

impl DiskBuffer {
    /// Open (or create) the buffer: read the pointer, drop segments wholly
    /// before it, and count the bytes still to deliver. Writing starts in a
    /// new segment, so a torn tail left by a crash is only ever read past
    /// (skipped and counted), never appended to.
    pub fn open(config: DiskBufferConfig) -> Result<Self, OpenError> {
        let err = |source| OpenError {
            dir: config.dir.display().to_string(),
            source,
        };
        std::fs::create_dir_all(&config.dir).map_err(err)?;
        let lock = lock_dir(&config.dir).map_err(err)?;
        let pointer = match segment::read_ack(&config.dir) {
            Ok(p) => p.unwrap_or_default(),
            Err(e) => {
                warn!(dir = %config.dir.display(), error = %e, "disk buffer: acknowledgement pointer unreadable; reading from the oldest segment (duplicates possible)");
                Position::default()
            }
        };
        let ids = segment::list_segments(&config.dir).map_err(err)?;
        let mut used = 0;
        let mut start = None;
        for &n in &ids {
            let path = segment::segment_path(&config.dir, n);
            if n < pointer.segment {
                std::fs::remove_file(&path).map_err(err)?;
                continue;
            }
            let len = std::fs::metadata(&path).map_err(err)?.len();
            let from = if n == pointer.segment {
                pointer.offset.min(len)
            } else {
                0
            };
            start.get_or_insert(Position {
                segment: n,
                offset: from,
            });
            used += len - from;
        }
        // Past every segment there was and the pointer's: a fresh file, so a
        // torn tail is never appended to.
        let next_segment = ids
            .last()
            .map_or(pointer.segment, |n| n + 1)
            .max(pointer.segment);
        let start = start.unwrap_or(Position {
            segment: next_segment,
            offset: 0,
        });
        if used > 0 {
            info!(dir = %config.dir.display(), bytes = used, "disk buffer: delivering what an earlier run left");
        }
        Ok(Self {
            lock,
            budget: Arc::new(Budget::new(config.max_bytes, used)),
            stats: Arc::default(),
            config,
            start,
            next_segment,
        })
    }

    /// Connect the buffer to the engine's intake: start the writer and the
    /// reader threads and the pointer task. Returns the sources' sender
    /// (appends to disk; `room`/`capacity` still report the intake queue)
    /// and the handle to stop with. Needs a running tokio runtime.
    pub fn start(self, intake: IntakeSender) -> io::Result<(IntakeSender, DiskBufferHandle)> {
        let dir = self.config.dir.clone();
        let (durable_tx, durable_rx) = watch::channel(self.start);
        let writer = writer::Writer::create(
            dir.clone(),
            self.config.segment_bytes,
            self.next_segment,
            durable_tx,
            self.stats.clone(),
        )?;
        let appender = writer.spawn(self.budget.clone())?;
        let oldest = self.start.segment;
        let ack = Arc::new(AckLog::new(
            dir.clone(),
            self.start,
            oldest,
            self.budget.clone(),
        ));
        let persister = tokio::spawn(ack.clone().persist_loop());
        let reader = reader::Reader::new(
            dir,
            durable_rx,
            ack.clone(),
            self.stats.clone(),
            intake.clone(),
            self.start,
            self.next_segment,
        );
        let handle = tokio::runtime::Handle::current();
        let reader = std::thread::Builder::new()
            .name("disk-buffer-reader".into())
            .spawn(move || reader.run(handle))?;
        let sources = intake.with_disk(appender);
        Ok((
            sources,
            DiskBufferHandle {
                _lock: self.lock,
                reader,
                persister,
                ack,
                budget: self.budget,
                stats: self.stats,
            },
        ))
    }
}

/// A running disk buffer's stats and shutdown.
pub struct DiskBufferHandle {
    _lock: std::fs::File,
    reader: std::thread::JoinHandle<()>,
    persister: tokio::task::JoinHandle<()>,
    ack: Arc<AckLog>,
    budget: Arc<Budget>,
    stats: Arc<stats::Stats>,
}

impl DiskBufferHandle {
    /// A function that reads the counters at any time (for `/stats`).
    pub fn stats_fn(&self) -> impl Fn() -> StatsSnapshot + Send + Sync + 'static {
        let (stats, budget) = (self.stats.clone(), self.budget.clone());
        move || stats.snapshot(budget.used(), budget.max())
    }

    /// Finish after every source sender is dropped and the engine has
    /// drained: wait (up to `wait`) for the outstanding acknowledgements,
    /// persist the pointer one last time, and return the final counters.
    pub async fn finish(self, wait: Duration) -> StatsSnapshot {
        let reader = self.reader;
        let _ = tokio::task::spawn_blocking(move || reader.join()).await;
        if tokio::time::timeout(wait, self.ack.idle()).await.is_err() {
            warn!("disk buffer: some acknowledgements did not arrive; their events are delivered again at the next start");
        }
        self.persister.abort();
        let ack = self.ack.clone();
        match tokio::task::spawn_blocking(move || ack.persist()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                warn!(error = %e, "disk buffer: cannot persist the final pointer; some events are delivered again at the next start")
            }
            Err(e) => warn!(error = %e, "disk buffer: final pointer task failed"),
        }
        self.stats.snapshot(self.budget.used(), self.budget.max())
    }
}
