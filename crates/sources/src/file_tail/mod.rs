//! The file tail source: follows files matched by glob patterns and turns
//! each line into a log record.
//!
//! - **No loss, no re-reading.** Positions are checkpointed per file identity
//!   (device + inode) in a state directory, and a position only moves past a
//!   line once the engine reported that line's fate final (delivered,
//!   filtered, or given up on and counted). A line lost in flight (unresolved)
//!   keeps the position before it, so a restart reads it again.
//! - **Rotation.** By rename: the renamed file is read to its end through the
//!   open handle (and, if the patterns still match its new name, keeps its
//!   position under that name) while the new file is read from its start. By
//!   copy-truncate: a file that shrinks below the read position is read again
//!   from its start. A file whose name is gone stays open for `rotate_wait`
//!   after its last new line, for a writer still finishing in it.
//! - **Partial lines** wait for their newline, and are sent as they are once
//!   they have waited `partial_line_timeout`. Lines longer than
//!   `max_line_bytes` are split. Blank lines are skipped.
//! - **Multiline events** (optional): with a start pattern, a matching line
//!   begins an event and the lines after it that do not match are joined to
//!   it with `\n`; the last event waits like a partial line. See
//!   [`multiline`](MultilineConfig).
//! - Files present at start without a checkpoint are read from their start
//!   (`ReadFrom::Head`) or only for new lines (`ReadFrom::Tail`); files that
//!   appear later are always read from their start.
//!
//! Reading runs on its own thread and feeds the intake queue with
//! backpressure: a full pipeline slows reading, it never drops lines.

mod checkpoint;
mod multiline;
mod reader;
pub mod source;

pub use checkpoint::{Checkpoints, FileId};
pub use multiline::MultilineConfig;

use multiline::Multiline;
use reader::TailedFile;
use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use switchyard_core::backoff::Backoff;
use switchyard_core::{AckBatch, Event, LogRecord, Payload};
use switchyard_engine::supervise::{panic_message, TaskHealth, FIRST_RESTART_DELAY, STABLE_AFTER};
use switchyard_engine::IntakeSender;
use tracing::{error, info, warn};

/// Where to start in a file that has no checkpoint yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadFrom {
    /// From its first byte.
    #[default]
    Head,
    /// From its end: only lines written from now on.
    Tail,
}

/// Settings of one tail source.
#[derive(Debug, Clone)]
pub struct TailConfig {
    /// Glob patterns of the files to follow (`/var/log/app/*.log`).
    pub include: Vec<String>,
    /// Start of files without a checkpoint that exist at start-up.
    pub read_from: ReadFrom,
    /// Directory of the checkpoint document.
    pub state_dir: PathBuf,
    /// Pause between looks when nothing new was read.
    pub poll_interval: Duration,
    /// How long a line without its newline waits before it is sent as is.
    pub partial_line_timeout: Duration,
    /// Longest line; longer ones are split.
    pub max_line_bytes: usize,
    /// Read lines that are JSON objects as structured records.
    pub parse_json: bool,
    /// Join continuation lines to the line that starts their event.
    pub multiline: Option<MultilineConfig>,
    /// Lines per chunk handed to the intake queue.
    pub chunk_lines: usize,
    /// Bytes read from one file per round, so one busy file does not starve
    /// the others.
    pub read_budget: usize,
    /// How long a file stays open after its name disappeared (renamed away or
    /// deleted), for a writer still finishing its last lines in it.
    pub rotate_wait: Duration,
    /// How often changed positions are written to disk.
    pub checkpoint_interval: Duration,
    /// At stop, how long to wait for lines in flight to be confirmed.
    pub drain_timeout: Duration,
}

impl TailConfig {
    /// Defaults for following `include` with state in `state_dir`.
    pub fn new(include: Vec<String>, state_dir: PathBuf) -> Self {
        Self {
            include,
            read_from: ReadFrom::Head,
            state_dir,
            poll_interval: Duration::from_millis(250),
            partial_line_timeout: Duration::from_secs(1),
            max_line_bytes: 64 * 1024,
            parse_json: false,
            multiline: None,
            chunk_lines: 1000,
            read_budget: 512 * 1024,
            rotate_wait: Duration::from_secs(5),
            checkpoint_interval: Duration::from_secs(1),
            drain_timeout: Duration::from_secs(10),
        }
    }

    /// Check the settings as starting the source would, without starting
    /// it: the errors name the setting at fault.
    pub fn check(&self) -> Result<(), String> {
        self.validate().map(drop)
    }

    fn validate(&self) -> Result<Option<Multiline>, String> {
        if self.include.is_empty() {
            return Err("file tail: `include` needs at least one glob pattern".into());
        }
        for p in &self.include {
            glob::Pattern::new(p)
                .map_err(|e| format!("file tail: `include` pattern `{p}` is invalid: {e}"))?;
        }
        let positive = [
            ("max_line_bytes", self.max_line_bytes),
            ("chunk_lines", self.chunk_lines),
            ("read_budget", self.read_budget),
        ];
        for (key, v) in positive {
            if v == 0 {
                return Err(format!("file tail: `{key}` must be greater than 0"));
            }
        }
        self.multiline
            .as_ref()
            .map(MultilineConfig::build)
            .transpose()
    }
}

/// What a tail source has done.
#[derive(Debug, Default)]
pub struct TailCounters {
    /// Lines sent to the pipeline.
    pub lines: AtomicU64,
    /// Files opened.
    pub files_opened: AtomicU64,
    /// Files found shorter than their read position and read again.
    pub truncations: AtomicU64,
    /// Lines that looked like JSON objects but were not valid records (sent
    /// as plain messages).
    pub json_errors: AtomicU64,
    /// Errors reading files or writing checkpoints.
    pub io_errors: AtomicU64,
    /// Multiline events cut at `max_lines` or `max_bytes`.
    pub multiline_cut: AtomicU64,
    /// Times reading failed (a panic) and started again.
    pub restarts: AtomicU64,
}

impl TailCounters {
    /// What the tail lost, by reason (the `reason` label of
    /// `dispatcher_component_discarded_events_total`). Long single lines are
    /// split, not cut, so they lose nothing.
    pub fn discards(&self) -> Vec<(&'static str, u64)> {
        vec![("multiline_cut", self.multiline_cut.load(Relaxed))]
    }
}

/// A running tail source.
pub struct TailSource {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    counters: Arc<TailCounters>,
}

impl TailSource {
    /// Check the settings, load the checkpoints and start following. Lines go
    /// to `intake`; `runtime` is the runtime the engine runs on.
    pub fn spawn(
        config: TailConfig,
        intake: IntakeSender,
        runtime: tokio::runtime::Handle,
    ) -> Result<Self, String> {
        Self::spawn_supervised(config, intake, runtime, None)
    }

    /// As [`TailSource::spawn`], reporting on `health`: should reading
    /// panic, the failure is logged and counted there, the source is down
    /// for a backoff, then reads on from the files and positions it had.
    pub fn spawn_supervised(
        config: TailConfig,
        intake: IntakeSender,
        runtime: tokio::runtime::Handle,
        health: Option<Arc<TaskHealth>>,
    ) -> Result<Self, String> {
        let multiline = config.validate()?;
        let checkpoints = Checkpoints::load(&config.state_dir)?;
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(TailCounters::default());
        let parser = LineParser {
            parse_json: config.parse_json,
            multiline: multiline.is_some(),
            counters: counters.clone(),
        };
        let mut tail = Tail {
            parser,
            multiline,
            config,
            intake: Some(intake),
            runtime,
            checkpoints,
            files: HashMap::new(),
            counters: counters.clone(),
            stop: stop.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("file-tail".into())
            .spawn(move || tail.run_supervised(health))
            .map_err(|e| format!("cannot start the file tail thread: {e}"))?;
        Ok(Self {
            stop,
            thread: Some(thread),
            counters,
        })
    }

    /// The source's counters.
    pub fn counters(&self) -> Arc<TailCounters> {
        self.counters.clone()
    }

    /// Stop reading, wait (bounded by `drain_timeout`) for lines in flight to
    /// be confirmed, write the checkpoints and return.
    pub fn stop(mut self) {
        self.stop.store(true, Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for TailSource {
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
    }
}

struct Tail {
    config: TailConfig,
    /// Dropped at stop so the engine can drain and finish.
    intake: Option<IntakeSender>,
    runtime: tokio::runtime::Handle,
    checkpoints: Checkpoints,
    files: HashMap<FileId, TailedFile>,
    counters: Arc<TailCounters>,
    parser: LineParser,
    multiline: Option<Multiline>,
    stop: Arc<AtomicBool>,
}

impl Tail {
    /// [`Tail::run`] until it returns; a panic inside it is logged, counted
    /// on `health` and followed by a backoff and a new run on the same
    /// files and positions (confirmed positions were checkpointed, so at
    /// worst lines are read again, never skipped).
    fn run_supervised(&mut self, health: Option<Arc<TaskHealth>>) {
        let backoff = Backoff::full_jitter(FIRST_RESTART_DELAY);
        let mut restarts = 0;
        loop {
            let started = Instant::now();
            let Err(payload) = std::panic::catch_unwind(AssertUnwindSafe(|| self.run())) else {
                return;
            };
            let reason = format!("panicked: {}", panic_message(payload));
            if started.elapsed() >= STABLE_AFTER {
                restarts = 0;
            }
            let delay = backoff.delay(restarts, None).max(Duration::from_millis(10));
            restarts = restarts.saturating_add(1);
            self.counters.restarts.fetch_add(1, Relaxed);
            if let Some(h) = &health {
                h.failed(reason.clone());
            }
            error!(source = "file", %reason, restart_in_ms = delay.as_millis() as u64, "file tail failed; restarting it");
            let until = Instant::now() + delay;
            while !self.stop.load(Relaxed) && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(10));
            }
            if let Some(h) = &health {
                h.recovered();
            }
        }
    }

    fn run(&mut self) {
        let mut first = true;
        let mut buf = Vec::new();
        let mut last_save = Instant::now();
        while !self.stop.load(Relaxed) {
            #[cfg(test)]
            if tests::FAIL_NEXT_ROUND.swap(false, Relaxed) {
                panic!("injected failure");
            }
            self.scan(first);
            first = false;
            let busy = match self.read_round(&mut buf) {
                Ok(busy) => busy,
                Err(Closed) => break,
            };
            self.settle();
            if last_save.elapsed() >= self.config.checkpoint_interval {
                self.save();
                last_save = Instant::now();
            }
            if !busy {
                self.pause();
            }
        }
        // Let the engine drain what it has, then record how far it got.
        self.intake = None;
        let deadline = Instant::now() + self.config.drain_timeout;
        loop {
            self.settle();
            let waiting: usize = self.files.values().map(TailedFile::in_flight).sum();
            if waiting == 0 || Instant::now() >= deadline {
                if waiting > 0 {
                    warn!(chunks = waiting, "file tail: stopped before every line was confirmed; they will be read again");
                }
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.save();
    }

    fn pause(&self) {
        let until = Instant::now() + self.config.poll_interval;
        while !self.stop.load(Relaxed) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10).min(self.config.poll_interval));
        }
    }

    /// Match the patterns and open files not seen before.
    fn scan(&mut self, first: bool) {
        for f in self.files.values_mut() {
            f.present = false;
        }

        for pattern in &self.config.include {
            let Ok(paths) = glob::glob(pattern) else {
                continue; // checked at start-up
            };
            for path in paths.flatten() {
                let Ok(meta) = std::fs::metadata(&path) else {
                    continue;
                };
                if !meta.is_file() {
                    continue;
                }
                let id = FileId::of(&meta);
                if let Some(f) = self.files.get_mut(&id) {
                    f.present = true;
                    f.path = path;
                    continue;
                }

                let start = match self.checkpoints.get(id) {
                    // An offset past the end: the inode was reused.
                    Some(offset) if offset <= meta.len() => offset,
                    Some(_) => 0,
                    None if first && self.config.read_from == ReadFrom::Tail => meta.len(),
                    None => 0,
                };
                match TailedFile::open(path.clone(), id, start) {
                    Ok(f) => {
                        info!(path = %path.display(), offset = start, "file tail: following");
                        self.counters.files_opened.fetch_add(1, Relaxed);
                        self.files.insert(id, f);
                    }
                    Err(e) => {
                        self.counters.io_errors.fetch_add(1, Relaxed);
                        warn!(path = %path.display(), error = %e, "file tail: cannot open");
                    }
                }
            }
        }
    }

    /// Read every file once; true if anything was read.
    fn read_round(&mut self, buf: &mut Vec<u8>) -> Result<bool, Closed> {
        let mut busy = false;
        let mut finished = Vec::new();
        let ids: Vec<FileId> = self.files.keys().copied().collect();
        for id in ids {
            let f = self.files.get_mut(&id).expect("listed");
            if f.present {
                match f.check_truncated() {
                    Ok(true) => {
                        self.counters.truncations.fetch_add(1, Relaxed);
                        info!(path = %f.path.display(), "file tail: truncated; reading from the start");
                    }
                    Ok(false) => {}
                    Err(e) => {
                        self.counters.io_errors.fetch_add(1, Relaxed);
                        warn!(path = %f.path.display(), error = %e, "file tail: cannot stat");
                    }
                }
            }
            let before = f.read_at();
            let lines = match f.read_lines(
                self.config.read_budget,
                self.config.max_line_bytes,
                self.config.partial_line_timeout,
                self.multiline.as_ref(),
                buf,
            ) {
                Ok(lines) => lines,
                Err(e) => {
                    self.counters.io_errors.fetch_add(1, Relaxed);
                    warn!(path = %f.path.display(), error = %e, "file tail: read failed");
                    continue;
                }
            };
            self.counters.multiline_cut.fetch_add(lines.cut, Relaxed);
            let read = f.read_at() > before;
            busy |= read;
            if f.present {
                f.gone_since = None;
            } else if read {
                f.gone_since = Some(Instant::now());
            } else {
                let since = *f.gone_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= self.config.rotate_wait
                    && lines.ranges.is_empty()
                    && f.in_flight() == 0
                {
                    finished.push(id);
                    continue;
                }
            }
            if lines.ranges.is_empty() && !read {
                continue;
            }
            let end = lines.end;
            let source_id: Arc<str> = f.path.display().to_string().into();
            let (batch, outcome) = AckBatch::new();
            let intake = self.intake.as_ref().ok_or(Closed)?;
            // Chunks are parsed side by side on the blocking pool, then handed
            // to the intake queue in file order.
            let parsing: Vec<_> = lines
                .ranges
                .chunks(self.config.chunk_lines)
                .map(|chunk| {
                    let base = chunk[0].start;
                    let bytes = buf[base..chunk[chunk.len() - 1].end].to_vec();
                    let ranges: Vec<_> =
                        chunk.iter().map(|r| r.start - base..r.end - base).collect();
                    let (parser, batch, source_id) =
                        (self.parser.clone(), batch.clone(), source_id.clone());
                    self.runtime.spawn_blocking(move || {
                        ranges
                            .into_iter()
                            .map(|r| {
                                let rec = parser.record(&bytes[r], &source_id);
                                Event::new(Payload::Log(rec)).with_ack(batch.token())
                            })
                            .collect::<Vec<Event>>()
                    })
                })
                .collect();
            drop(batch);
            let mut sent_lines = 0;
            for parsed in parsing {
                let events = self.runtime.block_on(parsed).map_err(|_| Closed)?;
                sent_lines += events.len() as u64;
                self.runtime
                    .block_on(intake.send(events))
                    .map_err(|_| Closed)?;
            }
            self.counters.lines.fetch_add(sent_lines, Relaxed);
            let f = self.files.get_mut(&id).expect("listed");
            f.sent(end, outcome);
        }
        for id in finished {
            if let Some(f) = self.files.remove(&id) {
                info!(path = %f.path.display(), "file tail: file gone or no longer matched; closed");
            }
            self.checkpoints.remove(id);
        }
        Ok(busy)
    }

    fn settle(&mut self) {
        for f in self.files.values_mut() {
            let offset = f.settle();
            self.checkpoints.set(f.id, &f.path, offset);
        }
    }

    fn save(&mut self) {
        if let Err(e) = self.checkpoints.save() {
            self.counters.io_errors.fetch_add(1, Relaxed);
            warn!(dir = %self.config.state_dir.display(), error = %e, "file tail: cannot write checkpoints");
        }
    }
}

/// Turns lines into log records.
#[derive(Clone)]
struct LineParser {
    parse_json: bool,
    /// Ranges are joined events: their inner line ends become `\n`.
    multiline: bool,
    counters: Arc<TailCounters>,
}

impl LineParser {
    fn record(&self, line: &[u8], source_id: &str) -> LogRecord {
        // Checked first: the lossy conversion is far slower on valid text.
        let mut text = match std::str::from_utf8(line) {
            Ok(text) => std::borrow::Cow::Borrowed(text),
            Err(_) => String::from_utf8_lossy(line),
        };
        if self.multiline && text.contains('\r') {
            text = text.replace("\r\n", "\n").into();
        }
        let mut rec = if self.parse_json && text.starts_with('{') {
            match serde_json::from_str::<LogRecord>(&text) {
                Ok(rec) => rec,
                Err(_) => {
                    self.counters.json_errors.fetch_add(1, Relaxed);
                    LogRecord::new(text)
                }
            }
        } else {
            LogRecord::new(text)
        };
        rec.source_type = Some("file");
        rec.source_id = Some(source_id.to_owned());
        rec
    }
}

/// The intake queue is closed: the pipeline is shutting down.
struct Closed;

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::Mutex;
    use switchyard_core::Fate;
    use switchyard_engine::supervise::Health;

    /// Set to make the reading loop panic once, at its next round.
    pub(super) static FAIL_NEXT_ROUND: AtomicBool = AtomicBool::new(false);

    fn append(path: &std::path::Path, from: usize, to: usize) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        for i in from..to {
            writeln!(f, "line-{i:04}").unwrap();
        }
    }

    fn wait_for(got: &Mutex<Vec<String>>, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while got.lock().unwrap().len() < n {
            assert!(Instant::now() < deadline, "{:?}", got.lock().unwrap());
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// A panic on the reading thread used to end the tail for good, with
    /// nothing said: now it is counted, reported down, and reading goes on
    /// from where it was, without skipping or repeating a line.
    #[test]
    fn a_panic_while_reading_restarts_the_tail_where_it_was() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("a.log");
        append(&log, 0, 100);
        let mut config = TailConfig::new(vec![log.display().to_string()], dir.path().join("state"));
        config.poll_interval = Duration::from_millis(20);
        let (tx, mut rx) = switchyard_engine::intake(10_000);
        let got: Arc<Mutex<Vec<String>>> = Arc::default();
        let sink = got.clone();
        let engine = rt.spawn(async move {
            while let Some(chunk) = rx.recv().await {
                for mut event in chunk {
                    if let Payload::Log(rec) = &event.payload {
                        sink.lock()
                            .unwrap()
                            .push(rec.message.clone().unwrap_or_default());
                    }
                    event.resolve(Fate::Delivered);
                }
            }
        });
        let health = Health::new();
        let task = health.register("file");
        let source =
            TailSource::spawn_supervised(config, tx, rt.handle().clone(), Some(task.clone()))
                .unwrap();
        wait_for(&got, 100);
        FAIL_NEXT_ROUND.store(true, Relaxed);
        let deadline = Instant::now() + Duration::from_secs(20);
        while task.failures.load(Relaxed) == 0 {
            assert!(Instant::now() < deadline, "the injected failure never ran");
            std::thread::sleep(Duration::from_millis(5));
        }
        append(&log, 100, 200);
        wait_for(&got, 200);
        let counters = source.counters();
        source.stop();
        rt.block_on(engine).unwrap();
        let lines = got.lock().unwrap().clone();
        let expected: Vec<String> = (0..200).map(|i| format!("line-{i:04}")).collect();
        assert_eq!(lines, expected, "every line once, in order");
        assert_eq!(task.failures.load(Relaxed), 1);
        assert!(!task.is_down());
        assert_eq!(counters.restarts.load(Relaxed), 1);
        assert_eq!(
            task.last_error().as_deref(),
            Some("panicked: injected failure")
        );
    }
}
