//! The source flags of `switchyard dispatcher` — `--tail*`, `--tcp`,
//! `--udp`, `--syslog-*`, `--demo*`, `--docker*` and, with `--event-bus
//! redis | redis-streams | redis-list`, the Redis flags with the LLM proxy's
//! `REDIS_*` variables — and their translation into the sources' typed
//! settings (the same ones a pipeline file's `sources:` holds).

use anyhow::{bail, Context};
use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use switchyard_engine::source::{Source, SourceConfig};
use switchyard_sources::demo::source::DemoSourceConfig;
use switchyard_sources::demo::DemoKind;
use switchyard_sources::docker::source::DockerSourceConfig;
use switchyard_sources::docker::DEFAULT_SOCKET;
use switchyard_sources::file_tail::source::{FileSourceConfig, Multiline};
use switchyard_sources::file_tail::ReadFrom;
use switchyard_sources::http::source::HttpSourceConfig;
use switchyard_sources::net::source::{
    NetSourceConfig, SyslogTcpConfig, SyslogUdpConfig, TcpConfig, UdpConfig,
};
use switchyard_sources::redis_list::source::RedisListConfig;
use switchyard_sources::redis_streams::source::{default_consumer_name, RedisStreamsConfig};
use switchyard_sources::settings::millis_or_duration::parse as millis_or_duration;

/// File tail options of `switchyard dispatcher`.
#[derive(Args, Debug, Clone)]
pub struct TailArgs {
    /// Follow files matching this glob (repeatable), one log record per line.
    #[arg(
        long = "tail",
        value_name = "GLOB",
        env = "DISPATCHER_TAIL",
        value_delimiter = ','
    )]
    pub globs: Vec<String>,
    /// Where tailed files' delivered positions are kept across restarts.
    #[arg(long, env = "DISPATCHER_STATE_DIR", default_value = "switchyard-state")]
    pub state_dir: PathBuf,
    /// Where to start in files that exist at start-up and have no position yet.
    #[arg(long, env = "DISPATCHER_TAIL_FROM", default_value = "head", value_parser = ["head", "tail"])]
    pub tail_from: String,
    /// Read tailed lines that are JSON objects as structured records.
    #[arg(long, env = "DISPATCHER_TAIL_JSON")]
    pub tail_json: bool,
    /// How long a tailed line without its newline waits before it is sent as is.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub tail_partial_timeout: Duration,
    /// Join tailed lines into multiline events: a line matching this regular
    /// expression starts an event, the lines after it that do not match are
    /// appended (stack traces, tracebacks).
    #[arg(long, value_name = "REGEX", env = "DISPATCHER_TAIL_MULTILINE_START")]
    pub tail_multiline_start: Option<String>,
    /// Most lines in one multiline event; longer events are cut and counted.
    #[arg(long, default_value = "500")]
    pub tail_multiline_max_lines: usize,
    /// Most bytes in one multiline event; longer events are cut and counted.
    #[arg(long, default_value = "262144")]
    pub tail_multiline_max_bytes: usize,
}

impl TailArgs {
    /// `type: file` as these flags describe it, if `--tail` was given.
    pub fn config(&self) -> Option<FileSourceConfig> {
        if self.globs.is_empty() {
            return None;
        }
        let mut c = FileSourceConfig::new(self.globs.clone());
        c.state_dir = self.state_dir.clone();
        c.read_from = match self.tail_from.as_str() {
            "tail" => ReadFrom::Tail,
            _ => ReadFrom::Head,
        };
        c.json = self.tail_json;
        c.partial_line_timeout = self.tail_partial_timeout;
        c.multiline = self.tail_multiline_start.as_ref().map(|start| Multiline {
            start: start.clone(),
            max_lines: self.tail_multiline_max_lines,
            max_bytes: self.tail_multiline_max_bytes,
        });
        Some(c)
    }
}

/// Network source options of `switchyard dispatcher`.
#[derive(Args, Debug, Clone)]
pub struct NetArgs {
    /// Accept log lines over TCP on this address (one record per line).
    #[arg(long = "tcp", value_name = "ADDR", env = "DISPATCHER_TCP")]
    pub tcp: Option<SocketAddr>,
    /// Accept log lines over UDP on this address.
    #[arg(long = "udp", value_name = "ADDR", env = "DISPATCHER_UDP")]
    pub udp: Option<SocketAddr>,
    /// Accept syslog (RFC 5424/3164, newline or octet-counted) over TCP.
    #[arg(
        long = "syslog-tcp",
        value_name = "ADDR",
        env = "DISPATCHER_SYSLOG_TCP"
    )]
    pub syslog_tcp: Option<SocketAddr>,
    /// Accept syslog (RFC 5424/3164) over UDP.
    #[arg(
        long = "syslog-udp",
        value_name = "ADDR",
        env = "DISPATCHER_SYSLOG_UDP"
    )]
    pub syslog_udp: Option<SocketAddr>,
    /// Longest network message, bytes (longer ones are cut and counted).
    #[arg(long, default_value = "65536")]
    pub max_message_bytes: usize,
    /// Most TCP connections at once, per listener.
    #[arg(long, default_value = "256")]
    pub max_connections: usize,
}

impl NetArgs {
    /// One listener's settings.
    pub fn config(&self, address: SocketAddr) -> NetSourceConfig {
        NetSourceConfig {
            max_message_bytes: self.max_message_bytes,
            max_connections: self.max_connections,
            ..NetSourceConfig::new(address)
        }
    }
}

/// Demo source options of `switchyard dispatcher`.
#[derive(Args, Debug, Clone)]
pub struct DemoArgs {
    /// Generate events: `logs` (application log records) or `llm` (LLM proxy
    /// exchanges, turned into calls by the LLM transformer).
    #[arg(long = "demo", value_name = "KIND", env = "DISPATCHER_DEMO")]
    pub kind: Option<DemoKind>,
    /// Demo events per second; 0 = as fast as the pipeline takes them.
    #[arg(long, env = "DISPATCHER_DEMO_RATE", default_value = "100")]
    pub demo_rate: u64,
    /// Stop generating after this many events (the dispatcher keeps running).
    #[arg(long, env = "DISPATCHER_DEMO_COUNT")]
    pub demo_count: Option<u64>,
    /// Seed of the demo generator: the same seed gives the same events.
    #[arg(long, env = "DISPATCHER_DEMO_SEED", default_value = "0")]
    pub demo_seed: u64,
}

impl DemoArgs {
    /// `type: demo` as these flags describe it, if `--demo` was given.
    pub fn config(&self) -> Option<DemoSourceConfig> {
        self.kind.map(|kind| DemoSourceConfig {
            rate: self.demo_rate,
            count: self.demo_count,
            seed: self.demo_seed,
            ..DemoSourceConfig::new(kind)
        })
    }
}

/// Container logs options of `switchyard dispatcher`.
#[derive(Args, Debug, Clone)]
pub struct DockerArgs {
    /// Follow the stdout and stderr of running containers through the Engine
    /// API at this unix socket (the flag alone: /var/run/docker.sock).
    #[arg(
        long = "docker",
        value_name = "SOCKET",
        env = "DISPATCHER_DOCKER",
        num_args = 0..=1,
        default_missing_value = DEFAULT_SOCKET
    )]
    pub socket: Option<PathBuf>,
    /// Follow only containers whose name matches this glob (repeatable).
    #[arg(
        long = "docker-include",
        value_name = "GLOB",
        env = "DISPATCHER_DOCKER_INCLUDE",
        value_delimiter = ','
    )]
    pub include: Vec<String>,
    /// Pause between two listings of the running containers.
    #[arg(long, default_value = "5s", value_parser = crate::cli::duration)]
    pub docker_list_interval: Duration,
}

impl DockerArgs {
    /// `type: docker` as these flags describe it, if `--docker` was given;
    /// positions live in `state_dir` beside the file tail's.
    pub fn config(&self, state_dir: &std::path::Path) -> Option<DockerSourceConfig> {
        let socket = self.socket.as_ref()?;
        Some(DockerSourceConfig {
            include: self.include.clone(),
            state_dir: state_dir.to_path_buf(),
            list_interval: self.docker_list_interval,
            ..DockerSourceConfig::new(socket.clone())
        })
    }
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

impl RedisArgs {
    /// `type: redis_streams`; the consumer is named after `service`.
    pub fn streams(&self, service: &str) -> RedisStreamsConfig {
        RedisStreamsConfig {
            url: self.redis_url.clone(),
            addr: self.redis_addr.clone(),
            db: self.redis_db,
            stream_key: self.redis_stream_key.clone(),
            consumer_group: self.redis_consumer_group.clone(),
            consumer_name: Some(
                self.redis_consumer_name
                    .clone()
                    .unwrap_or_else(|| default_consumer_name(service)),
            ),
            stream_max_len: self.redis_stream_max_len,
            block_time: self.redis_stream_block_time,
            claim_time: self.redis_stream_claim_time,
            batch_size: self.redis_stream_batch_size,
            ..RedisStreamsConfig::default()
        }
    }

    /// `type: redis_list`; the offset is `service`'s.
    pub fn list(&self, service: &str) -> RedisListConfig {
        RedisListConfig {
            url: self.redis_url.clone(),
            addr: self.redis_addr.clone(),
            db: self.redis_db,
            list_key: self.redis_list_key.clone(),
            plugin: Some(service.to_string()),
            batch_size: self.redis_stream_batch_size,
            poll: self.redis_list_poll,
            gap_grace: self.redis_list_gap_grace,
            ..RedisListConfig::default()
        }
    }
}

/// `type: http` as the dispatcher's flags describe it: `--listen`,
/// `--max-body`, `--ingest-token`, `--ingest-wait` and `--ingest-*`. Its
/// `202` waits for durability when the sink has a disk buffer, at least
/// `ack_wait`.
pub fn http(args: &crate::cli::DispatcherArgs, ack_wait: Duration) -> HttpSourceConfig {
    let limits = args.ingest_limits.limits();
    HttpSourceConfig {
        max_body: args.max_body,
        token: args.ingest_token.clone(),
        queue_wait: args.ingest_wait,
        ack_timeout: args.ingest_wait.max(ack_wait),
        max_connections: limits.max_connections,
        max_concurrent_requests: limits.max_concurrent_requests,
        max_body_memory: limits.max_body_memory,
        header_timeout: limits.header_timeout,
        body_timeout: limits.body_timeout,
        idle_timeout: limits.idle_timeout,
        ..HttpSourceConfig::new(args.listen)
    }
}

/// Which Redis bus `--event-bus` names, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Redis Streams with a consumer group.
    Streams,
    /// The Redis LIST log.
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

/// Where a flag source's counters go in the dispatcher's `/stats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// `"tail"`.
    Tail,
    /// `"net"`, under the source's name.
    Net,
    /// `"demo"`.
    Demo,
    /// `"docker"`.
    Docker,
    /// `"redis"`.
    Redis,
}

/// One source the flags ask for.
pub struct FlagSource {
    /// Its name on the health board (`tail`, `syslog_udp`, `redis_streams`).
    pub name: &'static str,
    /// Its `component` label on `/metrics` (`redis` for either Redis source).
    pub component: &'static str,
    /// Where its counters go in `/stats`.
    pub slot: Slot,
    /// The flags to check when it cannot start.
    pub hint: &'static str,
    /// The source itself.
    pub source: Box<dyn Source>,
}

/// Every source the flags ask for, besides HTTP ingest, checked. `service`
/// names the Redis consumer and LIST offset.
pub fn sources(
    args: &crate::cli::DispatcherArgs,
    redis: Option<Kind>,
) -> anyhow::Result<Vec<FlagSource>> {
    let mut out = Vec::new();
    let mut add = |name, component, slot, hint, built: Result<Box<dyn Source>, _>| {
        let source = built.with_context(|| format!("cannot start {hint}"))?;
        out.push(FlagSource {
            name,
            component,
            slot,
            hint,
            source,
        });
        anyhow::Ok(())
    };
    let service = args.service.as_str();
    const REDIS: &str =
        "--event-bus (check --redis-url / REDIS_URL, --redis-addr / REDIS_ADDR and --redis-db / REDIS_DB)";
    match redis {
        Some(Kind::Streams) => add(
            "redis_streams",
            "redis",
            Slot::Redis,
            REDIS,
            args.redis.streams(service).build(),
        )?,
        Some(Kind::List) => add(
            "redis_list",
            "redis",
            Slot::Redis,
            REDIS,
            args.redis.list(service).build(),
        )?,
        None => {}
    }
    if let Some(c) = args.tail.config() {
        let hint = "--tail (check --tail and the --tail-multiline-* flags)";
        add("tail", "tail", Slot::Tail, hint, c.build())?;
    }
    let net = &args.net;
    for (name, addr, hint) in [
        ("tcp", net.tcp, "--tcp"),
        ("syslog_tcp", net.syslog_tcp, "--syslog-tcp"),
        ("udp", net.udp, "--udp"),
        ("syslog_udp", net.syslog_udp, "--syslog-udp"),
    ] {
        let Some(addr) = addr else { continue };
        let c = net.config(addr);
        let built = match name {
            "tcp" => TcpConfig(c).build(),
            "syslog_tcp" => SyslogTcpConfig(c).build(),
            "udp" => UdpConfig(c).build(),
            _ => SyslogUdpConfig(c).build(),
        };
        add(name, name, Slot::Net, hint, built)?;
    }
    if let Some(c) = args.demo.config() {
        add("demo", "demo", Slot::Demo, "--demo", c.build())?;
    }
    if let Some(c) = args.docker.config(&args.tail.state_dir) {
        let hint = "--docker (check --docker-include, --state-dir)";
        add("docker", "docker", Slot::Docker, hint, c.build())?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn dispatcher(args: &[&str]) -> crate::cli::DispatcherArgs {
        let cli = Cli::try_parse_from(["switchyard", "dispatcher"].iter().chain(args)).unwrap();
        let Command::Dispatcher(args) = cli.command else {
            panic!("parsed as another command");
        };
        *args
    }

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

    /// The flags' defaults are the typed settings' defaults: a pipeline file
    /// that names only the type gets what the flag alone gives.
    #[test]
    fn flag_defaults_are_the_typed_defaults() {
        let a = dispatcher(&["--tail", "x", "--demo", "logs", "--docker"]);
        let file: FileSourceConfig =
            serde_json::from_value(serde_json::json!({"include": ["x"]})).unwrap();
        assert_eq!(json(&a.tail.config().unwrap()), json(&file));
        let demo: DemoSourceConfig =
            serde_json::from_value(serde_json::json!({"kind": "logs"})).unwrap();
        assert_eq!(json(&a.demo.config().unwrap()), json(&demo));
        let docker: DockerSourceConfig = serde_json::from_value(serde_json::json!({})).unwrap();
        assert_eq!(
            json(&a.docker.config(&a.tail.state_dir).unwrap()),
            json(&docker)
        );
        let net: NetSourceConfig =
            serde_json::from_value(serde_json::json!({"address": "127.0.0.1:1"})).unwrap();
        assert_eq!(
            json(&a.net.config("127.0.0.1:1".parse().unwrap())),
            json(&net)
        );
        let mut streams = a.redis.streams("file");
        streams.consumer_name = None;
        assert_eq!(json(&streams), json(&RedisStreamsConfig::default()));
        let mut list = a.redis.list("file");
        assert_eq!(list.plugin.take().as_deref(), Some("file"));
        assert_eq!(json(&list), json(&RedisListConfig::default()));
    }

    /// Settings as JSON, to compare them field by field.
    fn json<T: serde::Serialize>(v: &T) -> serde_json::Value {
        serde_json::to_value(v).unwrap()
    }

    #[test]
    fn each_flag_source_under_its_names() {
        let a = dispatcher(&[
            "--tail",
            "x",
            "--syslog-udp",
            "127.0.0.1:1",
            "--tcp",
            "127.0.0.1:2",
        ]);
        let got: Vec<_> = sources(&a, Some(Kind::Streams))
            .unwrap()
            .iter()
            .map(|s| (s.name, s.component, s.slot))
            .collect();
        assert_eq!(
            got,
            [
                ("redis_streams", "redis", Slot::Redis),
                ("tail", "tail", Slot::Tail),
                ("tcp", "tcp", Slot::Net),
                ("syslog_udp", "syslog_udp", Slot::Net),
            ]
        );
    }
}
