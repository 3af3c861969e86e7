//! `--event-bus redis | redis-streams | redis-list`: the Redis flags (with
//! the LLM proxy's `REDIS_*` environment variables) and the wiring of a Redis
//! source into the dispatcher's intake.

use anyhow::{bail, Context};
use clap::Args;
use std::sync::Arc;
use std::time::Duration;
use switchyard_bus::redis::{
    ConsumerSnapshot, ConsumerStats, Group, GroupConfig, ListConfig, RedisTarget,
};
use switchyard_engine::metrics::{ComponentKind, Metrics};
use switchyard_engine::supervise::{supervise, Health};
use switchyard_engine::IntakeSender;
use switchyard_sources::redis_list::ListSourceConfig;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A duration as `5s`/`500ms`, or a bare number of milliseconds.
fn millis_or_duration(s: &str) -> Result<Duration, String> {
    if let Ok(ms) = s.parse::<u64>() {
        return Ok(Duration::from_millis(ms));
    }
    humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 500ms, 5s, or 5000 for ms)"))
}

fn positive(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err("expected a whole number greater than 0".into()),
    }
}

/// Redis settings of `switchyard dispatcher`.
#[derive(Args, Debug, Clone)]
pub struct RedisArgs {
    /// Redis URL, e.g. redis://:password@host:6379/0 (wins over --redis-addr/--redis-db; never logged with its password).
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,
    /// Redis host:port.
    #[arg(long, env = "REDIS_ADDR", default_value = "localhost:6379")]
    pub redis_addr: String,
    /// Redis database number.
    #[arg(long, env = "REDIS_DB")]
    pub redis_db: Option<i64>,
    /// Stream key.
    #[arg(long, env = "REDIS_STREAM_KEY", default_value = "llm-proxy-events")]
    pub redis_stream_key: String,
    /// Consumer group shared by all dispatchers of a deployment.
    #[arg(
        long,
        env = "REDIS_CONSUMER_GROUP",
        default_value = "llm-proxy-dispatchers"
    )]
    pub redis_consumer_group: String,
    /// This consumer's name [default: switchyard-<service>-<hostname>-<pid>].
    #[arg(long, env = "REDIS_CONSUMER_NAME")]
    pub redis_consumer_name: Option<String>,
    /// Approximate bound of the stream (publishers) and of `<stream>:dead`.
    #[arg(long, env = "REDIS_STREAM_MAX_LEN", default_value = "10000", value_parser = positive)]
    pub redis_stream_max_len: usize,
    /// Longest wait of one read for new entries.
    #[arg(long, env = "REDIS_STREAM_BLOCK_TIME", default_value = "5s", value_parser = millis_or_duration)]
    pub redis_stream_block_time: Duration,
    /// Idle time after which entries of a dead consumer are taken over.
    #[arg(long, env = "REDIS_STREAM_CLAIM_TIME", default_value = "30s", value_parser = millis_or_duration)]
    pub redis_stream_claim_time: Duration,
    /// Entries per read (streams and LIST).
    #[arg(long, env = "REDIS_STREAM_BATCH_SIZE", default_value = "500", value_parser = positive)]
    pub redis_stream_batch_size: usize,
    /// LIST log key (`--event-bus redis-list`); its counter is `<key>:seq`.
    #[arg(long, env = "REDIS_LIST_KEY", default_value = "llm-proxy-events")]
    pub redis_list_key: String,
    /// Wait between LIST reads that found nothing.
    #[arg(long, env = "REDIS_LIST_POLL", default_value = "500ms", value_parser = millis_or_duration)]
    pub redis_list_poll: Duration,
    /// How long a missing LIST id may stay missing before it counts as lost.
    #[arg(long, env = "REDIS_LIST_GAP_GRACE", default_value = "2s", value_parser = millis_or_duration)]
    pub redis_list_gap_grace: Duration,
}

/// Which Redis bus `--event-bus` names, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Streams,
    List,
}

impl Kind {
    /// `None` for `memory`; an error naming the choices for anything unknown.
    pub fn from_flag(value: &str) -> anyhow::Result<Option<Kind>> {
        match value {
            "memory" => Ok(None),
            "redis" | "redis-streams" => Ok(Some(Kind::Streams)),
            "redis-list" => Ok(Some(Kind::List)),
            other => bail!(
                "--event-bus {other}: unknown bus; expected memory, redis, redis-streams or redis-list"
            ),
        }
    }
}

/// A running Redis source.
pub struct RedisSource {
    stats: Arc<ConsumerStats>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl RedisSource {
    /// Start reading into `intake`. Connecting happens in the background, so
    /// a Redis that is down at start-up delays events, not the dispatcher.
    /// A reader that stops on an error or a panic is logged, reported down
    /// on `health` and started again (see [`supervise`]).
    pub fn start(
        kind: Kind,
        args: &RedisArgs,
        service: &str,
        intake: IntakeSender,
        health: &Health,
    ) -> anyhow::Result<Self> {
        let target = RedisTarget::new(args.redis_url.as_deref(), &args.redis_addr, args.redis_db)
            .map_err(anyhow::Error::msg)
            .context("check --redis-url / REDIS_URL, --redis-addr / REDIS_ADDR and --redis-db / REDIS_DB")?;
        let stats = Arc::new(ConsumerStats::default());
        let (stop, shutdown) = watch::channel(false);
        let task = match kind {
            Kind::Streams => {
                let consumer = args
                    .redis_consumer_name
                    .clone()
                    .unwrap_or_else(|| default_consumer_name(service));
                let group = Group::new(GroupConfig {
                    stream: args.redis_stream_key.clone(),
                    group: args.redis_consumer_group.clone(),
                    consumer,
                    count: args.redis_stream_batch_size,
                    block: args.redis_stream_block_time,
                    claim_idle: args.redis_stream_claim_time,
                    dead_max_len: args.redis_stream_max_len,
                });
                let (stats, stop) = (stats.clone(), shutdown.clone());
                tokio::spawn(supervise(
                    health.register("redis_streams"),
                    shutdown,
                    move || {
                        switchyard_sources::redis_streams::run(
                            target.clone(),
                            group.clone(),
                            intake.clone(),
                            stats.clone(),
                            stop.clone(),
                        )
                    },
                ))
            }
            Kind::List => {
                let cfg = ListSourceConfig {
                    list: ListConfig {
                        key: args.redis_list_key.clone(),
                        max_len: None,
                        ttl: None,
                    },
                    plugin: service.to_string(),
                    batch: args.redis_stream_batch_size,
                    poll: args.redis_list_poll,
                    gap_grace: args.redis_list_gap_grace,
                    max_in_flight: 4,
                };
                let (stats, stop) = (stats.clone(), shutdown.clone());
                tokio::spawn(supervise(
                    health.register("redis_list"),
                    shutdown,
                    move || {
                        switchyard_sources::redis_list::run(
                            target.clone(),
                            cfg.clone(),
                            intake.clone(),
                            stats.clone(),
                            stop.clone(),
                        )
                    },
                ))
            }
        };
        Ok(Self { stats, stop, task })
    }

    /// Shared counters, for the stats endpoint.
    pub fn stats_handle(&self) -> Arc<ConsumerStats> {
        self.stats.clone()
    }

    /// Report what the source loses on `/metrics`, as `redis`.
    pub fn report_discards(&self, metrics: &Metrics) {
        let stats = self.stats.clone();
        metrics.add_discards(
            "redis",
            ComponentKind::Source,
            Arc::new(move || stats.discards()),
        );
    }

    /// Stop reading. The source hands back its intake sender at once and
    /// finishes its acknowledgements as the engine drains.
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }

    /// Wait until every acknowledgement that could be made was made.
    pub async fn finish(self) -> anyhow::Result<ConsumerSnapshot> {
        self.stop();
        self.task.await.context("Redis source supervisor failed")?;
        Ok(self.stats.snapshot())
    }
}

/// `switchyard-<service>-<hostname>-<pid>`.
fn default_consumer_name(service: &str) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    format!("switchyard-{service}-{host}-{}", std::process::id())
}

/// The Redis part of the final counters line.
pub fn final_counters(s: &ConsumerSnapshot) -> String {
    format!(
        " redis_read={} redis_redelivered={} redis_claimed={} redis_acked={} redis_not_acked={} redis_delivered={} redis_filtered={} redis_dead_lettered={} redis_dropped={} redis_unresolved={} redis_poison={} redis_lost={}",
        s.read,
        s.redelivered,
        s.claimed,
        s.acked,
        s.not_acked,
        s.delivered,
        s.filtered,
        s.dead_lettered,
        s.dropped,
        s.unresolved,
        s.poison,
        s.lost
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bus_names() {
        assert_eq!(Kind::from_flag("memory").unwrap(), None);
        assert_eq!(Kind::from_flag("redis").unwrap(), Some(Kind::Streams));
        assert_eq!(
            Kind::from_flag("redis-streams").unwrap(),
            Some(Kind::Streams)
        );
        assert_eq!(Kind::from_flag("redis-list").unwrap(), Some(Kind::List));
        assert!(Kind::from_flag("nats")
            .unwrap_err()
            .to_string()
            .contains("redis-list"));
    }

    #[test]
    fn block_time_takes_plain_millis_or_durations() {
        assert_eq!(
            millis_or_duration("250").unwrap(),
            Duration::from_millis(250)
        );
        assert_eq!(millis_or_duration("2s").unwrap(), Duration::from_secs(2));
        assert!(millis_or_duration("soon").is_err());
    }

    #[test]
    fn default_consumer_name_has_service_and_pid() {
        let n = default_consumer_name("file");
        assert!(n.starts_with("switchyard-file-"), "{n}");
        assert!(n.ends_with(&format!("-{}", std::process::id())), "{n}");
    }
}
