//! Sources that feed the engine's intake queue.
//!
//! # Layout
//! - [`bus`]: forwards a bus subscription into the intake queue.
//! - [`demo`]: made-up log records or LLM exchanges at a chosen rate.
//! - [`docker`]: container logs through the Docker Engine API's unix socket.
//! - [`file_tail`]: follows files by glob, checkpointing delivered positions.
//! - [`http`]: the HTTP ingest API (`/v1/events`, `/v1/logs`, `/health`, `/stats`).
//! - [`net`]: TCP and UDP lines, syslog (RFC 5424 / RFC 3164).
//! - `redis_streams` (feature `redis`): a Redis consumer group, acknowledged after delivery.
//! - `redis_list` (feature `redis`): the Redis LIST log with a per-plugin offset.
//! - [`registry`]: every source type under its name, with its typed settings.
//! - [`settings`]: what the typed settings share (durations, queue bound).
//!
//! Each source's `source` module holds its typed settings (`type: …` in a
//! pipeline file, or made from the dispatcher's flags) and its
//! implementation of [`switchyard_engine::source::Source`].
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod bus;
pub mod demo;
pub mod docker;
pub mod file_tail;
pub mod http;
pub mod net;
#[cfg(feature = "redis")]
pub mod redis_list;
#[cfg(feature = "redis")]
pub mod redis_streams;
pub mod registry;
pub mod settings;

pub use registry::builtin;
