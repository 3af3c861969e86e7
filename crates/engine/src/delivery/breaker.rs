//! The per-sink circuit breaker: a readiness gate in front of the retry layer.
//!
//! A call (one batch, with all its retries) passes the gate once. The gate
//! never fails a call: while the breaker is open, calls *wait* at the gate,
//! so an open breaker delays events and never drops or dead-letters them
//! (meanwhile the dispatch loop's in-flight bound stops intake, and the
//! bounded intake pushes back on sources).
//!
//! - **Closed**: calls pass at once (one atomic load). Consecutive failed
//!   attempts are counted; a successful one resets the count. The failure
//!   that reaches `failure_threshold` opens the breaker — that very failure,
//!   not the next call.
//! - **Open**: calls wait until `timeout` has passed; the first to wake turns
//!   the breaker half-open.
//! - **Half-open**: up to `half_open_max_calls` calls pass at once (they run
//!   concurrently; nothing is serialized through the breaker); the others
//!   wait for one of them to end. A failed attempt re-opens the breaker;
//!   `success_threshold` successful ones close it.
//!
//! # Calls, attempts and the shared state
//!
//! The gate admits calls, but it judges the sink by the attempts of the calls
//! it admitted: each call carries a [`Pass`], through which the retry layer
//! below reports every attempt's outcome and reads the breaker's state (one
//! atomic word). Judging only whole calls would leave the breaker blind for
//! as long as the calls in flight keep retrying — with a generous
//! `max_retries` and a 30 s backoff cap, for hours, during exactly the outage
//! it exists for. When the breaker opens while a call is retrying (because
//! of this call's attempt or another's), the retry layer stops at once, even
//! in the middle of a backoff wait, and hands the batch back; the call goes
//! back to the gate and waits there, keeping the attempts and time it has
//! already spent.
//!
//! Every pass carries the breaker's generation (bumped at each transition),
//! so an outcome from a call admitted in an earlier state is ignored: a burst
//! of slow failures admitted while closed cannot re-open a breaker that is
//! probing.
//!
//! What counts as a failure: see [`DeliveryError::is_sink_failure`](super::DeliveryError::is_sink_failure).
//!
//! At the pipeline's shutdown deadline ([`Cutoff`]) the gate stops holding
//! calls: they pass with an unguarded pass, and the retry layer abandons
//! them at once.

use super::config::BreakerConfig;
use super::retry::{Admitted, CallOutcome, Progress};
use super::stats::{BreakerState, DeliveryStats};
use crate::shutdown::Cutoff;
use futures_util::future::{BoxFuture, FutureExt};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{
    AtomicU32, AtomicU64,
    Ordering::{AcqRel, Acquire, Relaxed, Release},
};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use switchyard_core::Event;
use tokio::sync::Notify;
use tokio::time::Instant;
use tower::{Layer, Service};
use tracing::{info, warn};

const CLOSED: u64 = 0;
const OPEN: u64 = 1;
const HALF_OPEN: u64 = 2;

/// One sink's breaker, shared by every clone of its service and by the
/// passes of the calls in flight.
pub struct Breaker {
    config: BreakerConfig,
    sink: String,
    stats: Arc<DeliveryStats>,
    /// `generation << 2 | state`: what the hot path reads. Written only under
    /// `slow`, so a transition and its bookkeeping are one step.
    word: AtomicU64,
    /// Consecutive failed attempts while closed (atomic: the closed path
    /// takes no lock unless it opens the breaker).
    failures: AtomicU32,
    slow: Mutex<Slow>,
    /// Woken at every transition and whenever a half-open slot frees.
    changed: Notify,
    /// Once reached, nobody waits at the gate.
    cutoff: Cutoff,
}

/// What only the open and half-open states need.
struct Slow {
    open_until: Instant,
    admitted: u32,
    successes: u32,
}

/// The proof that a call passed the gate, and its handle on the breaker.
/// Dropping it (when the call ends or goes back to the gate) frees its
/// half-open slot, if it holds one.
pub struct Pass {
    breaker: Option<Arc<Breaker>>,
    generation: u64,
    half_open: bool,
}

impl Pass {
    /// A pass for a stack without a breaker: outcomes are not recorded and
    /// the call is never sent back.
    pub fn unguarded() -> Self {
        Self {
            breaker: None,
            generation: 0,
            half_open: false,
        }
    }

    /// Report one attempt's outcome (`failed`: it says the sink is unwell).
    pub fn record(&self, failed: bool) {
        if let Some(b) = &self.breaker {
            b.record(self.generation, failed);
        }
    }

    /// Whether the call must stop and go back to the gate: the breaker is
    /// open, or half-open in a round this call is not a trial call of.
    pub fn must_yield(&self) -> bool {
        let Some(b) = &self.breaker else {
            return false;
        };
        let word = b.word.load(Acquire);
        match word & 3 {
            OPEN => true,
            HALF_OPEN => word >> 2 != self.generation,
            _ => false,
        }
    }

    /// Resolves once [`Pass::must_yield`] is true; never for an unguarded
    /// pass. Lets the retry layer cut a backoff wait short.
    pub async fn yielded(&self) {
        let Some(b) = &self.breaker else {
            return std::future::pending().await;
        };
        loop {
            // Registered before the check, so a transition in between is
            // not missed (`notify_waiters` reaches futures created earlier).
            let changed = b.changed.notified();
            if self.must_yield() {
                return;
            }
            changed.await;
        }
    }
}

impl Drop for Pass {
    fn drop(&mut self) {
        if let (Some(b), true) = (&self.breaker, self.half_open) {
            b.release_trial(self.generation);
        }
    }
}

impl Breaker {
    /// A closed breaker for `sink`.
    pub fn new(config: BreakerConfig, sink: &str, stats: Arc<DeliveryStats>) -> Self {
        Self {
            config,
            sink: sink.to_string(),
            stats,
            word: AtomicU64::new(CLOSED),
            failures: AtomicU32::new(0),
            slow: Mutex::new(Slow {
                open_until: Instant::now(),
                admitted: 0,
                successes: 0,
            }),
            changed: Notify::new(),
            cutoff: Cutoff::new(),
        }
    }

    /// Let every call through, unguarded, once `cutoff` is reached.
    pub fn with_cutoff(mut self, cutoff: Cutoff) -> Self {
        self.cutoff = cutoff;
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Slow> {
        // Nothing that can panic runs under the lock; a poisoned lock still
        // holds a consistent state.
        self.slow.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Move to `state` in the next generation. Called with the lock held.
    fn enter(&self, slow: &mut Slow, state: u64) {
        let generation = (self.word.load(Relaxed) >> 2) + 1;
        let (shown, message) = match state {
            OPEN => {
                slow.open_until = Instant::now() + self.config.timeout;
                (BreakerState::Open, "circuit opened: sink failing")
            }
            HALF_OPEN => {
                slow.admitted = 0;
                slow.successes = 0;
                (BreakerState::HalfOpen, "circuit half-open: probing sink")
            }
            _ => {
                self.failures.store(0, Relaxed);
                (BreakerState::Closed, "circuit closed: sink healthy again")
            }
        };
        self.word.store(generation << 2 | state, Release);
        self.stats.set_breaker_state(shown);
        match shown {
            BreakerState::Open => {
                warn!(sink = %self.sink, timeout = ?self.config.timeout, "{message}")
            }
            _ => info!(sink = %self.sink, "{message}"),
        }
        self.changed.notify_waiters();
    }

    /// Pass now, or say what to wait for: `Some(instant)` when open until
    /// then, `None` when every half-open trial slot is taken.
    fn try_pass(self: &Arc<Self>) -> Result<Pass, Option<Instant>> {
        let pass = |generation, half_open| Pass {
            breaker: Some(self.clone()),
            generation,
            half_open,
        };
        let word = self.word.load(Acquire);
        if word & 3 == CLOSED {
            return Ok(pass(word >> 2, false));
        }
        let mut slow = self.lock();
        let mut word = self.word.load(Relaxed);
        if word & 3 == OPEN {
            if Instant::now() < slow.open_until {
                return Err(Some(slow.open_until));
            }
            self.enter(&mut slow, HALF_OPEN);
            word = self.word.load(Relaxed);
        }
        match word & 3 {
            HALF_OPEN if slow.admitted < self.config.half_open_max_calls => {
                slow.admitted += 1;
                Ok(pass(word >> 2, true))
            }
            HALF_OPEN => Err(None),
            _ => Ok(pass(word >> 2, false)),
        }
    }

    /// Wait at the gate until the call may pass, or until the cutoff (then
    /// the pass is unguarded). Never fails.
    pub async fn admit(self: &Arc<Self>) -> Pass {
        let mut counted = false;
        loop {
            let changed = self.changed.notified();
            let wait = match self.try_pass() {
                Ok(pass) => return pass,
                Err(wait) => wait,
            };
            if self.cutoff.is_reached() {
                return Pass::unguarded();
            }
            if !counted {
                counted = true;
                DeliveryStats::add(&self.stats.breaker_rejected, 1);
            }
            match wait {
                Some(until) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(until) => {}
                        _ = changed => {}
                        _ = self.cutoff.reached() => {}
                    }
                }
                None => {
                    tokio::select! {
                        _ = changed => {}
                        _ = self.cutoff.reached() => {}
                    }
                }
            }
        }
    }

    fn record(&self, generation: u64, failed: bool) {
        let word = self.word.load(Acquire);
        if word >> 2 != generation {
            return;
        }
        if word & 3 == CLOSED {
            if !failed {
                // Read first: a healthy sink's successes then write nothing.
                if self.failures.load(Relaxed) != 0 {
                    self.failures.store(0, Relaxed);
                }
                return;
            }
            let failures = self.failures.fetch_add(1, AcqRel) + 1;
            if failures < self.config.failure_threshold {
                return;
            }
        }
        let mut slow = self.lock();
        let word = self.word.load(Relaxed);
        if word >> 2 != generation {
            return;
        }
        match (word & 3, failed) {
            (CLOSED, true) | (HALF_OPEN, true) => self.enter(&mut slow, OPEN),
            (HALF_OPEN, false) => {
                slow.successes += 1;
                if slow.successes >= self.config.success_threshold {
                    self.enter(&mut slow, CLOSED);
                }
            }
            _ => {}
        }
    }

    fn release_trial(&self, generation: u64) {
        let mut slow = self.lock();
        if self.word.load(Relaxed) == generation << 2 | HALF_OPEN {
            slow.admitted = slow.admitted.saturating_sub(1);
            drop(slow);
            self.changed.notify_waiters();
        }
    }
}

/// Adds [`Gate`] in front of the retry layer; `None`: no breaker.
#[derive(Clone)]
pub struct BreakerLayer {
    breaker: Option<Arc<Breaker>>,
}

impl BreakerLayer {
    /// Share `breaker` between every service this layer makes.
    pub fn new(breaker: Option<Arc<Breaker>>) -> Self {
        Self { breaker }
    }
}

impl<S> Layer<S> for BreakerLayer {
    type Service = Gate<S>;
    fn layer(&self, inner: S) -> Gate<S> {
        Gate {
            inner,
            breaker: self.breaker.clone(),
        }
    }
}

/// The breaker's gate. Always ready as a service: a call waits for its pass
/// inside its future, because the dispatch loop holds many calls at once and
/// must keep polling them — among them the trial calls that can close the
/// breaker. A service-level `poll_ready` would stop the loop, and with it
/// those very calls. For the same reason the pass is taken at the future's
/// first poll, not in `call`: a future the caller has not started yet must
/// not hold one of the few half-open trial slots.
#[derive(Clone)]
pub struct Gate<S> {
    inner: S,
    breaker: Option<Arc<Breaker>>,
}

impl<S> Service<Vec<Event>> for Gate<S>
where
    S: Service<Admitted, Response = CallOutcome, Error = Infallible>
        + Clone
        + Send
        + Unpin
        + 'static,
    S::Future: Send + Unpin + 'static,
{
    type Response = ();
    type Error = Infallible;
    type Future = GateFuture<S>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, events: Vec<Event>) -> Self::Future {
        GateFuture::Start {
            inner: self.inner.clone(),
            breaker: self.breaker.clone(),
            events,
        }
    }
}

/// Back to the gate, as often as the breaker sends the batch back.
async fn wait_and_call<S>(
    mut inner: S,
    breaker: Arc<Breaker>,
    mut events: Vec<Event>,
    mut progress: Progress,
) where
    S: Service<Admitted, Response = CallOutcome, Error = Infallible>,
{
    loop {
        let pass = breaker.admit().await;
        let Ok(outcome) = inner
            .call(Admitted {
                events,
                pass,
                progress,
            })
            .await;
        match outcome {
            CallOutcome::Settled => return,
            CallOutcome::Yielded(e, p) => (events, progress) = (e, p),
        }
    }
}

/// A call at the gate. A call that passes at its first poll runs without
/// allocating; one that must wait (or is sent back) continues as a boxed
/// async loop.
pub enum GateFuture<S: Service<Admitted>> {
    /// Not polled yet.
    Start {
        /// The retry layer.
        inner: S,
        /// `None`: no breaker, every call passes.
        breaker: Option<Arc<Breaker>>,
        /// The batch.
        events: Vec<Event>,
    },
    /// Through the gate. With a breaker, the service and the breaker are
    /// kept in case the call is sent back.
    Passed {
        /// The call below the gate.
        call: S::Future,
        /// To go back to the gate with.
        back: Option<(S, Arc<Breaker>)>,
    },
    /// Waiting at the gate, or back at it.
    Waiting(BoxFuture<'static, ()>),
    /// Between two states (never seen by a poll).
    Moving,
}

impl<S> Future for GateFuture<S>
where
    S: Service<Admitted, Response = CallOutcome, Error = Infallible> + Send + Unpin + 'static,
    S::Future: Send + Unpin + 'static,
{
    type Output = Result<(), Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        loop {
            match this {
                GateFuture::Start { .. } => {
                    let GateFuture::Start {
                        mut inner,
                        breaker,
                        events,
                    } = std::mem::replace(this, GateFuture::Moving)
                    else {
                        unreachable!("matched just above");
                    };
                    let progress = Progress::default();
                    *this = match breaker {
                        None => GateFuture::Passed {
                            call: inner.call(Admitted {
                                events,
                                pass: Pass::unguarded(),
                                progress,
                            }),
                            back: None,
                        },
                        Some(b) => match b.try_pass() {
                            Ok(pass) => GateFuture::Passed {
                                call: inner.call(Admitted {
                                    events,
                                    pass,
                                    progress,
                                }),
                                back: Some((inner, b)),
                            },
                            Err(_) => GateFuture::Waiting(
                                wait_and_call(inner, b, events, progress).boxed(),
                            ),
                        },
                    };
                }
                GateFuture::Passed { call, back } => {
                    let Ok(outcome) = std::task::ready!(Pin::new(call).poll(cx));
                    let (events, progress) = match outcome {
                        CallOutcome::Settled => return Poll::Ready(Ok(())),
                        CallOutcome::Yielded(events, progress) => (events, progress),
                    };
                    let Some((inner, breaker)) = back.take() else {
                        unreachable!("a call without a breaker was sent back to the gate");
                    };
                    *this = GateFuture::Waiting(
                        wait_and_call(inner, breaker, events, progress).boxed(),
                    );
                }
                GateFuture::Waiting(wait) => {
                    std::task::ready!(wait.as_mut().poll(cx));
                    return Poll::Ready(Ok(()));
                }
                GateFuture::Moving => unreachable!("a gate future is polled between states"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn breaker(half_open_max_calls: u32) -> (Arc<Breaker>, Arc<DeliveryStats>) {
        let stats = Arc::new(DeliveryStats::default());
        let cfg = BreakerConfig {
            enabled: true,
            failure_threshold: 3,
            success_threshold: 2,
            timeout: Duration::from_secs(10),
            half_open_max_calls,
        };
        (Arc::new(Breaker::new(cfg, "test", stats.clone())), stats)
    }

    /// Whether `admit` is still waiting after `d` (paused time).
    async fn waits_for(b: &Arc<Breaker>, d: Duration) -> bool {
        tokio::time::timeout(d, b.admit()).await.is_err()
    }

    fn open(b: &Arc<Breaker>) {
        for _ in 0..3 {
            b.try_pass().expect("closed").record(true);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn opens_on_the_threshold_failure_calls_wait_then_probe_and_close() {
        let (b, stats) = breaker(1);
        for _ in 0..2 {
            b.try_pass().expect("closed").record(true);
        }
        assert_eq!(stats.breaker_state(), BreakerState::Closed);
        b.try_pass().expect("closed").record(true);
        assert_eq!(
            stats.breaker_state(),
            BreakerState::Open,
            "the third failure opens it"
        );
        assert!(
            waits_for(&b, Duration::from_secs(9)).await,
            "open: a call waits, it is not refused"
        );
        // The open timeout ends 10 s after opening: 1 s from here.
        let started = Instant::now();
        let probe = b.admit().await;
        assert_eq!(started.elapsed(), Duration::from_secs(1));
        assert_eq!(stats.breaker_state(), BreakerState::HalfOpen);
        probe.record(false);
        drop(probe);
        let probe = b.admit().await;
        probe.record(false);
        let s = stats.snapshot();
        assert_eq!(s.breaker_state, BreakerState::Closed);
        assert_eq!(
            (s.breaker_opened, s.breaker_half_opened, s.breaker_closed),
            (1, 1, 1)
        );
        assert_eq!(s.breaker_rejected, 2, "two calls waited at the gate");
    }

    #[tokio::test(start_paused = true)]
    async fn half_open_lets_through_at_most_max_calls_at_once_and_the_next_when_one_ends() {
        let (b, stats) = breaker(2);
        open(&b);
        tokio::time::advance(Duration::from_secs(10)).await;
        let first = b.admit().await;
        let second = b.admit().await;
        assert_eq!(stats.breaker_state(), BreakerState::HalfOpen);
        assert!(
            waits_for(&b, Duration::from_secs(60)).await,
            "a third trial call waits while two run"
        );
        let third = tokio::spawn({
            let b = b.clone();
            async move { b.admit().await.half_open }
        });
        tokio::task::yield_now().await;
        assert!(!third.is_finished());
        first.record(false);
        drop(first);
        assert!(
            third.await.unwrap(),
            "the freed slot went to a waiting call"
        );
        drop(second);
        assert_eq!(stats.breaker_state(), BreakerState::HalfOpen);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_trial_reopens_and_stale_outcomes_are_ignored() {
        let (b, stats) = breaker(1);
        let slow = b.try_pass().expect("closed");
        open(&b);
        assert!(slow.must_yield(), "admitted while closed, now open");
        tokio::time::advance(Duration::from_secs(10)).await;
        let probe = b.admit().await;
        slow.record(true); // admitted while closed: not counted now
        assert!(slow.must_yield(), "not a trial call of this round");
        assert!(!probe.must_yield());
        assert_eq!(stats.breaker_state(), BreakerState::HalfOpen);
        probe.record(true);
        assert_eq!(stats.breaker_state(), BreakerState::Open);
        assert_eq!(stats.snapshot().breaker_opened, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_waiting_for_its_retry_learns_at_once_that_the_breaker_opened() {
        let (b, _) = breaker(1);
        let retrying = b.try_pass().expect("closed");
        let yielded = tokio::spawn(async move {
            let started = Instant::now();
            retrying.yielded().await;
            started.elapsed()
        });
        tokio::time::sleep(Duration::from_secs(5)).await;
        open(&b);
        assert_eq!(yielded.await.unwrap(), Duration::from_secs(5));
    }

    #[test]
    fn success_resets_the_consecutive_count() {
        let (b, stats) = breaker(1);
        for failed in [true, true, false, true, true] {
            b.try_pass().expect("closed").record(failed);
        }
        assert_eq!(stats.breaker_state(), BreakerState::Closed);
    }

    #[test]
    fn without_a_breaker_a_call_never_yields() {
        let pass = Pass::unguarded();
        pass.record(true);
        assert!(!pass.must_yield());
    }
}
