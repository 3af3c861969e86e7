//! Retries: exponential backoff with full jitter ([`Backoff`]), at most
//! `max_retries` retries and, optionally, `max_elapsed` of trying; a server's
//! `Retry-After` is honoured. The layer owns the batch between attempts and
//! settles events as soon as their fate is known: after a partial failure the
//! delivered events are settled at once and only the transiently failed ones
//! are sent again; permanent failures and exhausted retries go to
//! [`Settle::failed`] (the dead-letter queue, or a counted drop).
//!
//! A "circuit open" answer from the breaker below is not an attempt: the
//! batch waits for the half-open probe without spending its retries or its
//! elapsed budget, so an open breaker delays events but never loses them
//! (meanwhile the dispatch loop's in-flight bound stops intake, and the
//! bounded intake pushes back on sources).

use super::settle::{Failure, FailureKind, Settle};
use super::stats::DeliveryStats;
use super::{Batch, DeliveryError};
use crate::backoff::Backoff;
use futures_util::future::BoxFuture;
use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use switchyard_core::{Event, EventFailure, SinkErrorKind};
use time::OffsetDateTime;
use tokio::time::Instant;
use tower::{Layer, Service, ServiceExt};
use tracing::{debug, error, warn};

/// When to try again.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// Delays between attempts.
    pub backoff: Backoff,
    /// Stop retrying after this much time spent trying.
    pub max_elapsed: Option<Duration>,
}

/// Adds [`Retry`].
#[derive(Clone)]
pub struct RetryLayer {
    policy: RetryPolicy,
    settle: Arc<Settle>,
    stats: Arc<DeliveryStats>,
}

impl RetryLayer {
    /// Retry by `policy`; decided events go to `settle`.
    pub fn new(policy: RetryPolicy, settle: Arc<Settle>, stats: Arc<DeliveryStats>) -> Self {
        Self {
            policy,
            settle,
            stats,
        }
    }
}

impl<S> Layer<S> for RetryLayer {
    type Service = Retry<S>;
    fn layer(&self, inner: S) -> Retry<S> {
        Retry {
            inner,
            policy: self.policy,
            settle: self.settle.clone(),
            stats: self.stats.clone(),
        }
    }
}

/// The retry service: takes a batch, answers once every event is settled.
#[derive(Clone)]
pub struct Retry<S> {
    inner: S,
    policy: RetryPolicy,
    settle: Arc<Settle>,
    stats: Arc<DeliveryStats>,
}

impl<S> Service<Vec<Event>> for Retry<S>
where
    S: Service<Batch, Response = (), Error = DeliveryError> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = ();
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<(), Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // Readiness of the inner service is awaited before each attempt.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, batch: Vec<Event>) -> Self::Future {
        let run = Run {
            inner: self.inner.clone(),
            policy: self.policy,
            settle: self.settle.clone(),
            stats: self.stats.clone(),
        };
        Box::pin(async move {
            run.deliver(batch).await;
            Ok(())
        })
    }
}

/// One batch's journey through its attempts.
struct Run<S> {
    inner: S,
    policy: RetryPolicy,
    settle: Arc<Settle>,
    stats: Arc<DeliveryStats>,
}

impl<S> Run<S>
where
    S: Service<Batch, Response = (), Error = DeliveryError>,
{
    async fn deliver(mut self, batch: Vec<Event>) {
        let mut pending = batch;
        let started = Instant::now();
        let mut waited_open = Duration::ZERO;
        let mut first_failure: Option<OffsetDateTime> = None;
        let mut retry = 0u32;
        while !pending.is_empty() {
            let n = pending.len();
            let shared: Batch = Arc::new(pending);
            let result = match self.inner.ready().await {
                Ok(svc) => svc.call(shared.clone()).await,
                Err(e) => Err(e),
            };
            pending = match Arc::try_unwrap(shared) {
                Ok(events) => events,
                Err(_) => {
                    // A layer below kept the batch past its attempt; its
                    // events cannot be settled here. They stay unresolved, so
                    // their sources will deliver them again: safe, but a bug.
                    error!(sink = %self.settle.sink(), events = n, "a delivery layer kept a batch after its attempt; its events stay unresolved");
                    return;
                }
            };
            let error = match result {
                Ok(()) => {
                    debug!(sink = %self.settle.sink(), events = n, "batch delivered");
                    self.settle.delivered(pending);
                    return;
                }
                Err(DeliveryError::CircuitOpen { retry_in }) => {
                    tokio::time::sleep(retry_in).await;
                    waited_open += retry_in;
                    continue;
                }
                Err(e) => e,
            };
            let now = OffsetDateTime::now_utc();
            let first = *first_failure.get_or_insert(now);
            let tried_for = started.elapsed().saturating_sub(waited_open);
            let can_retry = retry < self.policy.max_retries
                && self.policy.max_elapsed.is_none_or(|max| tried_for < max);
            let failure = |kind, message: String| Failure {
                kind,
                message,
                attempts: retry + 1,
                first_failure: first,
                last_failure: now,
            };
            let (again, retry_after) = match error {
                DeliveryError::Sink(e) if e.kind == SinkErrorKind::Partial => {
                    let again =
                        sort_partial(&self.settle, pending, e.failed, can_retry, &failure).await;
                    (again, e.retry_after)
                }
                DeliveryError::Sink(e) if e.kind == SinkErrorKind::Permanent => {
                    error!(sink = %self.settle.sink(), error = %e, events = n, attempts = retry + 1, "delivery failed permanently");
                    let f = failure(FailureKind::Permanent, e.message);
                    self.settle.failed(pending, &f).await;
                    return;
                }
                other if !can_retry => {
                    error!(sink = %self.settle.sink(), error = %other, events = n, attempts = retry + 1, "delivery failed; no retry left");
                    let kind = match other {
                        DeliveryError::TimedOut(_) => FailureKind::Timeout,
                        _ => FailureKind::RetriesExhausted,
                    };
                    let message = match other {
                        DeliveryError::Sink(e) => e.message,
                        o => o.to_string(),
                    };
                    self.settle.failed(pending, &failure(kind, message)).await;
                    return;
                }
                DeliveryError::Sink(e) => (pending, e.retry_after),
                _ => (pending, None),
            };
            pending = again;
            if pending.is_empty() {
                return;
            }
            let delay = self.policy.backoff.delay(retry, retry_after);
            warn!(sink = %self.settle.sink(), events = pending.len(), retry = retry + 1, of = self.policy.max_retries, ?delay, "delivery failed; will retry");
            DeliveryStats::add(&self.stats.retries, 1);
            tokio::time::sleep(delay).await;
            retry += 1;
        }
    }
}

/// Settle the events a partial failure did not name (delivered) and the
/// ones that failed for good; return those to send again.
async fn sort_partial(
    settle: &Settle,
    pending: Vec<Event>,
    failed: Vec<EventFailure>,
    can_retry: bool,
    failure: &impl Fn(FailureKind, String) -> Failure,
) -> Vec<Event> {
    let mut errors: Vec<Option<switchyard_core::SinkError>> = vec![None; pending.len()];
    for f in failed {
        match errors.get_mut(f.index) {
            Some(slot) => *slot = Some(f.error),
            // A sink bug: the index names no event of this batch. Every
            // real event is still settled below; the report is logged.
            None => error!(
                index = f.index,
                events = pending.len(),
                "sink reported a failure for an event outside the batch"
            ),
        }
    }
    let (mut delivered, mut again, mut dead) = (Vec::new(), Vec::new(), Vec::new());
    for (event, error) in pending.into_iter().zip(errors) {
        match error {
            None => delivered.push(event),
            Some(e) if e.kind == SinkErrorKind::Transient && can_retry => again.push(event),
            Some(e) => dead.push((event, e)),
        }
    }
    settle.delivered(delivered);
    for (event, e) in dead {
        let kind = match e.kind {
            SinkErrorKind::Transient => FailureKind::RetriesExhausted,
            _ => FailureKind::Permanent,
        };
        error!(sink = %settle.sink(), event = %event.id, error = %e, "delivery of one event failed for good");
        settle.failed(vec![event], &failure(kind, e.message)).await;
    }
    again
}
