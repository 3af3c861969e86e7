//! `type: docker`: container logs as a pipeline source — its typed settings
//! (the `switchyard dispatcher` flags `--docker`, `--docker-include`,
//! `--docker-list-interval`, `--state-dir`) and its start. The source
//! retries an unreachable Engine itself, with backoff, so it never ends
//! early and needs no supervisor.

use super::{DockerConfig, DockerCounters, DockerSource as Follower, DEFAULT_SOCKET};
use crate::file_tail::source::default_state_dir;
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

/// Settings of `type: docker`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DockerSourceConfig {
    /// The Engine API's unix socket (`--docker`).
    #[serde(default = "default_socket")]
    pub socket: PathBuf,
    /// Follow only containers whose name matches one of these globs; empty =
    /// every container (`--docker-include`).
    #[serde(default)]
    pub include: Vec<String>,
    /// Where each container's position is kept (`--state-dir`).
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    /// Pause between two listings of the running containers
    /// (`--docker-list-interval`).
    #[serde(default = "default_list_interval", with = "duration")]
    pub list_interval: Duration,
    /// Bound of the source's queue, events.
    #[serde(default = "default_queue_size")]
    pub queue_size: usize,
}

fn default_socket() -> PathBuf {
    PathBuf::from(DEFAULT_SOCKET)
}
fn default_list_interval() -> Duration {
    Duration::from_secs(5)
}

impl DockerSourceConfig {
    /// The Engine at `socket`, every other setting at its default.
    pub fn new(socket: PathBuf) -> Self {
        Self {
            socket,
            include: Vec::new(),
            state_dir: default_state_dir(),
            list_interval: default_list_interval(),
            queue_size: default_queue_size(),
        }
    }

    fn follower_config(&self) -> DockerConfig {
        let mut config = DockerConfig::new(self.socket.clone(), self.state_dir.clone());
        config.include = self.include.clone();
        config.list_interval = self.list_interval;
        config
    }
}

impl SourceConfig for DockerSourceConfig {
    fn build(self) -> Result<Box<dyn Source>, SourceError> {
        let config = self.follower_config();
        config.validate().map_err(|m| keyed(&m))?;
        Ok(Box::new(DockerLogs {
            config,
            queue_size: self.queue_size,
        }))
    }
}

/// `docker: `include` pattern …` as an error at the key it names.
fn keyed(message: &str) -> SourceError {
    let message = message.strip_prefix("docker: ").unwrap_or(message);
    let key = message.split('`').nth(1).unwrap_or("").to_string();
    SourceError::config(key, message)
}

/// Container logs, checked and ready to start.
#[derive(Debug)]
pub struct DockerLogs {
    config: DockerConfig,
    queue_size: usize,
}

#[async_trait::async_trait]
impl Source for DockerLogs {
    fn queue_size(&self) -> usize {
        self.queue_size
    }

    async fn start(
        self: Box<Self>,
        cx: SourceContext,
    ) -> Result<Box<dyn RunningSource>, SourceError> {
        let follower = Follower::start(self.config, cx.output).map_err(|m| {
            if m.starts_with("docker: `") {
                keyed(&m)
            } else {
                SourceError::start("state_dir", m)
            }
        })?;
        Ok(Box::new(RunningDocker {
            name: cx.name,
            counters: follower.counters(),
            follower,
        }))
    }
}

/// Containers being followed.
struct RunningDocker {
    name: String,
    counters: Arc<DockerCounters>,
    follower: Follower,
}

fn stats(c: &DockerCounters) -> serde_json::Value {
    json!({
        "lines": c.lines.load(Relaxed),
        "containers_followed": c.containers_followed.load(Relaxed),
        "cut_lines": c.cut_lines.load(Relaxed),
        "bad_timestamps": c.bad_timestamps.load(Relaxed),
        "errors": c.errors.load(Relaxed),
    })
}

#[async_trait::async_trait]
impl RunningSource for RunningDocker {
    fn stats(&self) -> StatsFn {
        let c = self.counters.clone();
        Arc::new(move || stats(&c))
    }

    fn discards(&self) -> Option<DiscardsFn> {
        let c = self.counters.clone();
        Some(Arc::new(move || c.discards()))
    }

    /// Waits (bounded) for the lines in flight to be confirmed, then writes
    /// the positions.
    async fn stop(self: Box<Self>) {
        let RunningDocker {
            name,
            counters,
            follower,
        } = *self;
        follower.stop().await;
        info!(source = %name, docker = %stats(&counters), "docker source stopped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_a_bad_include_at_its_key() {
        let c: DockerSourceConfig = serde_json::from_value(json!({})).unwrap();
        assert_eq!(c.socket, PathBuf::from("/var/run/docker.sock"));
        assert_eq!(c.list_interval, Duration::from_secs(5));
        let err = DockerSourceConfig {
            include: vec!["[".into()],
            ..c
        }
        .build()
        .err()
        .unwrap();
        assert_eq!(err.key(), Some("include"));
    }
}
