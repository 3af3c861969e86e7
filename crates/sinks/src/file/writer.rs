//! The writer thread: appends batches in the order they arrive, keeps a
//! bounded set of files open, rotates them, and ends each round with one
//! `fdatasync` per file written in it (group commit). A batch is reported
//! written only after the sync that covers it.
//!
//! After a sync, the file's synced bytes older than `keep_cached` are
//! dropped from the page cache (`POSIX_FADV_DONTNEED`; they are clean, so
//! this writes nothing). An append-only file otherwise takes a fresh page of
//! memory for every 4 KiB it grows, and keeps it until memory runs short.
//! Dropping them lets the next writes reuse the same few pages: on a VM whose
//! host takes back free guest memory, a never-touched page costs a fault on
//! the host, and the page-cache copy of 660 MB of lines took 1.1–1.7 s of
//! system time on fresh pages against 0.3–0.4 s on reused ones.
//!
//! With `direct=true` whole blocks skip the page cache altogether (see
//! [`direct`](super::direct)); only a file that fell back to buffered
//! appends gets the advice above.

use super::clock::Clock;
use super::direct::DirectFile;
use super::housekeeping::Housekeeper;
use super::lines::{Lines, Spare};
use super::options::{FileSettings, Rotation, Target};
use super::placement::Placement;
use super::rotation::{due, rotate, slot};
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::num::NonZeroU64;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn};

/// Why one part of a batch was not written.
#[derive(Debug, Clone)]
pub struct PartError {
    /// Writing it again cannot succeed (the path is refused).
    pub permanent: bool,
    /// What failed, on which file.
    pub message: String,
}

/// The bytes of one batch bound for one file.
pub struct Part {
    /// The file: relative to the base directory with a template, else the
    /// configured path.
    pub path: PathBuf,
    /// Encoded lines.
    pub lines: Lines,
}

/// What the writer thread is asked to do.
pub enum Command {
    /// Write a batch and report one result per part.
    Write {
        /// The batch, by file.
        parts: Vec<Part>,
        /// Where the outcome goes.
        done: oneshot::Sender<Vec<Result<(), PartError>>>,
    },
    /// Time passed: close idle files, rotate files whose interval ended.
    Sweep,
}

/// How an open file is appended to.
enum Output {
    /// `O_APPEND` through the page cache.
    Append(File),
    /// Whole blocks with `O_DIRECT` (`direct=true`).
    Direct(DirectFile),
}

impl Output {
    fn append(&mut self, lines: &mut Lines, path: &Path) -> io::Result<()> {
        match self {
            Output::Append(f) => f.write_all(lines.bytes()),
            Output::Direct(d) => {
                if let Some(e) = d.append(lines)? {
                    warn!(file = %path.display(), error = %e, "the file system refused a direct write; appending through the page cache from now on");
                }
                Ok(())
            }
        }
    }

    fn file(&self) -> &File {
        match self {
            Output::Append(f) => f,
            Output::Direct(d) => d.file(),
        }
    }

    /// Where the next append starts within a block, for direct appends.
    fn tail_len(&self) -> Option<usize> {
        match self {
            Output::Direct(d) if d.is_direct() => Some(d.tail_len()),
            _ => None,
        }
    }

    /// Direct appends of this file that copied their lines.
    fn copied_appends(&self) -> u64 {
        match self {
            Output::Append(_) => 0,
            Output::Direct(d) => d.copied_appends(),
        }
    }

    /// Whether appends still go through the page cache.
    fn cached(&self) -> bool {
        match self {
            Output::Append(_) => true,
            Output::Direct(d) => !d.is_direct(),
        }
    }
}

/// One open file.
struct OpenFile {
    out: Output,
    size: u64,
    slot: i64,
    last_write: OffsetDateTime,
    dirty: bool,
    /// Bytes below this offset were dropped from the page cache.
    uncached: u64,
}

/// Drop cached pages in runs of at least this many bytes: one system call
/// per 4 MiB written, not one per batch.
const UNCACHE_STEP: u64 = 4 << 20;

/// Advise the kernel that `len` bytes of `file` from `offset` are not needed
/// in the page cache.
#[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
fn drop_cached(file: &File, offset: u64, len: NonZeroU64) -> io::Result<()> {
    rustix::fs::fadvise(file, offset, Some(len), rustix::fs::Advice::DontNeed).map_err(Into::into)
}

/// Where the advice does not exist, pages stay as the kernel keeps them.
#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
fn drop_cached(_file: &File, _offset: u64, _len: NonZeroU64) -> io::Result<()> {
    Ok(())
}

/// The writer's state; lives on its thread.
pub struct Writer {
    base: Option<PathBuf>,
    sync: bool,
    rotation: Rotation,
    idle_timeout: Option<Duration>,
    max_open: usize,
    keep_cached: Option<u64>,
    direct: bool,
    clock: Arc<dyn Clock>,
    open: HashMap<PathBuf, OpenFile>,
    open_count: Arc<AtomicUsize>,
    /// Where the writer is in the file, for laying out the sink's next
    /// batches ([`Lines::after_partial_block`]).
    placement: Arc<Placement>,
    /// Where the buffers of written batches go back to the sink.
    spare: Arc<Spare>,
    /// Files whose sync failed in the current round.
    failed_syncs: HashMap<PathBuf, String>,
    housekeeper: Option<Housekeeper>,
}

impl Writer {
    /// Prepare a writer; with a single file, open it now so a bad path fails
    /// at start-up.
    pub fn new(
        options: &FileSettings,
        clock: Arc<dyn Clock>,
        open_count: Arc<AtomicUsize>,
        placement: Arc<Placement>,
        spare: Arc<Spare>,
    ) -> Result<Self, String> {
        let base = match &options.target {
            Target::Single(_) => None,
            Target::Templated { base, .. } => {
                std::fs::create_dir_all(base).map_err(|e| {
                    format!(
                        "cannot create base directory `{}`: {e} — check `base_dir`",
                        base.display()
                    )
                })?;
                Some(base.canonicalize().map_err(|e| {
                    format!(
                        "cannot resolve base directory `{}`: {e} — check `base_dir`",
                        base.display()
                    )
                })?)
            }
        };
        let needs_housekeeping = options.compress.suffix().is_some()
            || options.retention.max_files.is_some()
            || options.retention.max_age.is_some();
        let housekeeper = needs_housekeeping
            .then(|| Housekeeper::start(options.compress, options.retention, clock.clone()))
            .transpose()
            .map_err(|e| format!("cannot start the file sink housekeeping thread: {e}"))?;
        let mut writer = Self {
            base,
            sync: options.sync,
            rotation: options.rotation,
            idle_timeout: options.idle_timeout,
            max_open: options.max_open_files,
            keep_cached: options.keep_cached,
            direct: options.direct,
            clock,
            open: HashMap::new(),
            open_count,
            placement,
            spare,
            failed_syncs: HashMap::new(),
            housekeeper,
        };
        if let Target::Single(path) = &options.target {
            let now = writer.clock.now();
            writer
                .open_file(path, now)
                .map_err(|e| format!("{} — check --endpoint", e.message))?;
        }
        Ok(writer)
    }

    /// Serve commands until every sender is gone, then close every file.
    pub fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        while let Some(first) = commands.blocking_recv() {
            let mut round = vec![first];
            while let Ok(more) = commands.try_recv() {
                round.push(more);
            }
            self.round(round);
        }
        let paths: Vec<PathBuf> = self.open.keys().cloned().collect();
        for path in paths {
            self.close(&path);
        }
        if let Some(mut h) = self.housekeeper.take() {
            h.finish();
        }
    }

    fn round(&mut self, round: Vec<Command>) {
        let mut written = Vec::new();
        let mut sweep = false;
        for command in round {
            match command {
                Command::Write { mut parts, done } => {
                    let results: Vec<_> = parts
                        .iter_mut()
                        .map(|p| {
                            let copies = |w: &Self| {
                                w.open.get(&p.path).map_or(0, |f| f.out.copied_appends())
                            };
                            let before = copies(self);
                            let result = self.write(&p.path, &mut p.lines);
                            let tail = self.open.get(&p.path).and_then(|f| f.out.tail_len());
                            let copied = copies(self) > before;
                            self.placement.took(p.lines.len(), tail, copied);
                            result
                        })
                        .collect();
                    written.push((parts, results, done));
                }
                Command::Sweep => sweep = true,
            }
        }
        // Group commit: one sync per file written in this round.
        let dirty: Vec<PathBuf> = self
            .open
            .iter()
            .filter(|(_, f)| f.dirty)
            .map(|(p, _)| p.clone())
            .collect();
        for path in dirty {
            self.sync_file(&path);
        }
        self.open_count.store(self.open.len(), Relaxed);
        for (parts, results, done) in written {
            let outcome = parts
                .iter()
                .zip(results)
                .map(|(part, result)| {
                    result?;
                    match self.failed_syncs.get(&part.path) {
                        Some(message) => Err(PartError {
                            permanent: false,
                            message: message.clone(),
                        }),
                        None => Ok(()),
                    }
                })
                .collect();
            let _ = done.send(outcome);
            for part in parts {
                self.spare.keep(part.lines);
            }
        }
        if sweep {
            self.sweep();
        }
        self.failed_syncs.clear();
        self.open_count.store(self.open.len(), Relaxed);
    }

    fn full_path(&self, path: &Path) -> PathBuf {
        match &self.base {
            Some(base) => base.join(path),
            None => path.to_owned(),
        }
    }

    fn write(&mut self, path: &Path, lines: &mut Lines) -> Result<(), PartError> {
        let now = self.clock.now();
        if !self.open.contains_key(path) {
            self.open_file(path, now)?;
        }
        let rotation = self.rotation;
        let needs_rotation = self
            .open
            .get(path)
            .is_some_and(|f| due(&rotation, f.size, f.slot, lines.len() as u64, now));
        if needs_rotation {
            self.rotate(path, now);
            self.open_file(path, now)?;
        }
        let sync = self.sync;
        let Some(f) = self.open.get_mut(path) else {
            return Err(PartError {
                permanent: false,
                message: format!("cannot write `{}`: it is not open", path.display()),
            });
        };
        let result = f.out.append(lines, path);
        f.last_write = now;
        f.dirty |= sync;
        match result {
            Ok(()) => {
                f.size += lines.len() as u64;
                Ok(())
            }
            Err(e) => {
                // The file may hold part of the batch; start afresh next time.
                self.close(path);
                Err(PartError {
                    permanent: false,
                    message: format!("cannot write `{}`: {e}", self.full_path(path).display()),
                })
            }
        }
    }

    fn open_file(&mut self, path: &Path, now: OffsetDateTime) -> Result<(), PartError> {
        while self.open.len() >= self.max_open {
            let Some(oldest) = self
                .open
                .iter()
                .min_by_key(|(_, f)| f.last_write)
                .map(|(p, _)| p.clone())
            else {
                break;
            };
            self.close(&oldest);
        }
        let full = self.full_path(path);
        let transient = |what: &str, e: io::Error| PartError {
            permanent: false,
            message: format!("cannot {what} `{}`: {e}", full.display()),
        };
        if let Some(dir) = full.parent().filter(|d| !d.as_os_str().is_empty()) {
            match &self.base {
                // Checked level by level before each is made, so nothing is
                // created beyond a link that leaves the base.
                Some(base) => {
                    create_inside(base, dir, &full)?;
                    self.check_inside(base, dir, &full)?;
                }
                None => std::fs::create_dir_all(dir)
                    .map_err(|e| transient("create the directory of", e))?,
            }
        }
        let out = if self.direct {
            let (file, refused) =
                DirectFile::open(&full).map_err(|e| transient("open for append", e))?;
            if let Some(e) = refused {
                warn!(file = %full.display(), error = %e, "the file system refused direct writes; appending through the page cache");
            }
            Output::Direct(file)
        } else {
            Output::Append(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&full)
                    .map_err(|e| transient("open for append", e))?,
            )
        };
        let meta = out
            .file()
            .metadata()
            .map_err(|e| transient("read the size of", e))?;
        if let Some(tail) = out.tail_len() {
            self.placement.opened(tail);
        }
        let interval = self.rotation.interval.unwrap_or(Duration::from_secs(1));
        // A file kept from an earlier run belongs to the interval it was
        // last written in, so a restart rotates it if that interval is over.
        let started = match meta.modified() {
            Ok(t) if meta.len() > 0 => OffsetDateTime::from(t),
            _ => now,
        };
        self.open.insert(
            path.to_owned(),
            OpenFile {
                out,
                size: meta.len(),
                slot: slot(started, interval),
                last_write: now,
                dirty: false,
                uncached: 0,
            },
        );
        Ok(())
    }

    /// Refuse a file whose directory resolves (through a symbolic link)
    /// outside the base directory, or which is itself a symbolic link.
    fn check_inside(&self, base: &Path, dir: &Path, full: &Path) -> Result<(), PartError> {
        let refuse = |why: &str| PartError {
            permanent: true,
            message: format!("refused to write `{}`: {why}", full.display()),
        };
        let real = dir
            .canonicalize()
            .map_err(|e| refuse(&format!("cannot resolve its directory: {e}")))?;
        if !real.starts_with(base) {
            return Err(refuse(
                "its directory leaves the base directory through a symbolic link",
            ));
        }
        if std::fs::symlink_metadata(full).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(refuse("it is a symbolic link"));
        }
        Ok(())
    }

    fn sync_file(&mut self, path: &Path) {
        let Some(f) = self.open.get_mut(path) else {
            return;
        };
        f.dirty = false;
        if let Err(e) = f.out.file().sync_data() {
            let message = format!("cannot sync `{}`: {e}", self.full_path(path).display());
            self.failed_syncs.insert(path.to_owned(), message);
            return;
        }
        let Some(keep) = self.keep_cached.filter(|_| f.out.cached()) else {
            return;
        };
        // Everything up to `size` is on disk now; `uncached..end` is clean.
        let end = f.size.saturating_sub(keep);
        if let Some(len) =
            NonZeroU64::new(end.saturating_sub(f.uncached)).filter(|len| len.get() >= UNCACHE_STEP)
        {
            // Advice only: if the kernel refuses, the pages stay cached.
            if let Err(e) = drop_cached(f.out.file(), f.uncached, len) {
                debug!(file = %path.display(), error = %e, "cannot drop synced pages from the page cache");
            }
            f.uncached = end;
        }
    }

    /// Close a file, syncing what this round wrote to it first.
    fn close(&mut self, path: &Path) {
        if self.open.get(path).is_some_and(|f| f.dirty) {
            self.sync_file(path);
        }
        if self.open.remove(path).is_some() {
            debug!(file = %path.display(), "file sink closed a file");
        }
    }

    fn rotate(&mut self, path: &Path, now: OffsetDateTime) {
        self.close(path);
        let live = self.full_path(path);
        match rotate(&live, now) {
            Ok(rotated) => {
                debug!(file = %rotated.display(), "file sink rotated a file");
                if let Some(h) = &self.housekeeper {
                    h.rotated(rotated, live, now);
                }
            }
            // Keep appending to the live file rather than lose events.
            Err(e) => {
                warn!(file = %live.display(), error = %e, "cannot rotate file; still appending to it")
            }
        }
    }

    /// Close files idle for `idle_timeout`; rotate files whose interval is
    /// over even if nothing new arrives for them.
    fn sweep(&mut self) {
        let now = self.clock.now();
        let mut to_rotate = Vec::new();
        let mut to_close = Vec::new();
        for (path, f) in &self.open {
            if self
                .rotation
                .interval
                .is_some_and(|i| f.size > 0 && slot(now, i) != f.slot)
            {
                to_rotate.push(path.clone());
            } else if self
                .idle_timeout
                .is_some_and(|idle| now - f.last_write >= idle)
            {
                to_close.push(path.clone());
            }
        }
        for path in to_rotate {
            self.rotate(&path, now);
        }
        for path in to_close {
            self.close(&path);
        }
    }
}

/// Make `dir` (at or below the canonical `base`) one level at a time. Each
/// level that exists already must resolve inside `base` before anything is
/// made beneath it: a symbolic link that leaves the base is refused with no
/// directory created on its far side.
fn create_inside(base: &Path, dir: &Path, full: &Path) -> Result<(), PartError> {
    let refuse = |why: String| PartError {
        permanent: true,
        message: format!("refused to write `{}`: {why}", full.display()),
    };
    let rel = dir
        .strip_prefix(base)
        .map_err(|_| refuse("its directory is not inside the base directory".into()))?;
    let mut at = base.to_path_buf();
    for part in rel.components() {
        let std::path::Component::Normal(part) = part else {
            return Err(refuse(
                "its directory is not a plain path below the base".into(),
            ));
        };
        at.push(part);
        match std::fs::symlink_metadata(&at) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let real = at
                    .canonicalize()
                    .map_err(|e| refuse(format!("cannot resolve `{}`: {e}", at.display())))?;
                if !real.starts_with(base) {
                    return Err(refuse(
                        "its directory leaves the base directory through a symbolic link".into(),
                    ));
                }
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => match std::fs::create_dir(&at) {
                Ok(()) => {}
                // Made meanwhile by someone else: checked by the next level
                // or by `check_inside`.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => {
                    return Err(PartError {
                        permanent: false,
                        message: format!("cannot create the directory `{}`: {e}", at.display()),
                    })
                }
            },
            Err(e) => {
                return Err(PartError {
                    permanent: false,
                    message: format!("cannot read `{}`: {e}", at.display()),
                })
            }
        }
    }
    Ok(())
}
