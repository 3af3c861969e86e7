//! The `loki` sink: events as log entries in Grafana Loki.
//!
//! Each event becomes one entry — its time and a line (see [`entry`]) — in
//! the stream named by its labels, rendered from the `labels` template.
//! A batch is grouped by label set, each stream sorted by time, checked
//! against the out-of-order policy, and cut into pushes bounded in entries
//! and bytes (time-based batching is the engine's `--flush-interval`).
//! Pushes go to `{endpoint}/loki/api/v1/push` as snappy-compressed protobuf
//! (default) or JSON, one after another; each answer decides the fate of its
//! entries with the shared HTTP classes, reading Loki's `400` reasons so an
//! out-of-order or too-old entry goes to the dead-letter queue instead of a
//! retry loop.
//!
//! Options: `endpoint` (Loki's base URL, required), `labels`
//! (default `job=switchyard`), `encoding` (`protobuf` | `json`),
//! `compression` (`none` | `gzip`, JSON only), `line` (`json` | `message`),
//! `tenant`, `auth.user` + `auth.password` or `api-key` (bearer),
//! `out-of-order` (`accept` | `drop` | `rewrite_timestamp`),
//! `batch-max-events` (1000), `batch-max-bytes` (1 MiB), `max-line-bytes`
//! (256 KiB), `max-streams` (10000), `timeout`, `connect-timeout`.
//!
//! # Layout
//! - [`config`]: the options, checked at start-up.
//! - [`labels`]: label names (sanitizing, refused keys) and the label text form.
//! - [`template`]: `labels` templates rendered against an event.
//! - [`entry`]: an event's timestamp and line.
//! - [`order`]: the out-of-order policy and the per-stream memory it needs.
//! - [`batch`]: streams, sorting, policy, and pushes bounded in size.
//! - [`proto`]: `logproto.PushRequest` as prost structs, snappy-compressed.
//! - [`json`]: the JSON push body.
//! - [`classify`]: what Loki's answers mean.
//! - [`sink`]: the sink tying them together.

pub mod batch;
pub mod classify;
pub mod config;
pub mod entry;
pub mod json;
pub mod labels;
pub mod order;
pub mod proto;
mod sink;
pub mod template;

pub use config::{
    Auth, BasicAuth, Encoding, Labels, LineFormat, LokiConfig, LokiSettings, PUSH_PATH,
};
pub use order::Policy;
pub use sink::LokiSink;
