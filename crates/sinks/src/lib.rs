//! Built-in sinks.
//!
//! # Layout
//! - [`file`]: JSON lines appended to a file, synced once per batch.
//! - [`stdout`]: JSON lines on standard output.
//! - [`blackhole`]: counts and discards (for benchmarks).
//! - [`registry`]: every built-in sink under its name.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod blackhole;
pub mod file;
pub mod registry;
pub mod stdout;

pub use registry::builtin;
