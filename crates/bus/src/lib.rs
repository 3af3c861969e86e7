//! Event bus implementations.
//!
//! # Layout
//! - [`memory`]: in-process fan-out with a bounded buffer per subscriber.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod memory;

pub use memory::MemoryBus;
