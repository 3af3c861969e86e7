//! Retries: exponential backoff with full jitter ([`Backoff`]), at most
//! `max_retries` retries and, optionally, `max_elapsed` of trying; a server's
//! `Retry-After` is honoured. The layer owns the batch between attempts and
//! settles events as soon as their fate is known: after a partial failure the
//! delivered events are settled at once and only the transiently failed ones
//! are sent again; permanent failures and exhausted retries go to
//! [`Settle::failed`] (the dead-letter queue, or a counted drop).
//!
//! The layer sits below the circuit breaker's gate and works for it: every
//! attempt's outcome is reported through the call's [`Pass`], and when the
//! breaker opens meanwhile (or goes half-open without this call among its
//! trial calls) the layer stops — at once, even in the middle of a backoff
//! wait — and hands the batch back with its [`Progress`], to wait at the gate.
//! A batch is therefore never failed because of the breaker: only its own
//! attempts can fail it, and time spent at the gate counts neither as a retry
//! nor against `max_elapsed`.
//!
//! At the pipeline's shutdown deadline (the settle's [`Cutoff`](crate::shutdown::Cutoff))
//! the layer stops: a call that arrives after it, an attempt the timeout
//! layer cut off, and a backoff wait all end with the batch handed to
//! [`Settle::abandoned`] (disk buffer, dead-letter queue with the reason
//! `shutdown`, or lost), with the attempts it had made.
//!
//! The first attempt runs without allocating (the future is a plain state
//! machine); only a failed attempt moves the call into a boxed async loop.

use super::breaker::Pass;
use super::settle::{Failure, FailureKind, Settle};
use super::stats::DeliveryStats;
use super::{Batch, DeliveryError};
use futures_util::future::{BoxFuture, FutureExt};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use switchyard_core::backoff::Backoff;
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

/// A call that passed the breaker's gate: what the retry layer takes.
pub struct Admitted {
    /// The batch (or what is left of it).
    pub events: Vec<Event>,
    /// The call's handle on the breaker.
    pub pass: Pass,
    /// What earlier admissions of this call already spent.
    pub progress: Progress,
}

/// What a call has spent so far, kept across its visits to the gate.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    attempts: u32,
    first_failure: Option<OffsetDateTime>,
    tried: Duration,
    /// The last failure's message, for a batch abandoned at the deadline.
    last_error: Option<String>,
}

/// How a call left the retry layer.
pub enum CallOutcome {
    /// Every event is settled.
    Settled,
    /// The breaker opened: these events go back to the gate.
    Yielded(Vec<Event>, Progress),
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

/// The retry service: takes an admitted call, answers once every event is
/// settled or the breaker wants the batch back.
#[derive(Clone)]
pub struct Retry<S> {
    inner: S,
    policy: RetryPolicy,
    settle: Arc<Settle>,
    stats: Arc<DeliveryStats>,
}

impl<S> Service<Admitted> for Retry<S>
where
    S: Service<Batch, Response = (), Error = DeliveryError> + Clone + Send + Unpin + 'static,
    S::Future: Send + Unpin + 'static,
{
    type Response = CallOutcome;
    type Error = Infallible;
    type Future = RetryFuture<S>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // The layers below are always ready; readiness is awaited before
        // every later attempt all the same.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, call: Admitted) -> Self::Future {
        let Admitted {
            events,
            pass,
            progress,
        } = call;
        if self.settle.cutoff().is_reached() {
            // Passed the waits above only because the deadline came.
            let settle = self.settle.clone();
            return RetryFuture::Looping(
                async move {
                    settle.abandoned(events, &shutdown_failure(&progress)).await;
                    CallOutcome::Settled
                }
                .boxed(),
            );
        }
        if pass.must_yield() {
            return RetryFuture::Done(Some(CallOutcome::Yielded(events, progress)));
        }
        if progress.attempts > 0 {
            DeliveryStats::add(&self.stats.retries, 1);
        }
        let entered = self.policy.max_elapsed.map(|_| Instant::now());
        let batch: Batch = Arc::new(events);
        let attempt = self.inner.call(batch.clone());
        RetryFuture::First {
            attempt,
            batch,
            run: Run {
                inner: self.inner.clone(),
                policy: self.policy,
                settle: self.settle.clone(),
                stats: self.stats.clone(),
                pass,
                progress,
                entered,
            },
        }
    }
}

/// The retry layer's future: the first attempt inline, the rest boxed.
pub enum RetryFuture<S: Service<Batch>> {
    /// The call's first attempt (in this admission) is under way.
    First {
        /// The attempt.
        attempt: S::Future,
        /// Our reference to the batch, to take the events back.
        batch: Batch,
        /// Everything the retry loop needs, should the attempt fail.
        run: Run<S>,
    },
    /// An attempt failed: the retry loop.
    Looping(BoxFuture<'static, CallOutcome>),
    /// Decided without an attempt (taken by the first poll).
    Done(Option<CallOutcome>),
}

impl<S> Future for RetryFuture<S>
where
    S: Service<Batch, Response = (), Error = DeliveryError> + Send + Unpin + 'static,
    S::Future: Send + Unpin + 'static,
{
    type Output = Result<CallOutcome, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        loop {
            match this {
                RetryFuture::First { attempt, .. } => {
                    let result = std::task::ready!(Pin::new(attempt).poll(cx));
                    // Drop the finished attempt first: whatever it still
                    // holds of the batch must be released before the events
                    // can be taken back.
                    let RetryFuture::First { batch, run, .. } =
                        std::mem::replace(this, RetryFuture::Done(None))
                    else {
                        unreachable!("the first attempt's state is taken once");
                    };
                    let Some(events) = run.take_back(batch) else {
                        return Poll::Ready(Ok(CallOutcome::Settled));
                    };
                    match result {
                        Ok(()) => {
                            run.pass.record(false);
                            run.delivered(events);
                            return Poll::Ready(Ok(CallOutcome::Settled));
                        }
                        Err(e) => {
                            *this = RetryFuture::Looping(run.after_failure(events, e).boxed());
                        }
                    }
                }
                RetryFuture::Looping(rest) => {
                    return rest.as_mut().poll(cx).map(Ok);
                }
                RetryFuture::Done(outcome) => {
                    let outcome = outcome
                        .take()
                        .expect("a finished retry future is not polled again");
                    return Poll::Ready(Ok(outcome));
                }
            }
        }
    }
}

/// One call's way through its attempts, within one admission.
pub struct Run<S> {
    inner: S,
    policy: RetryPolicy,
    settle: Arc<Settle>,
    stats: Arc<DeliveryStats>,
    pass: Pass,
    progress: Progress,
    /// When this admission began (only when `max_elapsed` needs it).
    entered: Option<Instant>,
}

impl<S> Run<S>
where
    S: Service<Batch, Response = (), Error = DeliveryError>,
{
    /// The events of a finished attempt, or `None` when a layer below kept
    /// the batch (a bug: those events stay unresolved, so their sources will
    /// deliver them again — safe, but logged).
    fn take_back(&self, batch: Batch) -> Option<Vec<Event>> {
        let n = batch.len();
        match Arc::try_unwrap(batch) {
            Ok(events) => Some(events),
            Err(_) => {
                error!(sink = %self.settle.sink(), events = n, "a delivery layer kept a batch after its attempt; its events stay unresolved");
                None
            }
        }
    }

    fn delivered(&self, events: Vec<Event>) {
        debug!(sink = %self.settle.sink(), events = events.len(), "batch delivered");
        self.settle.delivered(events);
    }

    fn tried_for(&self) -> Duration {
        self.progress.tried + self.entered.map_or(Duration::ZERO, |e| e.elapsed())
    }

    /// Back to the gate with what is left.
    fn yielded(mut self, pending: Vec<Event>) -> CallOutcome {
        self.progress.tried = self.tried_for();
        debug!(sink = %self.settle.sink(), events = pending.len(), "circuit open: batch back to the gate");
        CallOutcome::Yielded(pending, self.progress)
    }

    /// The shutdown deadline came: give up on `pending`.
    async fn abandon(self, pending: Vec<Event>) -> CallOutcome {
        let failure = shutdown_failure(&self.progress);
        self.settle.abandoned(pending, &failure).await;
        CallOutcome::Settled
    }

    /// The loop after a failed attempt: decide, wait, try again.
    async fn after_failure(mut self, mut pending: Vec<Event>, first: DeliveryError) -> CallOutcome
    where
        S::Future: Send,
    {
        let mut error = first;
        loop {
            let n = pending.len();
            if let DeliveryError::CutOff = error {
                // Cut off during the attempt: it counts, but says nothing
                // about the sink, so the breaker does not hear of it.
                self.progress.attempts += 1;
                let _ = self
                    .progress
                    .first_failure
                    .get_or_insert(OffsetDateTime::now_utc());
                return self.abandon(pending).await;
            }
            self.progress.last_error = Some(error.to_string());
            self.pass.record(error.is_sink_failure(n));
            self.progress.attempts += 1;
            let attempts = self.progress.attempts;
            let now = OffsetDateTime::now_utc();
            let first = *self.progress.first_failure.get_or_insert(now);
            let can_retry = attempts <= self.policy.max_retries
                && self
                    .policy
                    .max_elapsed
                    .is_none_or(|max| self.tried_for() < max);
            let failure = |kind, message: String| Failure {
                kind,
                message,
                attempts,
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
                    error!(sink = %self.settle.sink(), error = %e, events = n, attempts, "delivery failed permanently");
                    let f = failure(FailureKind::Permanent, e.message);
                    self.settle.failed(pending, &f).await;
                    return CallOutcome::Settled;
                }
                other if !can_retry => {
                    error!(sink = %self.settle.sink(), error = %other, events = n, attempts, "delivery failed; no retry left");
                    let kind = match other {
                        DeliveryError::TimedOut(_) => FailureKind::Timeout,
                        _ => FailureKind::RetriesExhausted,
                    };
                    let message = match other {
                        DeliveryError::Sink(e) => e.message,
                        o => o.to_string(),
                    };
                    self.settle.failed(pending, &failure(kind, message)).await;
                    return CallOutcome::Settled;
                }
                DeliveryError::Sink(e) => (pending, e.retry_after),
                DeliveryError::TimedOut(_) | DeliveryError::CutOff => (pending, None),
            };
            pending = again;
            if pending.is_empty() {
                return CallOutcome::Settled;
            }
            let cutoff = self.settle.cutoff().clone();
            if cutoff.is_reached() {
                return self.abandon(pending).await;
            }
            let delay = self.policy.backoff.delay(attempts - 1, retry_after);
            warn!(sink = %self.settle.sink(), events = pending.len(), retry = attempts, of = self.policy.max_retries, ?delay, "delivery failed; will retry");
            let next = tokio::select! {
                _ = tokio::time::sleep(delay) => match self.pass.must_yield() {
                    true => Next::Yield,
                    false => Next::Retry,
                },
                _ = self.pass.yielded() => Next::Yield,
                _ = cutoff.reached() => Next::Abandon,
            };
            match next {
                Next::Retry => {}
                Next::Yield => return self.yielded(pending),
                Next::Abandon => return self.abandon(pending).await,
            }
            DeliveryStats::add(&self.stats.retries, 1);
            let n = pending.len();
            let batch: Batch = Arc::new(pending);
            let result = match self.inner.ready().await {
                Ok(svc) => svc.call(batch.clone()).await,
                Err(e) => Err(e),
            };
            let Some(events) = self.take_back(batch) else {
                return CallOutcome::Settled;
            };
            debug_assert_eq!(events.len(), n);
            pending = events;
            match result {
                Ok(()) => {
                    self.pass.record(false);
                    self.delivered(pending);
                    return CallOutcome::Settled;
                }
                Err(e) => error = e,
            }
        }
    }
}

/// What ends a backoff wait.
enum Next {
    /// The delay is over: try again.
    Retry,
    /// The breaker wants the batch back at its gate.
    Yield,
    /// The shutdown deadline came.
    Abandon,
}

/// The failure recorded for a batch abandoned at the shutdown deadline.
fn shutdown_failure(progress: &Progress) -> Failure {
    Failure::shutdown(
        progress.attempts,
        progress.first_failure,
        progress.last_error.as_deref(),
    )
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
