//! The `file` sink: one line per event appended to a file — one fixed file
//! (`endpoint`), or the file a path template names for each event below a
//! base directory, with rotation, retention and compression.
//!
//! Each batch is encoded (and routed, with a template) on the caller's task,
//! then handed to one writer thread that appends batches in the order they
//! were sent. Unless `sync=false`, the writer ends each round with one
//! `fdatasync` per file it wrote in that round (group commit), and only then
//! reports those batches written — so a batch reported as delivered is on
//! disk, and several batches in flight share one sync. Compression and
//! retention run on a third thread, never on the write path.
//!
//! # Layout
//! - [`options`]: the typed config and the settings it is checked into.
//! - [`template`]: path templates and the rule that keeps paths inside the base.
//! - [`encode`]: JSON or text lines.
//! - [`writer`]: the writer thread: open files, rotation, group commit.
//! - [`direct`]: appends that bypass the page cache (`direct=true`).
//! - [`lines`]: a batch's lines, laid out so a direct append need not copy them.
//! - [`placement`]: where the next batch will start within a block.
//! - [`rotation`]: rotated names and retention.
//! - [`housekeeping`]: compression and retention off the write path.
//! - [`clock`]: the time source (injectable for tests).

pub mod clock;
pub mod direct;
pub mod encode;
pub mod housekeeping;
pub mod lines;
pub mod options;
pub mod placement;
pub mod rotation;
pub mod template;
pub mod writer;

use async_trait::async_trait;
use clock::{Clock, SystemClock};
use lines::Spare;
use options::{Encoding, FileConfig, FileSettings, Target};
use placement::Placement;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;
use switchyard_core::{BuildError, Event, EventFailure, Sink, SinkError};
use template::{check_relative, PathTemplate, Stamp};
use tokio::sync::{mpsc, oneshot};
use writer::{Command, Part, PartError, Writer};

/// Batches waiting for the writer thread. The engine bounds how many batches
/// are in flight, so this is only a backstop.
const PENDING_WRITES: usize = 64;

/// Appends lines to files.
pub struct FileSink {
    route: Route,
    encoding: Encoding,
    clock: Arc<dyn Clock>,
    open_files: Arc<AtomicUsize>,
    /// With `direct=true` and one file: its batches are laid out for where
    /// they will start.
    layout: Option<Layout>,
    /// Buffers of written batches, for the single file's next batches.
    spare: Arc<Spare>,
    requests: Mutex<Option<mpsc::Sender<Command>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

/// What lays out a single file's batches for direct appends.
struct Layout {
    /// Where the writer is in the file (set by the writer).
    placement: Arc<Placement>,
    /// Bytes of lines queued for the writer so far. Held while a batch is
    /// encoded and queued, so batches are queued in the order their layout
    /// assumed; only direct appends to one file pay for that order.
    queued: Mutex<u64>,
}

/// How a batch is split between files.
enum Route {
    Single(PathBuf),
    Templated(PathTemplate),
}

impl FileSink {
    /// Open (creating parent directories) `path` for append: the plain form.
    pub fn open(path: &Path, sync: bool) -> Result<Self, BuildError> {
        let config = FileConfig {
            endpoint: Some(path.display().to_string()),
            sync: Some(sync),
            ..FileConfig::default()
        };
        Self::with_clock(config.settings()?, Arc::new(SystemClock))
    }

    /// Check the config as [`FileSink::build`] reads it, without creating
    /// or opening anything.
    pub fn check(config: &FileConfig) -> Result<(), BuildError> {
        config.clone().settings().map(drop)
    }

    /// Build from the typed config (the registry's factory).
    pub fn build(config: FileConfig) -> Result<Box<dyn Sink>, BuildError> {
        Ok(Box::new(Self::with_clock(
            config.settings()?,
            Arc::new(SystemClock),
        )?))
    }

    /// Build from checked settings, reading the time from `clock`.
    pub fn with_clock(options: FileSettings, clock: Arc<dyn Clock>) -> Result<Self, BuildError> {
        let open_files = Arc::new(AtomicUsize::new(0));
        let placement = Arc::new(Placement::default());
        let spare = Arc::new(Spare::default());
        let writer = Writer::new(
            &options,
            clock.clone(),
            open_files.clone(),
            placement.clone(),
            spare.clone(),
        )
        .map_err(BuildError::start)?;
        let (tx, rx) = mpsc::channel(PENDING_WRITES);
        if let Some(period) = sweep_period(&options) {
            start_ticker(tx.downgrade(), period).map_err(BuildError::start)?;
        }
        let thread = std::thread::Builder::new()
            .name("file-sink".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| BuildError::start(format!("cannot start the file writer thread: {e}")))?;
        let route = match options.target {
            Target::Single(path) => Route::Single(path),
            Target::Templated { template, .. } => Route::Templated(template),
        };
        let layout = (options.direct && matches!(route, Route::Single(_))).then(|| Layout {
            placement,
            queued: Mutex::new(0),
        });
        Ok(Self {
            route,
            encoding: options.encoding,
            clock,
            open_files,
            layout,
            spare,
            requests: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(thread)),
        })
    }

    /// With `direct=true`: appends that had to copy their batch because it
    /// was not laid out for where it landed in the file (after a rotation,
    /// a failed write, or another writer appending).
    pub fn copied_appends(&self) -> u64 {
        self.layout.as_ref().map_or(0, |l| l.placement.copied())
    }

    /// How many files the writer holds open (as of its last round).
    pub fn open_files(&self) -> usize {
        self.open_files.load(Relaxed)
    }

    /// Split a batch into parts by file. Events whose rendered path is
    /// refused come back as permanent failures.
    /// `tail`: where the single file's batch will start within a block.
    fn route(&self, events: &[Event], tail: Option<usize>) -> Result<Routed, SinkError> {
        let mut routed = Routed::default();
        match &self.route {
            Route::Single(path) => {
                // Sized from the events so the buffer is not regrown (and
                // copied) several times per batch: with 3 KB lines a fixed
                // 256 B per event cost ~2 % of the Redis → file path's
                // instructions in reallocation copies.
                let capacity = events.iter().map(|e| e.size_hint() + 1).sum();
                let mut lines = self.spare.lines(capacity, tail);
                for event in events {
                    encode::line(self.encoding, event, lines.buf())?;
                }
                routed.parts.push(Part {
                    path: path.clone(),
                    lines,
                });
                routed.owners.push((0..events.len()).collect());
            }
            Route::Templated(template) => {
                let now = self.clock.now();
                let stamp = Stamp {
                    date: clock::date(now),
                    hour: clock::hour(now),
                };
                let mut by_path: HashMap<String, usize> = HashMap::new();
                let mut rendered = String::new();
                for (index, event) in events.iter().enumerate() {
                    rendered.clear();
                    template.render(event, &stamp, &mut rendered);
                    if let Err(reason) = check_relative(&rendered) {
                        routed.refused.push(EventFailure {
                            index,
                            error: SinkError::permanent(format!(
                                "path template `{}` gave `{}`, which {reason}; event refused",
                                template.as_str(),
                                rendered.escape_debug()
                            )),
                        });
                        continue;
                    }
                    let k = *by_path.entry(rendered.clone()).or_insert_with(|| {
                        routed.parts.push(Part {
                            path: PathBuf::from(&rendered),
                            lines: self.spare.lines(0, None),
                        });
                        routed.owners.push(Vec::new());
                        routed.parts.len() - 1
                    });
                    encode::line(self.encoding, event, routed.parts[k].lines.buf())?;
                    routed.owners[k].push(index);
                }
            }
        }
        Ok(routed)
    }
}

/// A batch split by file.
#[derive(Default)]
struct Routed {
    parts: Vec<Part>,
    /// For each part, the indices of its events in the batch.
    owners: Vec<Vec<usize>>,
    refused: Vec<EventFailure>,
}

/// How often the writer looks for idle files and ended intervals.
fn sweep_period(options: &FileSettings) -> Option<Duration> {
    let idle = options.idle_timeout.map(|d| d / 2);
    let interval = options.rotation.interval.map(|_| Duration::from_secs(1));
    let period = match (idle, interval) {
        (Some(a), Some(b)) => a.min(b),
        (a, b) => a.or(b)?,
    };
    Some(period.clamp(Duration::from_millis(5), Duration::from_secs(1)))
}

/// A thread that asks the writer to sweep every `period`. It holds only a
/// weak sender, so it never keeps the writer alive, and ends once the sink
/// is closed.
fn start_ticker(commands: mpsc::WeakSender<Command>, period: Duration) -> Result<(), String> {
    std::thread::Builder::new()
        .name("file-sink-ticker".into())
        .spawn(move || loop {
            std::thread::sleep(period);
            match commands.upgrade() {
                // A full queue means the writer is busy and will sweep soon.
                Some(tx) => drop(tx.try_send(Command::Sweep)),
                None => return,
            }
        })
        .map(drop)
        .map_err(|e| format!("cannot start the file sink ticker thread: {e}"))
}

fn to_sink_error(e: PartError) -> SinkError {
    if e.permanent {
        SinkError::permanent(e.message)
    } else {
        SinkError::transient(e.message)
    }
}

#[async_trait]
impl Sink for FileSink {
    async fn send(&self, events: &[Event]) -> Result<(), SinkError> {
        let requests = self
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| SinkError::permanent("the file sink is closed"))?;
        let stopped = || SinkError::transient("the file writer thread stopped");
        // Room on the queue first: the batch is then encoded and queued
        // without waiting, in the order its layout assumed.
        let permit = requests.reserve().await.map_err(|_| stopped())?;
        let (done, outcome) = oneshot::channel();
        let (owners, mut refused, sent) = {
            // Direct appends to one file only: encoding and queueing in order.
            let mut ordered = self.layout.as_ref().map(|l| {
                (
                    &l.placement,
                    l.queued.lock().unwrap_or_else(|p| p.into_inner()),
                )
            });
            let tail = ordered.as_ref().map(|(p, q)| p.next_tail(**q));
            let Routed {
                parts,
                owners,
                refused,
            } = self.route(events, tail)?;
            let any = !parts.is_empty();
            if any {
                if let Some((_, q)) = ordered.as_mut() {
                    **q += parts.iter().map(|p| p.lines.len() as u64).sum::<u64>();
                }
                permit.send(Command::Write { parts, done });
            }
            (owners, refused, any)
        };
        let mut results = Vec::new();
        if sent {
            results = outcome.await.map_err(|_| stopped())?;
        }
        // The plain form fails or succeeds as one batch, as it always did.
        if let (Route::Single(_), [Err(e)]) = (&self.route, results.as_mut_slice()) {
            return Err(to_sink_error(e.clone()));
        }
        for (result, owners) in results.into_iter().zip(owners) {
            if let Err(e) = result {
                let error = to_sink_error(e);
                refused.extend(owners.into_iter().map(|index| EventFailure {
                    index,
                    error: error.clone(),
                }));
            }
        }
        SinkError::from_failures(refused)
    }

    async fn close(&self) -> Result<(), SinkError> {
        // Dropping the last sender ends the writer after what is queued.
        drop(
            self.requests
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take(),
        );
        let writer = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(writer) = writer {
            match tokio::task::spawn_blocking(move || writer.join()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(SinkError::permanent("the file writer thread panicked")),
                // The runtime is shutting down and would not run the join.
                // Nothing is claimed: a batch counts as delivered only after
                // the sync that covers it.
                Err(_) => {
                    return Err(SinkError::permanent(
                        "the runtime shut down before the file writer thread finished; batches it had not synced were not reported delivered",
                    ))
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_core::LogRecord;

    #[tokio::test]
    async fn appends_one_line_per_event_and_creates_dirs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/events.jsonl");
        let sink = FileSink::open(&path, true).unwrap();
        let evs: Vec<Event> = (0..3)
            .map(|i| LogRecord::new(format!("m{i}")).into())
            .collect();
        sink.send(&evs).await.unwrap();
        sink.send(&evs[..1]).await.unwrap();
        sink.close().await.unwrap();
        assert!(
            sink.send(&evs).await.is_err(),
            "a closed sink refuses batches"
        );
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[2]["message"], "m2");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_batches_are_each_written_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        let sink = std::sync::Arc::new(FileSink::open(&path, true).unwrap());
        let sends: Vec<_> = (0..8)
            .map(|b| {
                let sink = sink.clone();
                tokio::spawn(async move {
                    let evs: Vec<Event> = (0..100)
                        .map(|i| LogRecord::new(format!("b{b}-{i}")).into())
                        .collect();
                    sink.send(&evs).await
                })
            })
            .collect();
        for s in sends {
            s.await.unwrap().unwrap();
        }
        sink.close().await.unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let messages: Vec<String> = text
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["message"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(messages.len(), 800);
        // Each batch's lines are contiguous and in order.
        for chunk in messages.chunks(100) {
            let b = chunk[0].split('-').next().unwrap();
            for (i, m) in chunk.iter().enumerate() {
                assert_eq!(m, &format!("{b}-{i}"));
            }
        }
    }

    #[test]
    fn unwritable_path_names_path_and_reason() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, "x").unwrap();
        let err = FileSink::open(&blocker.join("sub/events.jsonl"), true)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("sub"), "{err}");
        assert!(
            err.to_lowercase().contains("not a directory") || err.contains("exists"),
            "{err}"
        );
    }
}
