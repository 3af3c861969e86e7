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
/// abandoned (see `crate::process::shutdown`).
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

// Sources are read by their own typed settings, from the registry of
// source types (`switchyard_sources::builtin`); see `validate`.

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
