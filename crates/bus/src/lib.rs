//! Event bus implementations.
//!
//! # Layout
//! - [`memory`]: in-process fan-out with a bounded buffer per subscriber.
//! - `redis` (feature `redis`): Redis Streams with consumer groups and the
//!   LIST log, wire-compatible with the LLM proxy.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod memory;
#[cfg(feature = "redis")]
pub mod redis;

pub use memory::MemoryBus;
