//! Work on rotated files, off the write path: compress them, then apply
//! retention. One background thread does both in order, so retention never
//! deletes a file while it is being compressed. With `retention.max_age` the
//! thread also sweeps every live file it has seen rotate, every quarter of
//! `max_age` (between 1 s and 60 s), so rotated files age out even when their
//! live file is never rotated again.

use super::clock::Clock;
use super::options::{Compression, Retention};
use super::rotation::apply_retention;
use std::collections::BTreeSet;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use time::OffsetDateTime;
use tracing::{debug, warn};

/// Rotations waiting for the thread. When it falls this far behind, a
/// rotated file is left uncompressed (it is still counted by retention).
const QUEUE: usize = 1024;

/// Most live files the age sweep remembers (the oldest-named are forgotten
/// first; they are swept again after their next rotation).
const SWEPT_FILES: usize = 10_000;

/// A file that was just rotated.
struct Job {
    rotated: PathBuf,
    live: PathBuf,
    at: OffsetDateTime,
}

/// Handle to the housekeeping thread.
pub struct Housekeeper {
    jobs: Option<SyncSender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl Housekeeper {
    /// Start the thread.
    pub fn start(
        compress: Compression,
        retention: Retention,
        clock: Arc<dyn Clock>,
    ) -> io::Result<Self> {
        let (tx, rx) = sync_channel(QUEUE);
        let thread = std::thread::Builder::new()
            .name("file-sink-housekeeping".into())
            .spawn(move || run(rx, compress, retention, clock))?;
        Ok(Self {
            jobs: Some(tx),
            thread: Some(thread),
        })
    }

    /// Hand over `rotated` (formerly `live`, rotated `at`); never blocks.
    pub fn rotated(&self, rotated: PathBuf, live: PathBuf, at: OffsetDateTime) {
        let Some(jobs) = &self.jobs else { return };
        if let Err(TrySendError::Full(job)) = jobs.try_send(Job { rotated, live, at }) {
            warn!(file = %job.rotated.display(), "file sink housekeeping is behind; rotated file left uncompressed");
        }
    }

    /// Finish the queued work and stop.
    pub fn finish(&mut self) {
        drop(self.jobs.take());
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                warn!("file sink housekeeping thread panicked");
            }
        }
    }
}

impl Drop for Housekeeper {
    fn drop(&mut self) {
        self.finish();
    }
}

fn run(jobs: Receiver<Job>, compress: Compression, retention: Retention, clock: Arc<dyn Clock>) {
    let sweep = retention
        .max_age
        .map(|age| (age / 4).clamp(Duration::from_secs(1), Duration::from_secs(60)));
    let mut live_files: BTreeSet<PathBuf> = BTreeSet::new();
    loop {
        let job = match sweep {
            None => match jobs.recv() {
                Ok(job) => job,
                Err(_) => return,
            },
            Some(every) => match jobs.recv_timeout(every) {
                Ok(job) => job,
                Err(RecvTimeoutError::Timeout) => {
                    let now = clock.now();
                    for live in &live_files {
                        retain(live, &retention, now);
                    }
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => return,
            },
        };
        if sweep.is_some() && live_files.insert(job.live.clone()) && live_files.len() > SWEPT_FILES
        {
            live_files.pop_first();
        }
        if let Some(suffix) = compress.suffix() {
            match compress_file(&job.rotated, compress, suffix) {
                Ok(to) => debug!(file = %to.display(), "rotated file compressed"),
                // Retention may have removed it already.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    warn!(file = %job.rotated.display(), error = %e, "cannot compress rotated file; left as is")
                }
            }
        }
        retain(&job.live, &retention, job.at);
    }
}

fn retain(live: &Path, retention: &Retention, now: OffsetDateTime) {
    match apply_retention(live, retention, now) {
        Ok(deleted) if !deleted.is_empty() => {
            debug!(count = deleted.len(), live = %live.display(), "retention deleted rotated files")
        }
        Ok(_) => {}
        Err(e) => warn!(live = %live.display(), error = %e, "retention failed"),
    }
}

/// Compress `path` into `path<suffix>` through a temporary name, synced
/// before the rename, then remove the original: a crash leaves either the
/// original or the complete compressed file.
fn compress_file(path: &Path, how: Compression, suffix: &str) -> io::Result<PathBuf> {
    let mut input = BufReader::new(File::open(path)?);
    let name = path.as_os_str().to_string_lossy();
    let target = PathBuf::from(format!("{name}{suffix}"));
    let partial = PathBuf::from(format!("{name}{suffix}.partial"));
    let out = BufWriter::new(File::create(&partial)?);
    let result = (|| {
        let file = match how {
            Compression::Gzip => {
                let mut enc = flate2::write::GzEncoder::new(out, flate2::Compression::default());
                io::copy(&mut input, &mut enc)?;
                enc.finish()?
            }
            Compression::Zstd => {
                let mut enc = zstd::stream::write::Encoder::new(out, 3)?;
                io::copy(&mut input, &mut enc)?;
                enc.finish()?
            }
            Compression::None => unreachable!("no suffix, no compression"),
        };
        let mut file = file.into_inner().map_err(|e| e.into_error())?;
        file.flush()?;
        file.sync_data()?;
        std::fs::rename(&partial, &target)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&partial);
        return Err(e);
    }
    std::fs::remove_file(path)?;
    Ok(target)
}
