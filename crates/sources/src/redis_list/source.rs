//! `type: redis_list`: the Redis LIST log as a pipeline source — its typed
//! settings (the `switchyard dispatcher --event-bus redis-list` flags
//! `--redis-*`, with their defaults) and its start under supervision.

use super::{run, ListSourceConfig};
use crate::redis_streams::source::{
    default_addr, default_batch, default_key, positive, target, RunningRedis,
};
use crate::settings::{default_queue_size, millis_or_duration};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use switchyard_bus::redis::{ConsumerStats, ListConfig, RedisTarget};
use switchyard_engine::source::{RunningSource, Source, SourceConfig, SourceContext, SourceError};
use switchyard_engine::supervise::supervise;

/// Settings of `type: redis_list`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RedisListConfig {
    /// Redis URL; wins over `addr` and `db` (`--redis-url`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Redis `host:port` (`--redis-addr`).
    #[serde(default = "default_addr")]
    pub addr: String,
    /// Database number (`--redis-db`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub db: Option<i64>,
    /// LIST log key; its counter is `<key>:seq` (`--redis-list-key`).
    #[serde(default = "default_key")]
    pub list_key: String,
    /// The name in the offset key `llm-proxy-dispatcher:<plugin>:last_id`
    /// (the dispatcher's `--service`); default: the source's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin: Option<String>,
    /// Entries per read (`--redis-stream-batch-size`).
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// Wait between reads that found nothing (`--redis-list-poll`).
    #[serde(default = "default_poll", with = "millis_or_duration")]
    pub poll: Duration,
    /// How long a missing id may stay missing before it counts as lost
    /// (`--redis-list-gap-grace`).
    #[serde(default = "default_gap_grace", with = "millis_or_duration")]
    pub gap_grace: Duration,
    /// Bound of the source's queue, events.
    #[serde(default = "default_queue_size")]
    pub queue_size: usize,
}

fn default_poll() -> Duration {
    Duration::from_millis(500)
}
fn default_gap_grace() -> Duration {
    Duration::from_secs(2)
}

/// Reads handed to the engine and not yet done.
const MAX_IN_FLIGHT: usize = 4;

impl Default for RedisListConfig {
    fn default() -> Self {
        Self {
            url: None,
            addr: default_addr(),
            db: None,
            list_key: default_key(),
            plugin: None,
            batch_size: default_batch(),
            poll: default_poll(),
            gap_grace: default_gap_grace(),
            queue_size: default_queue_size(),
        }
    }
}

impl SourceConfig for RedisListConfig {
    fn build(self) -> Result<Box<dyn Source>, SourceError> {
        positive(&[("batch_size", self.batch_size)])?;
        let target = target(self.url.as_deref(), &self.addr, self.db)?;
        Ok(Box::new(RedisList {
            target,
            config: self,
        }))
    }
}

/// A LIST log, ready to read.
#[derive(Debug)]
pub struct RedisList {
    target: RedisTarget,
    config: RedisListConfig,
}

#[async_trait::async_trait]
impl Source for RedisList {
    fn queue_size(&self) -> usize {
        self.config.queue_size
    }

    /// A reader that stops on an error or a panic is logged, reported down
    /// and started again from the stored offset.
    async fn start(
        self: Box<Self>,
        cx: SourceContext,
    ) -> Result<Box<dyn RunningSource>, SourceError> {
        let RedisList { target, config } = *self;
        let cfg = ListSourceConfig {
            list: ListConfig {
                key: config.list_key,
                max_len: None,
                ttl: None,
            },
            plugin: config.plugin.unwrap_or_else(|| cx.name.clone()),
            batch: config.batch_size,
            poll: config.poll,
            gap_grace: config.gap_grace,
            max_in_flight: MAX_IN_FLIGHT,
        };
        let stats = Arc::new(ConsumerStats::default());
        let (intake, s, stop) = (cx.output, stats.clone(), cx.shutdown.clone());
        let task = tokio::spawn(supervise(
            cx.health.register(&cx.name),
            cx.shutdown,
            move || {
                run(
                    target.clone(),
                    cfg.clone(),
                    intake.clone(),
                    s.clone(),
                    stop.clone(),
                )
            },
        ));
        Ok(Box::new(RunningRedis { task, stats }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_flags_defaults() {
        let c: RedisListConfig = serde_json::from_value(serde_json::json!({})).unwrap();
        assert_eq!(c.list_key, "llm-proxy-events");
        assert_eq!(c.poll, Duration::from_millis(500));
        assert_eq!(c.gap_grace, Duration::from_secs(2));
        assert_eq!(c.batch_size, 500);
        let err = serde_json::from_value::<RedisListConfig>(serde_json::json!({"stream_key": "x"}))
            .unwrap_err();
        assert!(
            err.to_string().contains("unknown field `stream_key`"),
            "{err}"
        );
    }
}
