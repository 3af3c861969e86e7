//! The `file` sink: one JSON line per event appended to `endpoint`.
//!
//! Each batch is encoded on the caller's task, then handed to one writer
//! thread that appends batches in the order they were sent. Unless
//! `sync=false`, the writer ends each round with one `fdatasync` that covers
//! every batch it wrote in that round (group commit), and only then reports
//! those batches written — so a batch reported as delivered is on disk, and
//! several batches in flight share one sync.

use async_trait::async_trait;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::thread::JoinHandle;
use switchyard_core::{Event, Sink, SinkConfig, SinkError};
use tokio::sync::{mpsc, oneshot};

/// Batches waiting for the writer thread. The engine bounds how many batches
/// are in flight, so this is only a backstop.
const PENDING_WRITES: usize = 64;

/// One encoded batch and where to report its outcome.
struct WriteRequest {
    lines: Vec<u8>,
    done: oneshot::Sender<std::io::Result<()>>,
}

/// Appends JSON lines to a file.
pub struct FileSink {
    path: PathBuf,
    requests: Mutex<Option<mpsc::Sender<WriteRequest>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl FileSink {
    /// Open (creating parent directories) `path` for append.
    pub fn open(path: &Path, sync: bool) -> Result<Self, String> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                format!(
                    "cannot create directory `{}` for `{}`: {e} — check --endpoint",
                    dir.display(),
                    path.display()
                )
            })?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| {
                format!(
                    "cannot open `{}` for append: {e} — check --endpoint",
                    path.display()
                )
            })?;
        let (tx, rx) = mpsc::channel(PENDING_WRITES);
        let writer = std::thread::Builder::new()
            .name("file-sink".into())
            .spawn(move || write_rounds(file, sync, rx))
            .map_err(|e| format!("cannot start the file writer thread: {e}"))?;
        Ok(Self {
            path: path.to_owned(),
            requests: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(writer)),
        })
    }

    /// Build from the plugin map: `endpoint` (path, required), `sync`
    /// (`true`|`false`, default `true`).
    pub fn from_config(cfg: &SinkConfig) -> Result<Box<dyn Sink>, String> {
        let path = cfg
            .get("endpoint")
            .filter(|p| !p.is_empty())
            .ok_or("the file sink needs `endpoint`: the path of the JSONL file")?;
        let sync = match cfg.get("sync").map(String::as_str) {
            None | Some("true") => true,
            Some("false") => false,
            Some(other) => return Err(format!("`sync` must be true or false, not `{other}`")),
        };
        Ok(Box::new(Self::open(Path::new(path), sync)?))
    }
}

/// The writer thread: take every batch that is waiting, append them in order,
/// sync once, report each batch's outcome. Ends when the sink is closed.
fn write_rounds(mut file: File, sync: bool, mut requests: mpsc::Receiver<WriteRequest>) {
    while let Some(first) = requests.blocking_recv() {
        let mut round = vec![first];
        while let Ok(more) = requests.try_recv() {
            round.push(more);
        }
        // A batch that could not be written fails alone; the sync covers
        // every batch written in this round.
        let written: Vec<std::io::Result<()>> =
            round.iter().map(|r| file.write_all(&r.lines)).collect();
        let synced = if sync { file.sync_data() } else { Ok(()) };
        for (request, result) in round.into_iter().zip(written) {
            let outcome = match (&result, &synced) {
                (Err(_), _) => result,
                (Ok(()), Err(e)) => Err(std::io::Error::new(e.kind(), e.to_string())),
                (Ok(()), Ok(())) => Ok(()),
            };
            let _ = request.done.send(outcome);
        }
    }
}

#[async_trait]
impl Sink for FileSink {
    async fn send(&self, events: &[Event]) -> Result<(), SinkError> {
        let lines = crate::stdout::encode(events)?;
        let requests = self
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| SinkError::permanent("the file sink is closed"))?;
        let (done, outcome) = oneshot::channel();
        let stopped = || SinkError::transient("the file writer thread stopped");
        requests
            .send(WriteRequest { lines, done })
            .await
            .map_err(|_| stopped())?;
        outcome.await.map_err(|_| stopped())?.map_err(|e| {
            SinkError::transient(format!("cannot write `{}`: {e}", self.path.display()))
        })
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
            tokio::task::spawn_blocking(move || writer.join())
                .await
                .ok()
                .and_then(Result::ok)
                .ok_or_else(|| SinkError::permanent("the file writer thread panicked"))?;
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
        let mut cfg = SinkConfig::new();
        cfg.insert("endpoint".into(), path.display().to_string());
        let sink = FileSink::from_config(&cfg).unwrap();
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
            .unwrap();
        assert!(err.contains("sub"), "{err}");
        assert!(
            err.to_lowercase().contains("not a directory") || err.contains("exists"),
            "{err}"
        );
    }
}
