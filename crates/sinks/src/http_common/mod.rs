//! Plumbing every HTTP sink shares, so each sink supplies only its encoding:
//! reading common options, one POST with capped response, and the one result
//! classification all of them follow.
//!
//! - [`options`]: endpoint, API key, timeouts and numbers from the plugin map.
//! - [`client`]: a configured client and a POST that reads a capped reply.
//! - [`classify`]: status and transport failures → transient or permanent.

pub mod classify;
pub mod client;
pub mod options;

pub use classify::{classify_status, classify_transport, retry_after};
pub use client::{Client, Reply};
pub use options::HttpOptions;
