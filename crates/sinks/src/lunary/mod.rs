//! The `lunary` sink: LLM calls to Lunary's ingestion API.
//!
//! Each call becomes two Lunary events with the same `runId` — `start`
//! (model, input, user, parameters) and `end` (output, token usage) or
//! `error` — so Lunary shows outputs and computes costs. Calls are packed
//! into `{"events": [...]}` requests bounded in events and bytes; the
//! per-event `results` of each reply decide each call's outcome: a run that
//! already exists counts as delivered (a retry of something that arrived),
//! any other failure fails that call alone.
//!
//! Options: `api-key` (required), `endpoint` (default
//! [`DEFAULT_ENDPOINT`]; a base URL such as `https://api.lunary.ai`, as
//! Lunary's SDKs take it, gets `/v1/runs/ingest` added), `batch-max-events`
//! (Lunary events per request, default 200), `batch-max-bytes` (default
//! 2 MiB), `timeout`, `connect-timeout`. Lunary's key and payload answers are
//! permanent errors that say what to fix ([`classify`]).

mod classify;
mod config;
mod encode;
mod sink;

pub use config::{LunaryConfig, LunarySettings, DEFAULT_ENDPOINT};

/// Lunary's reply parsing, for the fuzz targets only.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing {
    /// Runs a batch reply names as failed (duplicates excluded).
    pub fn failed_runs(body: &[u8]) -> usize {
        super::sink::failed_runs(body).len()
    }
    pub use super::classify::classify;
}
pub use sink::LunarySink;
