//! Built-in sinks.
//!
//! # Layout
//! - [`file`]: lines appended to one file or to templated files (rotation, retention, compression), synced once per round.
//! - [`stdout`]: JSON lines on standard output.
//! - [`blackhole`]: counts and discards (for benchmarks).
//! - [`lunary`]: LLM calls to Lunary (start + end events, per-event results).
//! - [`helicone`]: LLM calls to Helicone's manual logger (one request each).
//! - [`loki`]: log entries to Grafana Loki (snappy protobuf or JSON, label templates).
//! - [`http_sink`]: batches POSTed to any URL (JSON array or NDJSON, gzip).
//! - [`http_common`]: what the HTTP sinks share: options, client, result classes.
//! - [`llm_payload`]: reading the LLM transformer's payload from an event.
//! - [`registry`]: every built-in sink under its name.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod blackhole;
pub mod file;
pub mod helicone;
pub mod http_common;
pub mod http_sink;
pub mod llm_payload;
pub mod loki;
pub mod lunary;
pub mod registry;
pub mod stdout;

pub use registry::builtin;
