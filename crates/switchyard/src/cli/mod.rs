//! Command-line interface. Flags beat environment variables.
//!
//! - this module: the commands and the dispatcher's main flags;
//! - [`sources`]: the dispatcher's source flags, turned into the sources'
//!   typed configurations;
//! - [`delivery`], [`ingest`], [`buffer`]: the flag groups of the delivery
//!   stack, the HTTP ingest bounds and the sink's buffer;
//! - [`docs`]: shell completions and the manual page, made from these.

pub mod buffer;
pub mod delivery;
pub mod docs;
pub mod ingest;
pub mod sources;

use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "switchyard",
    version,
    about = "Moves observability events from where they happen to where they are read"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Threads of the async runtime of a long-running command (default: one
    /// per CPU, or `TOKIO_WORKER_THREADS`). With Redis on the same small
    /// machine, `1` leaves Redis a core and keeps each batch in one core's
    /// caches: at 2 KB events into the file sink with `direct=true` the
    /// dispatcher then needed about 14 % less CPU per event
    /// (docs/BENCHMARKS.md).
    #[arg(long, global = true, env = "SWITCHYARD_WORKER_THREADS",
          value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub worker_threads: Option<u16>,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the dispatcher: event bus + HTTP ingest → batching → retries, circuit breaker, dead-letter queue → one sink.
    Dispatcher(Box<DispatcherArgs>),
    /// Run a pipeline of named sources, transforms and sinks from a YAML file.
    Run(crate::pipeline::run::ConfigArgs),
    /// Check a pipeline file and report every error with its key and line.
    Validate(crate::pipeline::run::ConfigArgs),
    /// List the available source, transform and sink types (sinks are the values of `--service`).
    Plugins,
    /// Inspect, replay or purge the dead-letter queue.
    #[command(subcommand)]
    Dlq(crate::dlq_cmd::DlqCommand),
    /// Load tools that measure a real dispatcher.
    #[command(subcommand)]
    Bench(crate::bench::BenchCommand),
    /// Run a gRPC mesh node (CollectiveDispatcher) from a YAML config.
    Node(crate::node::NodeArgs),
    /// Talk to mesh nodes from the shell.
    #[command(subcommand)]
    Mesh(MeshCommand),
    /// Print the shell completion script for bash, zsh or fish.
    Completions(crate::cli::docs::CompletionsArgs),
    /// Print the manual page in roff (`switchyard man | man -l -`).
    Man,
}

#[derive(Subcommand)]
pub enum MeshCommand {
    /// Call Connect, Serve or Dispatch on a node; print the response as JSON.
    Call(Box<crate::mesh_call::CallArgs>),
}

pub(crate) fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 500ms, 5s, 1m)"))
}

pub(crate) fn key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err("expected KEY=VALUE".into()),
    }
}

pub(crate) fn positive(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err("expected a whole number greater than 0".into()),
    }
}

#[derive(Args, Debug)]
pub struct DispatcherArgs {
    /// Sink plugin (see `switchyard plugins`).
    #[arg(long, env = "DISPATCHER_SERVICE", default_value = "file")]
    pub service: String,
    /// File path or API endpoint of the service. Also read from LLM_PROXY_ENDPOINT.
    /// The file service defaults to `events.jsonl`.
    #[arg(long, env = "DISPATCHER_ENDPOINT")]
    pub endpoint: Option<String>,
    /// API key for external services (never logged).
    #[arg(long, env = "LLM_PROXY_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// The original's in-process bus buffer (also OBSERVABILITY_BUFFER_SIZE).
    /// Checked and accepted for compatibility; the dispatcher has no
    /// in-process bus (its queues are --queue-capacity).
    #[arg(long, env = "DISPATCHER_BUFFER", value_parser = positive)]
    pub buffer: Option<usize>,
    /// Events per batch sent to the service.
    #[arg(long, env = "DISPATCHER_BATCH_SIZE", default_value = "100", value_parser = positive)]
    pub batch_size: usize,
    /// Longest time an event waits for its batch to fill.
    #[arg(long, env = "DISPATCHER_FLUSH_INTERVAL", default_value = "5s", value_parser = duration)]
    pub flush_interval: Duration,
    /// Retries of a failed batch after the first attempt.
    #[arg(long, env = "DISPATCHER_RETRY_ATTEMPTS", default_value = "3")]
    pub retry_attempts: u32,
    /// Ceiling of the first retry's delay; doubles each retry (full jitter, max 30s).
    #[arg(long, env = "DISPATCHER_RETRY_BACKOFF", default_value = "1s", value_parser = duration)]
    pub retry_backoff: Duration,
    /// Include debug information in payloads (response headers, secrets redacted).
    #[arg(long, env = "LLM_PROXY_DISPATCHER_VERBOSE")]
    pub verbose: bool,
    /// Extra sink option, repeatable: `timeout=10s`, `concurrency=16`,
    /// `batch-max-events=200`, `encoding=ndjson`, `header.X-Tenant=acme`, ...
    /// (the sink's documentation lists its keys).
    #[arg(long = "sink-option", value_name = "KEY=VALUE", value_parser = key_value)]
    pub sink_options: Vec<(String, String)>,
    /// Captured headers whose values are redacted in payloads (comma-separated;
    /// replaces the default list).
    #[arg(
        long,
        env = "DISPATCHER_REDACT_HEADERS",
        value_delimiter = ',',
        default_value = "Authorization,Proxy-Authorization,Cookie,Set-Cookie,X-Api-Key,Api-Key"
    )]
    pub redact_headers: Vec<String>,
    /// Address of the HTTP ingest API, /health and /stats.
    #[arg(long, env = "DISPATCHER_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Event bus: `memory`, `redis` (= `redis-streams`), `redis-streams` or `redis-list`.
    #[arg(long, env = "LLM_PROXY_EVENT_BUS", default_value = "memory")]
    pub event_bus: String,
    #[command(flatten)]
    pub redis: crate::cli::sources::RedisArgs,
    /// Bound of the events waiting in memory: an eighth in the intake queue
    /// in front of the transforms, the rest in the sink's buffer.
    #[arg(long, env = "DISPATCHER_QUEUE_CAPACITY", default_value = "10000", value_parser = positive)]
    pub queue_capacity: usize,
    /// Bound of the bytes waiting in the sink's buffer (each event counted by
    /// its size estimate), besides `--queue-capacity`'s bound in events:
    /// events of a few KB fill memory long before they fill the count.
    #[arg(long, env = "DISPATCHER_QUEUE_MAX_BYTES", default_value = "67108864", value_parser = positive)]
    pub queue_max_bytes: usize,
    /// Longest a request waits for queue room before `503 Retry-After`.
    #[arg(long, env = "DISPATCHER_INGEST_WAIT", default_value = "5s", value_parser = duration)]
    pub ingest_wait: Duration,
    /// Largest accepted ingest body, bytes.
    #[arg(long, env = "DISPATCHER_MAX_BODY", default_value = "10485760", value_parser = positive)]
    pub max_body: usize,
    /// Bearer token that ingest requests must carry (never logged).
    #[arg(long, env = "SWITCHYARD_INGEST_TOKEN", hide_env_values = true)]
    pub ingest_token: Option<String>,
    /// Sync the file once per batch (`false` trades durability for speed).
    #[arg(long, env = "DISPATCHER_FILE_SYNC", default_value_t = true, action = clap::ArgAction::Set)]
    pub file_sync: bool,
    /// Write the process id here once listening; removed at exit.
    /// With --detach it defaults to `switchyard-dispatcher.pid`.
    #[arg(long, env = "DISPATCHER_PID_FILE")]
    pub pid_file: Option<PathBuf>,
    /// Run in the background: return once the dispatcher is listening.
    #[arg(long, env = "DISPATCHER_DETACH")]
    pub detach: bool,
    /// Where a detached dispatcher writes its log and final counters.
    #[arg(
        long,
        env = "DISPATCHER_LOG_FILE",
        default_value = "switchyard-dispatcher.log"
    )]
    pub log_file: PathBuf,
    #[command(flatten)]
    pub disk_buffer: crate::cli::buffer::BufferArgs,
    #[command(flatten)]
    pub tail: crate::cli::sources::TailArgs,
    #[command(flatten)]
    pub net: crate::cli::sources::NetArgs,
    #[command(flatten)]
    pub demo: crate::cli::sources::DemoArgs,
    #[command(flatten)]
    pub docker: crate::cli::sources::DockerArgs,
    #[command(flatten)]
    pub transforms: crate::transforms::TransformArgs,
    #[command(flatten)]
    pub delivery: crate::cli::delivery::DeliveryArgs,
    #[command(flatten)]
    pub ingest_limits: crate::cli::ingest::IngestLimitArgs,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn worker_threads_is_taken_before_or_after_the_command_and_must_be_positive() {
        let after =
            Cli::try_parse_from(["switchyard", "dispatcher", "--worker-threads", "1"]).unwrap();
        assert_eq!(after.worker_threads, Some(1));
        let before =
            Cli::try_parse_from(["switchyard", "--worker-threads", "3", "dispatcher"]).unwrap();
        assert_eq!(before.worker_threads, Some(3));
        let err = Cli::try_parse_from(["switchyard", "dispatcher", "--worker-threads", "0"])
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("0 is not in 1..=1024"), "{err}");
    }

    #[test]
    fn mesh_call_takes_a_client_certificate_only_with_its_key_and_a_ca() {
        let call = |extra: &[&str]| {
            let base = ["switchyard", "mesh", "call"];
            let rpc = [
                "serve",
                "--namespace",
                "n",
                "--service",
                "S",
                "--method",
                "M",
            ];
            Cli::try_parse_from(base.iter().chain(extra).chain(rpc.iter()))
        };
        let ok = call(&["--ca", "ca.pem", "--cert", "me.pem", "--key", "me.key"]).unwrap();
        let Command::Mesh(MeshCommand::Call(args)) = ok.command else {
            panic!("parsed as another command");
        };
        assert_eq!(args.cert.as_deref(), Some(std::path::Path::new("me.pem")));
        assert!(
            call(&["--ca", "ca.pem", "--cert", "me.pem"]).is_err(),
            "no key"
        );
        assert!(
            call(&["--cert", "me.pem", "--key", "me.key"]).is_err(),
            "no CA"
        );
        assert!(
            call(&["--ca", "ca.pem", "--key", "me.key"]).is_err(),
            "no cert"
        );
    }
}
