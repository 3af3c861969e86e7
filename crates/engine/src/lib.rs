//! The dispatch engine: sources push chunks of events into a bounded intake
//! queue; a [`topology`] routes them through transforms into each sink's
//! buffer, and one loop per sink batches them and hands each batch to the
//! sink's delivery stack (rate limit, concurrency, retries, circuit breaker,
//! timeout). Events that fail for good go to the on-disk dead-letter queue.
//!
//! # Layout
//! - [`buffer`]: bounded buffers (events and bytes, `when_full`, watermarks).
//! - [`intake`]: the queue between sources and the engine (a blocking buffer).
//! - [`batcher`]: when a batch is full or due.
//! - [`disk_buffer`]: an on-disk log in front of the intake queue, so an
//!   accepted event survives a crash.
//! - [`counters`]: received / sent / filtered / dead-lettered / dropped.
//! - [`delivery`]: the tower layers between a batch and its sink.
//! - [`dlq`]: the dead-letter queue on disk, replay and auto-retry.
//! - [`dispatch`]: the loop that ties them together for one sink, and its
//!   [`SinkPolicy`].
//! - [`metrics`]: Prometheus exposition of a pipeline.
//! - [`exposition`]: the text format a scraper asked for (OpenMetrics or
//!   Prometheus text 0.0.4).
//! - [`topology`]: a graph of named sources, transforms and sinks.
//! - [`source`]: the source component trait, its context and the registry
//!   of source types.
//! - [`supervise`]: source tasks restarted with backoff when they end early.
//! - [`shutdown`]: the deadline of a stop, after which nothing waits.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod batcher;
pub mod buffer;
pub mod counters;
pub mod delivery;
pub mod disk_buffer;
pub mod dispatch;
pub mod dlq;
pub mod exposition;
pub mod intake;
pub mod metrics;
pub mod shutdown;
pub mod source;
pub mod supervise;
pub mod topology;

pub use buffer::{buffer, BufferConfig, BufferStats, WhenFull};
pub use counters::{Counters, CountersSnapshot};
pub use delivery::{DeliveryConfig, DeliveryStats, DeliveryStatsSnapshot};
pub use dispatch::{run_sink, SinkPolicy, Stop};
pub use dlq::{Dlq, DlqConfig};
pub use intake::{intake, IntakeReceiver, IntakeSender};
pub use shutdown::Cutoff;
