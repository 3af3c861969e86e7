//! The `helicone` sink: LLM calls to Helicone's manual-logger API.
//!
//! One request per call (Helicone's API takes one), up to `concurrency` in
//! flight; each call's outcome is its own, so after a partial failure only
//! the failed calls are sent again. The body carries the request JSON, the
//! response (JSON object, or `textBody` for anything else), real start and
//! end times, and `meta` with the user id, request id and provider.
//!
//! Options: `api-key` (required), `endpoint` (default
//! [`DEFAULT_ENDPOINT`]), `concurrency` (default 8), `provider` (the
//! `Helicone-Provider` meta value, default `openai`), `timeout`,
//! `connect-timeout`.

mod config;
mod encode;
mod sink;

pub use config::{HeliconeConfig, HeliconeSettings, DEFAULT_ENDPOINT};
pub use sink::HeliconeSink;
