//! `type: redis_streams`: a Redis consumer group as a pipeline source — its
//! typed settings (the `switchyard dispatcher --event-bus redis` flags
//! `--redis-*`, with their defaults) and its start under supervision: a
//! Redis that is down at start delays events, not the pipeline.

use super::run;
use crate::settings::{default_queue_size, millis_or_duration};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use switchyard_bus::redis::{ConsumerStats, Group, GroupConfig, RedisTarget};
use switchyard_engine::metrics::DiscardsFn;
use switchyard_engine::source::{
    RunningSource, Source, SourceConfig, SourceContext, SourceError, StatsFn,
};
use switchyard_engine::supervise::supervise;
use tokio::task::JoinHandle;

/// Settings of `type: redis_streams`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RedisStreamsConfig {
    /// Redis URL, `redis://:password@host:6379/0`; wins over `addr` and `db`
    /// (`--redis-url`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Redis `host:port` (`--redis-addr`).
    #[serde(default = "default_addr")]
    pub addr: String,
    /// Database number (`--redis-db`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub db: Option<i64>,
    /// Stream key (`--redis-stream-key`).
    #[serde(default = "default_key")]
    pub stream_key: String,
    /// Consumer group shared by every reader of a deployment
    /// (`--redis-consumer-group`).
    #[serde(default = "default_group")]
    pub consumer_group: String,
    /// This consumer's name (`--redis-consumer-name`); default
    /// `switchyard-<source name>-<hostname>-<pid>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumer_name: Option<String>,
    /// Approximate bound of `<stream>:dead` (`--redis-stream-max-len`).
    #[serde(default = "default_max_len")]
    pub stream_max_len: usize,
    /// Longest wait of one read for new entries (`--redis-stream-block-time`).
    #[serde(default = "default_block", with = "millis_or_duration")]
    pub block_time: Duration,
    /// Idle time after which entries of a dead consumer are taken over
    /// (`--redis-stream-claim-time`).
    #[serde(default = "default_claim", with = "millis_or_duration")]
    pub claim_time: Duration,
    /// Entries per read (`--redis-stream-batch-size`).
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// Bound of the source's queue, events.
    #[serde(default = "default_queue_size")]
    pub queue_size: usize,
}

/// `addr`'s default (`--redis-addr`).
pub fn default_addr() -> String {
    "localhost:6379".into()
}
/// The default stream and LIST key.
pub fn default_key() -> String {
    "llm-proxy-events".into()
}
fn default_group() -> String {
    "llm-proxy-dispatchers".into()
}
fn default_max_len() -> usize {
    10_000
}
fn default_block() -> Duration {
    Duration::from_secs(5)
}
fn default_claim() -> Duration {
    Duration::from_secs(30)
}
/// `batch_size`'s default (`--redis-stream-batch-size`).
pub fn default_batch() -> usize {
    500
}

impl Default for RedisStreamsConfig {
    fn default() -> Self {
        Self {
            url: None,
            addr: default_addr(),
            db: None,
            stream_key: default_key(),
            consumer_group: default_group(),
            consumer_name: None,
            stream_max_len: default_max_len(),
            block_time: default_block(),
            claim_time: default_claim(),
            batch_size: default_batch(),
            queue_size: default_queue_size(),
        }
    }
}

/// Where Redis is, from `url`, or `addr` and `db`; errors at the key.
pub fn target(url: Option<&str>, addr: &str, db: Option<i64>) -> Result<RedisTarget, SourceError> {
    RedisTarget::new(url, addr, db).map_err(|m| {
        let key = if url.is_some_and(|u| !u.is_empty()) {
            "url"
        } else {
            "addr"
        };
        SourceError::config(key, m)
    })
}

/// Entries per read and the bounds must be at least one.
pub(crate) fn positive(pairs: &[(&'static str, usize)]) -> Result<(), SourceError> {
    SourceError::from_problems(
        pairs
            .iter()
            .filter(|(_, n)| *n == 0)
            .map(|(key, _)| SourceError::config(*key, "must be greater than 0"))
            .collect(),
    )
}

impl SourceConfig for RedisStreamsConfig {
    fn build(self) -> Result<Box<dyn Source>, SourceError> {
        positive(&[
            ("batch_size", self.batch_size),
            ("stream_max_len", self.stream_max_len),
        ])?;
        let target = target(self.url.as_deref(), &self.addr, self.db)?;
        Ok(Box::new(RedisStreams {
            target,
            config: self,
        }))
    }
}

/// `switchyard-<label>-<hostname>-<pid>`: a name no other process of the
/// deployment takes, and the same for every source of this one.
pub fn default_consumer_name(label: &str) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    format!("switchyard-{label}-{host}-{}", std::process::id())
}

/// A consumer group, ready to read.
#[derive(Debug)]
pub struct RedisStreams {
    target: RedisTarget,
    config: RedisStreamsConfig,
}

#[async_trait::async_trait]
impl Source for RedisStreams {
    fn queue_size(&self) -> usize {
        self.config.queue_size
    }

    /// A reader that stops on an error or a panic is logged, reported down
    /// and started again; it resumes with its own pending entries.
    async fn start(
        self: Box<Self>,
        cx: SourceContext,
    ) -> Result<Box<dyn RunningSource>, SourceError> {
        let RedisStreams { target, config } = *self;
        let consumer = config
            .consumer_name
            .clone()
            .unwrap_or_else(|| default_consumer_name(&cx.name));
        let group = Group::new(GroupConfig {
            stream: config.stream_key,
            group: config.consumer_group,
            consumer,
            count: config.batch_size,
            block: config.block_time,
            claim_idle: config.claim_time,
            dead_max_len: config.stream_max_len,
        });
        let stats = Arc::new(ConsumerStats::default());
        let (intake, s, stop) = (cx.output, stats.clone(), cx.shutdown.clone());
        let task = tokio::spawn(supervise(
            cx.health.register(&cx.name),
            cx.shutdown,
            move || {
                run(
                    target.clone(),
                    group.clone(),
                    intake.clone(),
                    s.clone(),
                    stop.clone(),
                )
            },
        ));
        Ok(Box::new(RunningRedis { task, stats }))
    }
}

/// A Redis reader (streams or LIST), reading.
pub(crate) struct RunningRedis {
    pub(crate) task: JoinHandle<()>,
    pub(crate) stats: Arc<ConsumerStats>,
}

#[async_trait::async_trait]
impl RunningSource for RunningRedis {
    /// The consumer's counters (`read`, `acked`, …, `lost`).
    fn stats(&self) -> StatsFn {
        let s = self.stats.clone();
        Arc::new(move || serde_json::to_value(s.snapshot()).unwrap_or_default())
    }

    fn discards(&self) -> Option<DiscardsFn> {
        let s = self.stats.clone();
        Some(Arc::new(move || s.discards()))
    }

    /// The reader hands back its output at once and returns once every
    /// acknowledgement that could be made was made: the pipeline must keep
    /// draining meanwhile.
    async fn stop(self: Box<Self>) {
        let _ = self.task.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_flags_defaults() {
        let c: RedisStreamsConfig = serde_json::from_value(serde_json::json!({})).unwrap();
        assert_eq!(c.addr, "localhost:6379");
        assert_eq!(c.stream_key, "llm-proxy-events");
        assert_eq!(c.consumer_group, "llm-proxy-dispatchers");
        assert_eq!(c.block_time, Duration::from_secs(5));
        assert_eq!(c.claim_time, Duration::from_secs(30));
        assert_eq!((c.batch_size, c.stream_max_len), (500, 10_000));
        let ms: RedisStreamsConfig =
            serde_json::from_value(serde_json::json!({"block_time": 250})).unwrap();
        assert_eq!(ms.block_time, Duration::from_millis(250));
    }

    #[test]
    fn a_bad_url_is_refused_at_its_key() {
        let c = RedisStreamsConfig {
            url: Some("http://x".into()),
            ..RedisStreamsConfig::default()
        };
        assert_eq!(c.build().err().unwrap().key(), Some("url"));
        let c = RedisStreamsConfig {
            batch_size: 0,
            ..RedisStreamsConfig::default()
        };
        assert_eq!(c.build().err().unwrap().key(), Some("batch_size"));
    }

    #[test]
    fn default_consumer_name_has_label_and_pid() {
        let n = default_consumer_name("file");
        assert!(n.starts_with("switchyard-file-"), "{n}");
        assert!(n.ends_with(&format!("-{}", std::process::id())), "{n}");
    }
}
