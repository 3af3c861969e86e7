//! The dispatch engine: sources push chunks of events into a bounded intake
//! queue; one loop transforms, batches and delivers them to a sink, retrying
//! transient failures with jittered exponential backoff.
//!
//! # Layout
//! - [`intake`]: the queue between sources and the engine, bounded in events.
//! - [`batcher`]: when a batch is full or due.
//! - [`backoff`]: retry delays (exponential, full jitter, capped).
//! - [`disk_buffer`]: an on-disk log in front of the intake queue, so an
//!   accepted event survives a crash.
//! - [`counters`]: received / sent / filtered / dropped.
//! - [`dispatch`]: the loop that ties them together.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod backoff;
pub mod batcher;
pub mod counters;
pub mod disk_buffer;
pub mod dispatch;
pub mod intake;

pub use counters::{Counters, CountersSnapshot};
pub use dispatch::{run, EngineConfig};
pub use intake::{intake, IntakeReceiver, IntakeSender};
