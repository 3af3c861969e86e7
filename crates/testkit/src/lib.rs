//! Test helpers shared by the crates' integration tests.
//!
//! # Layout
//! - [`redis_server`]: a private `redis-server` on an ephemeral loopback port
//!   that a test can stop, restart and kill.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod redis_server;

pub use redis_server::RedisServer;
