//! The delivery stack: the policies between the batcher and a sink, each a
//! `tower` layer in its own module, composed in one place ([`builder`]).
//!
//! From the outside in: rate limit → concurrency → retry → circuit breaker →
//! timeout → sink. The breaker sits *inside* the retry layer so that it sees
//! every attempt (a batch retried three times is three calls to judge the sink
//! by) and so that its fast "circuit open" answer goes back to the retry
//! layer, which waits for the half-open probe instead of giving the batch up.
//! The timeout is innermost, so each attempt gets its own deadline.
//!
//! # Layout
//! - [`config`]: [`DeliveryConfig`], serde, defaults of the requirement document.
//! - [`rate_limit`]: events or requests per second (governor's token bucket).
//! - [`concurrency`]: a fixed limit, or an adaptive one (AIMD on latency).
//! - [`retry`]: backoff with full jitter, `Retry-After`, partial failures.
//! - [`breaker`]: closed / open / half-open per sink.
//! - [`timeout`]: a deadline per attempt.
//! - [`sink_service`]: a [`Sink`](switchyard_core::Sink) as the innermost service.
//! - [`settle`]: what happens to events once their delivery is decided.
//! - [`stats`]: atomics for metrics and health.
//! - [`builder`]: the one function that composes the layers.

pub mod breaker;
pub mod builder;
pub mod concurrency;
pub mod config;
pub mod rate_limit;
pub mod retry;
pub mod settle;
pub mod sink_service;
pub mod stats;
pub mod timeout;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use switchyard_core::{Event, SinkError, SinkErrorKind};

pub use builder::{build, DeliveryService};
pub use config::{BreakerConfig, Concurrency, DeliveryConfig, FlowControl, RateLimit, RateUnit};
pub use settle::Settle;
pub use stats::{BreakerState, DeliveryStats, DeliveryStatsSnapshot};

/// One attempt's batch, shared by the layers below the retry layer. The
/// retry layer keeps the only other reference and takes the events back once
/// the attempt is over, because an event (with its acknowledgement token)
/// must never be cloned: a clone would be a second, unresolved event for its
/// source. This is also why the retry layer is ours and not `tower::retry`,
/// whose policy clones each request.
pub type Batch = Arc<Vec<Event>>;

/// Why one attempt below the retry layer failed.
#[derive(Debug, Clone)]
pub enum DeliveryError {
    /// The sink answered with a classified error.
    Sink(SinkError),
    /// The attempt outlived the delivery timeout.
    TimedOut(Duration),
    /// The breaker refused the attempt without calling the sink; try again
    /// after `retry_in`.
    CircuitOpen {
        /// When the breaker may let a trial call through.
        retry_in: Duration,
    },
}

impl DeliveryError {
    /// Whether this failure says the sink is unwell (what the breaker counts).
    /// A permanent error or a partial failure is an answer from a working
    /// sink about some events; a transient error, a timeout, or a partial
    /// failure of every event for transient reasons is not.
    pub fn is_sink_failure(&self, batch_len: usize) -> bool {
        match self {
            DeliveryError::TimedOut(_) => true,
            DeliveryError::CircuitOpen { .. } => false,
            DeliveryError::Sink(e) => match e.kind {
                SinkErrorKind::Transient => true,
                SinkErrorKind::Permanent => false,
                SinkErrorKind::Partial => {
                    e.failed.len() >= batch_len
                        && e.failed
                            .iter()
                            .all(|f| f.error.kind == SinkErrorKind::Transient)
                }
            },
        }
    }
}

impl fmt::Display for DeliveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeliveryError::Sink(e) => e.fmt(f),
            DeliveryError::TimedOut(d) => {
                write!(
                    f,
                    "transient error: no answer within {}",
                    humantime::format_duration(*d)
                )
            }
            DeliveryError::CircuitOpen { .. } => f.write_str("transient error: circuit open"),
        }
    }
}

impl std::error::Error for DeliveryError {}
