//! The process around a command: how it starts, is told to stop, and
//! talks to its operator — everything that is about this OS process rather
//! than about events.
//!
//! # Layout
//! - `runtime`: logging to standard error and the async runtime every
//!   long-running command runs on (`--worker-threads`).
//! - `signals`: SIGTERM and SIGINT, watched from the start.
//! - `shutdown`: the drain protocol — first signal drains until the
//!   shutdown timeout, a second stops at once.
//! - `pid_file`: `--pid-file`, written once listening and removed on exit.
//! - `detach`: `--detach`, the dispatcher as a background process.
//! - `notify`: readiness and stopping for systemd's `Type=notify`.
//! - `rates`: the once-a-second sampler of the events-per-second gauges.
//! - `stdout`: standard output whose reader may leave early (`| head`).

pub mod detach;
pub mod notify;
pub mod pid_file;
pub mod rates;
mod runtime;
pub mod shutdown;
pub mod signals;
pub mod stdout;

pub use runtime::{run, set_worker_threads};
