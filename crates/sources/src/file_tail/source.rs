//! `type: file`: the tail as a pipeline source — its typed settings (the
//! `switchyard dispatcher` flags `--tail`, `--state-dir`, `--tail-from`,
//! `--tail-json`, `--tail-partial-timeout`, `--tail-multiline-*`) and its
//! start on a thread of its own, reported on the health board.

use super::{MultilineConfig, ReadFrom, TailConfig, TailCounters, TailSource};
use crate::settings::{default_queue_size, duration};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use switchyard_engine::metrics::DiscardsFn;
use switchyard_engine::source::{
    RunningSource, Source, SourceConfig, SourceContext, SourceError, StatsFn,
};
use tracing::info;

/// Settings of `type: file`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FileSourceConfig {
    /// Globs of the files (`--tail`).
    pub include: Vec<String>,
    /// Start of files without a saved position: `head` or `tail`
    /// (`--tail-from`).
    #[serde(default)]
    pub read_from: ReadFrom,
    /// Where delivered positions are kept (`--state-dir`).
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    /// Parse lines that are JSON objects (`--tail-json`).
    #[serde(default)]
    pub json: bool,
    /// Wait of a line without its newline (`--tail-partial-timeout`).
    #[serde(default = "default_partial", with = "duration")]
    pub partial_line_timeout: Duration,
    /// Join continuation lines into one event (`--tail-multiline-*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multiline: Option<Multiline>,
    /// Bound of the source's queue, events.
    #[serde(default = "default_queue_size")]
    pub queue_size: usize,
}

/// Multiline joining of a file source.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Multiline {
    /// Regular expression of a line that starts an event
    /// (`--tail-multiline-start`).
    pub start: String,
    /// Most lines in one event (`--tail-multiline-max-lines`).
    #[serde(default = "default_multiline_lines")]
    pub max_lines: usize,
    /// Most bytes in one event (`--tail-multiline-max-bytes`).
    #[serde(default = "default_multiline_bytes")]
    pub max_bytes: usize,
}

/// `state_dir`'s default, shared with the Docker source.
pub fn default_state_dir() -> PathBuf {
    PathBuf::from("switchyard-state")
}
fn default_partial() -> Duration {
    Duration::from_secs(1)
}
fn default_multiline_lines() -> usize {
    MultilineConfig::new("").max_lines
}
fn default_multiline_bytes() -> usize {
    MultilineConfig::new("").max_bytes
}

impl FileSourceConfig {
    /// Follow `include` with every other setting at its default.
    pub fn new(include: Vec<String>) -> Self {
        Self {
            include,
            read_from: ReadFrom::Head,
            state_dir: default_state_dir(),
            json: false,
            partial_line_timeout: default_partial(),
            multiline: None,
            queue_size: default_queue_size(),
        }
    }

    /// The tail's own settings.
    pub fn tail_config(&self) -> TailConfig {
        let mut config = TailConfig::new(self.include.clone(), self.state_dir.clone());
        config.read_from = self.read_from;
        config.parse_json = self.json;
        config.partial_line_timeout = self.partial_line_timeout;
        config.multiline = self.multiline.as_ref().map(|m| MultilineConfig {
            max_lines: m.max_lines,
            max_bytes: m.max_bytes,
            ..MultilineConfig::new(m.start.clone())
        });
        config
    }
}

impl SourceConfig for FileSourceConfig {
    fn build(self) -> Result<Box<dyn Source>, SourceError> {
        let tail = self.tail_config();
        tail.check().map_err(|m| keyed(&m, SourceError::config))?;
        Ok(Box::new(FileSource {
            tail,
            queue_size: self.queue_size,
        }))
    }
}

/// The tail's message (`file tail: `multiline.start` pattern …`) as an
/// error at the key it names in backquotes.
fn keyed(message: &str, make: fn(String, String) -> SourceError) -> SourceError {
    let message = message.strip_prefix("file tail: ").unwrap_or(message);
    let key = message.split('`').nth(1).unwrap_or("").to_string();
    make(key, message.to_string())
}

/// Files to follow, checked and ready to start.
#[derive(Debug)]
pub struct FileSource {
    tail: TailConfig,
    queue_size: usize,
}

#[async_trait::async_trait]
impl Source for FileSource {
    fn queue_size(&self) -> usize {
        self.queue_size
    }

    async fn start(
        self: Box<Self>,
        cx: SourceContext,
    ) -> Result<Box<dyn RunningSource>, SourceError> {
        let runtime = tokio::runtime::Handle::current();
        let health = Some(cx.health.register(&cx.name));
        let state_dir = self.tail.state_dir.display().to_string();
        let tail =
            TailSource::spawn_supervised(self.tail, cx.output, runtime, health).map_err(|m| {
                if m.starts_with("file tail: `") {
                    keyed(&m, SourceError::config)
                } else {
                    SourceError::start("state_dir", format!("{m} (state in `{state_dir}`)"))
                }
            })?;
        Ok(Box::new(RunningFile {
            name: cx.name,
            counters: tail.counters(),
            tail,
        }))
    }
}

/// Files being followed.
struct RunningFile {
    name: String,
    counters: Arc<TailCounters>,
    tail: TailSource,
}

/// The tail counters as JSON.
fn stats(c: &TailCounters) -> serde_json::Value {
    json!({
        "lines": c.lines.load(Relaxed),
        "files_opened": c.files_opened.load(Relaxed),
        "truncations": c.truncations.load(Relaxed),
        "json_errors": c.json_errors.load(Relaxed),
        "io_errors": c.io_errors.load(Relaxed),
        "multiline_cut": c.multiline_cut.load(Relaxed),
        "restarts": c.restarts.load(Relaxed),
    })
}

#[async_trait::async_trait]
impl RunningSource for RunningFile {
    fn stats(&self) -> StatsFn {
        let c = self.counters.clone();
        Arc::new(move || stats(&c))
    }

    fn discards(&self) -> Option<DiscardsFn> {
        let c = self.counters.clone();
        Some(Arc::new(move || c.discards()))
    }

    /// Waits (bounded) for the lines in flight to be confirmed while the
    /// sinks drain, then records their positions.
    async fn stop(self: Box<Self>) {
        let RunningFile {
            name,
            counters,
            tail,
        } = *self;
        tokio::task::spawn_blocking(move || tail.stop()).await.ok();
        info!(source = %name, tail = %stats(&counters), "file tail stopped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_pattern_is_refused_at_its_key() {
        let mut c = FileSourceConfig::new(vec!["x/*.log".into()]);
        c.multiline = Some(Multiline {
            start: "(unclosed".into(),
            max_lines: 5,
            max_bytes: 5,
        });
        let err = c.build().err().unwrap();
        assert_eq!(err.key(), Some("multiline.start"));
        assert!(
            err.message()
                .starts_with("`multiline.start` pattern `(unclosed` is invalid"),
            "{err}"
        );
    }

    #[test]
    fn multiline_defaults_are_the_flags_defaults() {
        let m: Multiline = serde_json::from_value(json!({"start": "^x"})).unwrap();
        assert_eq!((m.max_lines, m.max_bytes), (500, 262_144));
    }
}
