//! The shape of a pipeline file. Every struct refuses unknown keys, so a typo
//! is an error that names the key instead of a setting silently ignored.

use serde::{Deserialize, Deserializer};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use switchyard_engine::WhenFull;

/// `10s`, `500ms`, `1h`.
pub fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    humantime::parse_duration(&s)
        .map_err(|e| serde::de::Error::custom(format!("`{s}` is not a duration ({e})")))
}

/// `shutdown_timeout:` — the longest a stop drains before delivery is
/// abandoned (see `crate::shutdown`).
#[derive(Debug, Deserialize)]
pub struct ShutdownTimeout(#[serde(deserialize_with = "duration")] pub Duration);

impl Default for ShutdownTimeout {
    fn default() -> Self {
        Self(Duration::from_secs(30))
    }
}

/// The admin server: `/metrics`, `/health`, `/ready`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Admin {
    /// Listen address.
    pub address: SocketAddr,
}

fn default_source_queue() -> usize {
    10_000
}

/// One source, by `type`. Read in two steps (the `type`, then that type's
/// struct) so an error inside it keeps its exact key path.
#[derive(Debug)]
pub enum SourceConfig {
    /// The HTTP ingest API (`/v1/events`, `/v1/logs`).
    Http(HttpSource),
    /// Follow files.
    File(FileSource),
    /// Lines over TCP.
    Tcp(NetSource),
    /// Lines over UDP.
    Udp(NetSource),
    /// Syslog over TCP.
    SyslogTcp(NetSource),
    /// Syslog over UDP.
    SyslogUdp(NetSource),
}

impl SourceConfig {
    /// The values of `type`.
    pub const TYPES: [&'static str; 6] = ["http", "file", "tcp", "udp", "syslog_tcp", "syslog_udp"];
}

/// `type: http`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSource {
    /// Listen address.
    pub address: SocketAddr,
    /// Largest body, bytes.
    #[serde(default = "default_max_body")]
    pub max_body: usize,
    /// Bearer token requests must carry.
    pub token: Option<String>,
    /// Longest wait for queue room before `503`.
    #[serde(default = "default_queue_wait", deserialize_with = "duration")]
    pub queue_wait: Duration,
    /// Bound of the source's queue, events.
    #[serde(default = "default_source_queue")]
    pub queue_size: usize,
    /// Answer `202` only once every event is settled (on a sink's disk
    /// buffer, delivered, filtered or dead-lettered). Default: on when every
    /// sink this source feeds has a disk buffer.
    pub acknowledgements: Option<bool>,
    /// Longest wait for the acknowledgement before `503`.
    #[serde(default = "default_ack_timeout", deserialize_with = "duration")]
    pub ack_timeout: Duration,
    /// Most open connections; more are closed as soon as accepted.
    #[serde(default = "http_limits::max_connections")]
    pub max_connections: usize,
    /// Most requests in progress; more are answered `503` + `Retry-After`.
    #[serde(default = "http_limits::max_concurrent_requests")]
    pub max_concurrent_requests: usize,
    /// Most body bytes held across all requests; over it, `503` +
    /// `Retry-After`.
    #[serde(default = "http_limits::max_body_memory")]
    pub max_body_memory: usize,
    /// Longest time from a request's first byte to its complete head.
    #[serde(default = "http_limits::header_timeout", deserialize_with = "duration")]
    pub header_timeout: Duration,
    /// Longest time to receive a whole body (then `408`).
    #[serde(default = "http_limits::body_timeout", deserialize_with = "duration")]
    pub body_timeout: Duration,
    /// Longest an open connection may wait without a request.
    #[serde(default = "http_limits::idle_timeout", deserialize_with = "duration")]
    pub idle_timeout: Duration,
}

/// The defaults of the HTTP source's bounds: the library's.
mod http_limits {
    use std::time::Duration;
    use switchyard_sources::http::IngestLimits;

    pub fn max_connections() -> usize {
        IngestLimits::default().max_connections
    }
    pub fn max_concurrent_requests() -> usize {
        IngestLimits::default().max_concurrent_requests
    }
    pub fn max_body_memory() -> usize {
        IngestLimits::default().max_body_memory
    }
    pub fn header_timeout() -> Duration {
        IngestLimits::default().header_timeout
    }
    pub fn body_timeout() -> Duration {
        IngestLimits::default().body_timeout
    }
    pub fn idle_timeout() -> Duration {
        IngestLimits::default().idle_timeout
    }
}

fn default_ack_timeout() -> Duration {
    Duration::from_secs(10)
}

/// `type: file`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSource {
    /// Globs of the files.
    pub include: Vec<String>,
    /// Start of files without a saved position: `head` or `tail`.
    #[serde(default)]
    pub read_from: ReadFrom,
    /// Where delivered positions are kept.
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    /// Parse lines that are JSON objects.
    #[serde(default)]
    pub json: bool,
    /// Wait of a line without its newline.
    #[serde(default = "default_partial", deserialize_with = "duration")]
    pub partial_line_timeout: Duration,
    /// Join continuation lines into one event.
    pub multiline: Option<Multiline>,
    /// Bound of the source's queue, events.
    #[serde(default = "default_source_queue")]
    pub queue_size: usize,
}

impl FileSource {
    /// The tail's settings, as `run` starts it and `validate` checks it.
    pub fn tail_config(&self) -> switchyard_sources::file_tail::TailConfig {
        use switchyard_sources::file_tail::{MultilineConfig, ReadFrom as From, TailConfig};
        let mut config = TailConfig::new(self.include.clone(), self.state_dir.clone());
        config.read_from = match self.read_from {
            ReadFrom::Head => From::Head,
            ReadFrom::Tail => From::Tail,
        };
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

/// Multiline joining of a file source.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Multiline {
    /// Regular expression of a line that starts an event.
    pub start: String,
    /// Most lines in one event.
    #[serde(default = "default_multiline_lines")]
    pub max_lines: usize,
    /// Most bytes in one event.
    #[serde(default = "default_multiline_bytes")]
    pub max_bytes: usize,
}

fn default_multiline_lines() -> usize {
    500
}
fn default_multiline_bytes() -> usize {
    262_144
}

/// A network source's settings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetSource {
    /// Listen address.
    pub address: SocketAddr,
    /// Longest message, bytes.
    #[serde(default = "default_max_message")]
    pub max_message_bytes: usize,
    /// Most TCP connections at once.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Bound of the source's queue, events.
    #[serde(default = "default_source_queue")]
    pub queue_size: usize,
}

impl SourceConfig {
    /// Bound of this source's queue.
    pub fn queue_size(&self) -> usize {
        match self {
            SourceConfig::Http(h) => h.queue_size,
            SourceConfig::File(f) => f.queue_size,
            SourceConfig::Tcp(n)
            | SourceConfig::Udp(n)
            | SourceConfig::SyslogTcp(n)
            | SourceConfig::SyslogUdp(n) => n.queue_size,
        }
    }
}

/// Where a file without a saved position starts.
#[derive(Debug, Deserialize, Default, Clone, Copy)]
#[serde(rename_all = "snake_case")]
pub enum ReadFrom {
    /// From its first byte.
    #[default]
    Head,
    /// From its end.
    Tail,
}

fn default_max_body() -> usize {
    10 << 20
}
fn default_queue_wait() -> Duration {
    Duration::from_secs(5)
}
fn default_state_dir() -> PathBuf {
    PathBuf::from("switchyard-state")
}
fn default_partial() -> Duration {
    Duration::from_secs(1)
}
fn default_max_message() -> usize {
    65_536
}
fn default_max_connections() -> usize {
    256
}

/// The LLM payload transformer's settings (`type: llm`).
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct LlmTransformConfig {
    /// Include debug information in payloads.
    #[serde(default)]
    pub verbose: bool,
    /// Captured headers whose values are redacted (replaces the default list).
    pub redact_headers: Option<Vec<String>>,
}

/// A sink's batching.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Batch {
    /// Events per batch.
    #[serde(default = "default_batch_events")]
    pub max_events: usize,
    /// Longest wait of an unfilled batch.
    #[serde(default = "default_batch_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
}

impl Default for Batch {
    fn default() -> Self {
        Self {
            max_events: default_batch_events(),
            timeout: default_batch_timeout(),
        }
    }
}

fn default_batch_events() -> usize {
    100
}
fn default_batch_timeout() -> Duration {
    Duration::from_secs(5)
}

/// A sink's buffer.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Buffer {
    /// `memory`, or `disk`: events are accepted for this sink only once they
    /// are on disk, and survive a crash.
    #[serde(default, rename = "type")]
    pub kind: BufferKind,
    /// Disk buffer directory (default `switchyard-buffer/<sink name>`).
    pub dir: Option<PathBuf>,
    /// Most events held.
    #[serde(default = "default_buffer_events")]
    pub max_events: usize,
    /// Most bytes held (in memory; on disk for `type: disk`).
    #[serde(default = "default_buffer_bytes")]
    pub max_bytes: usize,
    /// `block`, `drop_newest` or `drop_oldest`.
    #[serde(default)]
    pub when_full: WhenFull,
    /// Utilization at which the buffer reports pressure.
    #[serde(default = "default_high")]
    pub high_watermark: f64,
    /// Utilization at which the pressure ends.
    #[serde(default = "default_low")]
    pub low_watermark: f64,
}

impl Default for Buffer {
    fn default() -> Self {
        Self {
            kind: BufferKind::Memory,
            dir: None,
            max_events: default_buffer_events(),
            max_bytes: default_buffer_bytes(),
            when_full: WhenFull::Block,
            high_watermark: default_high(),
            low_watermark: default_low(),
        }
    }
}

impl Buffer {
    /// The engine's settings for this buffer's memory part.
    pub fn config(&self) -> switchyard_engine::BufferConfig {
        switchyard_engine::BufferConfig {
            max_events: self.max_events,
            max_bytes: self.max_bytes,
            when_full: self.when_full,
            high_watermark: self.high_watermark,
            low_watermark: self.low_watermark,
        }
    }
}

/// Where a buffer keeps its events.
#[derive(Debug, Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum BufferKind {
    /// In memory.
    #[default]
    Memory,
    /// On disk (segment files, checksummed records), then in memory.
    Disk,
}

fn default_buffer_events() -> usize {
    10_000
}
fn default_buffer_bytes() -> usize {
    64 << 20
}
fn default_high() -> f64 {
    0.8
}
fn default_low() -> f64 {
    0.6
}

/// One sink.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkEntry {
    /// Plugin name (see `switchyard plugins`).
    #[serde(rename = "type")]
    pub kind: String,
    /// Sources or transforms it reads.
    pub inputs: Vec<String>,
    /// The sink's own options (`endpoint`, `api-key`, `timeout`, ...), read
    /// into its typed config; an empty value leaves the option unset.
    #[serde(default)]
    pub options: serde_json::Value,
    /// Batching.
    #[serde(default)]
    pub batch: Batch,
    /// Buffer.
    #[serde(default)]
    pub buffer: Buffer,
    /// Delivery stack: rate limit, concurrency, retries, circuit breaker,
    /// timeout (the engine's `DeliveryConfig`).
    #[serde(default)]
    pub delivery: switchyard_engine::DeliveryConfig,
}
