//! The `http` sink: each batch POSTed to any URL, as a JSON array or as
//! NDJSON, optionally gzip-compressed, with custom headers. Results follow
//! the shared HTTP classification; a batch succeeds or fails as a whole.
//!
//! Options: `endpoint` (required), `encoding` (`json` array, default, or
//! `ndjson`), `compression` (`none`, default, or `gzip`), `header.<Name>`
//! (any number, e.g. `header.X-Tenant=acme`), `api-key` (optional: sent as a
//! bearer token), `timeout`, `connect-timeout`.

mod config;
mod encode;
mod sink;

pub use config::{Compression, Encoding, HttpSinkConfig, HttpSinkSettings};
pub use sink::HttpSink;
