//! Switchyard's core: the event model, acknowledgements and the traits every
//! component implements.
//!
//! # Layout
//! - [`event`]: the [`Event`] envelope and its payloads (HTTP exchange, log
//!   record, or a JSON document a transform produced).
//! - [`event_codec`]: a lossless binary form of an event, for storage.
//! - [`http_exchange`]: the LLM-proxy HTTP exchange, in the original Go JSON form.
//! - `exchange_json`: reading that form fast, with serde as the fallback.
//! - `exchange_text`: writing that form fast, byte for byte as serde does.
//! - [`json_string`]: the one JSON string writer (serde's bytes, faster).
//! - [`log_record`]: a log record; any JSON object round-trips through it.
//! - [`path`]: field paths into a log record (`labels.app`, `user.id`).
//! - [`template`]: text with `{reference}` parts filled from each event.
//! - [`ack`]: acknowledgements from sink back to source, per batch (counts) or
//!   per event of a batch (indexed).
//! - [`fanout`]: one event sent to several sinks, acknowledged once.
//! - [`sink`]: the sink trait and its error classes.
//! - [`sink_registry`]: sinks by type name, each with its typed config.
//! - [`options`]: a component's options as given (YAML or flags), read into
//!   its typed config; [`BuildError`] when they cannot be.
//! - [`transform`]: the synchronous transform trait.
//! - [`bus`]: the event bus trait.
//! - [`backoff`]: the one backoff (doubling, capped, jittered) every retry
//!   and reconnect loop uses.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod ack;
pub mod backoff;
pub mod bus;
pub mod event;
pub mod event_codec;
mod exchange_json;
mod exchange_text;
pub mod fanout;
pub mod fields;
pub mod http_exchange;
pub mod json_string;
pub mod log_record;
pub mod options;
pub mod path;
pub mod sink;
pub mod sink_registry;
pub mod template;
pub mod transform;
pub mod type_table;

pub use ack::{AckBatch, AckToken, BatchOutcome, Fate, Fates, IndexedAckBatch};
pub use bus::{BusStats, EventBus, Subscription};
pub use event::{Event, EventId, JsonDocument, Payload};
pub use fields::Fields;
pub use http_exchange::HttpExchange;
pub use log_record::LogRecord;
pub use options::{BuildError, OptionKey, Options};
pub use sink::{EventFailure, Sink, SinkError, SinkErrorKind};
pub use sink_registry::{SinkCheck, SinkConfig, SinkFactory, SinkRegistry};
pub use transform::{Transform, Verdict};
