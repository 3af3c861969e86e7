//! Switchyard's load tools, the work behind `switchyard bench …`: each one
//! drives a real dispatcher (or a real sink) as hard as it can and prints
//! what that cost — events per second, MiB per second, CPU per event, peak
//! memory — so the figures in `docs/BENCHMARKS.md` can be measured again.
//!
//! The dispatcher under test is this same program started as a child
//! process (`std::env::current_exe()`), so these tools are meant to run
//! inside the `switchyard` binary. The clients are deliberately plain
//! (blocking sockets, bodies built before the clock starts): they cost the
//! shared CPU as little as possible, so the numbers are the server's.
//!
//! These are commands, not components: what fails is reported straight to
//! the user, so their errors are `anyhow::Error`s, as in the binary.
//!
//! # Layout
//! - [`ingest`]: HTTP ingest → file sink.
//! - [`tail`]: file tail → file or blackhole sink.
//! - [`syslog_udp`]: syslog over UDP → blackhole, with drops counted.
//! - [`loki`]: the Loki sink against an instant in-process server.
//! - [`redis`]: publishing to a Redis stream, and a dispatcher draining one.
//! - `server`: a dispatcher under test, started, watched and stopped.
//! - `http`: the minimal HTTP/1.1 client that posts to it and reads its
//!   `/stats`.
//! - `usage`: CPU time and peak memory of a process, from `/proc`.
//! - `record`: the ~170-byte log record every tool sends.
//! - `report`: the figures `ingest` and `tail` print.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod http;
pub mod ingest;
pub mod loki;
mod record;
pub mod redis;
mod report;
mod server;
pub mod syslog_udp;
pub mod tail;
mod usage;

pub use server::BenchSink;
