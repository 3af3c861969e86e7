//! Redis buses: Streams with consumer groups (the default distributed bus)
//! and the LIST log of older proxies. Keys, fields and commands follow the
//! LLM-proxy wire spec exactly, so existing proxies and readers interoperate.
//!
//! This module speaks the protocol; pumping entries into the engine (and
//! acknowledging them after delivery) is the Redis sources' job.
//!
//! # Layout
//! - [`settings`]: the endpoint (`REDIS_URL` / `REDIS_ADDR` + `REDIS_DB`), password redaction.
//! - [`link`]: a connection that reconnects with backoff.
//! - [`entry`]: stream ids and entries parsed from raw replies.
//! - [`resp`]: `XREADGROUP` replies taken apart from their bytes.
//! - [`read_conn`]: the reader's own connection, replies as one buffer each.
//! - [`decode`]: an entry's `data` → an event, or why it is poison.
//! - [`streams`]: `XADD` pipelines and the consumer-group commands.
//! - [`list_log`]: the LIST log: push, range, count, offsets, incremental read.
//! - [`publisher`]: the non-blocking, buffered, pipelined publisher for both.
//! - [`stats`]: a consumer's counters.

pub mod decode;
pub mod entry;
pub mod link;
pub mod list_log;
pub mod publisher;
pub mod read_conn;
pub mod resp;
pub mod settings;
pub mod stats;
pub mod streams;

pub use entry::{RawEntry, StreamId};
pub use link::Link;
pub use list_log::ListConfig;
pub use publisher::{Publisher, PublisherConfig, PublisherStats, Wire};
pub use read_conn::{ReadConn, ReadLink};
pub use settings::RedisTarget;
pub use stats::{ConsumerSnapshot, ConsumerStats};
pub use streams::{Group, GroupConfig};
