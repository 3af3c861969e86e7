//! The dispatch engine: sources push chunks of events into a bounded intake
//! queue; one loop transforms, batches and delivers them to a sink, retrying
//! transient failures with jittered exponential backoff.
//!
//! # Layout
//! - [`buffer`]: bounded buffers (events and bytes, `when_full`, watermarks).
//! - [`intake`]: the queue between sources and the engine (a blocking buffer).
//! - [`batcher`]: when a batch is full or due.
//! - [`backoff`]: retry delays (exponential, full jitter, capped).
//! - [`counters`]: received / sent / filtered / dropped.
//! - [`dispatch`]: the loop that ties them together for one sink.
//! - [`metrics`]: Prometheus exposition of a pipeline.
//! - [`topology`]: a graph of named sources, transforms and sinks.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod backoff;
pub mod batcher;
pub mod buffer;
pub mod counters;
pub mod dispatch;
pub mod intake;
pub mod metrics;
pub mod topology;

pub use buffer::{buffer, BufferConfig, BufferStats, WhenFull};
pub use counters::{Counters, CountersSnapshot};
pub use dispatch::{run, EngineConfig};
pub use intake::{intake, IntakeReceiver, IntakeSender};
