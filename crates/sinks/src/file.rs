//! The `file` sink: one JSON line per event appended to `endpoint`.
//!
//! Each batch is encoded in memory, then written and (unless `sync=false`)
//! synced with one `fdatasync` on the blocking pool, so a batch reported as
//! delivered is on disk.

use async_trait::async_trait;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use switchyard_core::{Event, Sink, SinkConfig, SinkError};

/// Appends JSON lines to a file.
pub struct FileSink {
    path: PathBuf,
    sync: bool,
    file: Arc<Mutex<File>>,
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
        Ok(Self {
            path: path.to_owned(),
            sync,
            file: Arc::new(Mutex::new(file)),
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

#[async_trait]
impl Sink for FileSink {
    async fn send(&self, events: &[Event]) -> Result<(), SinkError> {
        let mut buf = Vec::with_capacity(events.len() * 256);
        for event in events {
            event.write_json(&mut buf).map_err(|e| {
                SinkError::permanent(format!("cannot encode event {}: {e}", event.id))
            })?;
            buf.push(b'\n');
        }
        let file = self.file.clone();
        let sync = self.sync;
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            // The lock is only contended if sends overlap; a poisoned lock
            // still holds a usable file handle.
            let mut f = file.lock().unwrap_or_else(|p| p.into_inner());
            f.write_all(&buf)?;
            if sync {
                f.sync_data()?;
            }
            Ok::<_, std::io::Error>(())
        })
        .await
        .map_err(|e| SinkError::transient(format!("write task failed: {e}")))?
        .map_err(|e| SinkError::transient(format!("cannot write `{}`: {e}", path.display())))
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
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[2]["message"], "m2");
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
