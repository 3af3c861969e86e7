//! The delivery stack: the policies between the batcher and a sink, each a
//! `tower` layer in its own module, composed in one place ([`builder`]).
//!
//! From the outside in: rate limit → concurrency → circuit breaker → retry →
//! timeout → sink.
//!
//! - The **breaker** is a readiness gate in front of the retry layer. A call
//!   — one batch with all its retries — passes it once; while the breaker is
//!   open, calls wait at the gate instead of failing, so an open breaker
//!   delays events and never drops or dead-letters one. In half-open, at most
//!   `half_open_max_calls` calls pass, concurrently.
//! - The breaker and the retry layer share the breaker's state through the
//!   call's [`breaker::Pass`]: the retry layer reports each attempt's outcome
//!   through it (so the breaker opens during an outage even while every call
//!   in flight is still retrying), and reads the state before every attempt
//!   and during every backoff wait. When the breaker has opened meanwhile,
//!   the retry layer stops and returns the batch, with the attempts and time
//!   already spent ([`retry::Progress`]), to wait at the gate. Only a batch's
//!   own attempts can fail it; waiting at the gate spends neither retries nor
//!   `max_elapsed`.
//! - The **timeout** is innermost, so each attempt gets its own deadline.
//!
//! # Cost
//!
//! A batch that meets no limit — tokens in the bucket, a free slot, a closed
//! breaker, a first attempt that succeeds — allocates only the stack's one
//! boxed future, the shared batch and the sink's own future; every layer
//! decides in `call` whether it can let the batch through at once, and only
//! a batch that must wait (for tokens, a slot, the gate, a retry) boxes an
//! async block for the rest of its way. The hot paths of the concurrency
//! limit and of the closed breaker are atomics, with no lock; the timeout's
//! timer is made only for an attempt that does not finish at its first poll.
//!
//! # Layout
//! - [`config`]: [`DeliveryConfig`], serde, defaults of the requirement document.
//! - [`rate_limit`]: events or requests per second (governor's token bucket).
//! - [`concurrency`]: a fixed limit, or an adaptive one (AIMD on latency).
//! - [`breaker`]: closed / open / half-open per sink, as a gate.
//! - [`retry`]: backoff with full jitter, `Retry-After`, partial failures.
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

pub use builder::{build, build_with_rate_limit, DeliveryService};
pub use config::{BreakerConfig, Concurrency, DeliveryConfig, FlowControl, RateLimit, RateUnit};
pub use rate_limit::RateLimitLayer;
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
    /// The shutdown deadline came during the attempt, which was abandoned.
    CutOff,
}

impl DeliveryError {
    /// Whether this failure says the sink is unwell (what the breaker counts).
    /// A permanent error or a partial failure is an answer from a working
    /// sink about some events; a transient error, a timeout, or a partial
    /// failure of every event for transient reasons is not.
    pub fn is_sink_failure(&self, batch_len: usize) -> bool {
        match self {
            DeliveryError::TimedOut(_) => true,
            // Our own stop, not the sink's doing.
            DeliveryError::CutOff => false,
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
            DeliveryError::CutOff => f.write_str("abandoned at the shutdown deadline"),
        }
    }
}

impl std::error::Error for DeliveryError {}
