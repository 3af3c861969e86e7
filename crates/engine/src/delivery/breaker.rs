//! The per-sink circuit breaker.
//!
//! - **Closed**: attempts go through; consecutive sink failures are counted
//!   (a success resets the count). The failure that reaches
//!   `failure_threshold` opens the breaker — that very failure, not the next
//!   call.
//! - **Open**: attempts fail at once with [`DeliveryError::CircuitOpen`],
//!   carrying the time left; nothing is sent to the sink. After `timeout` the
//!   next attempt finds it half-open.
//! - **Half-open**: up to `half_open_max_calls` trial attempts go through at
//!   once; others are refused as if open (for a short while). Any failure
//!   re-opens it; `success_threshold` successes close it.
//!
//! The lock guards only the state change; it is never held across the
//! sink's call, so attempts are not serialized through the breaker. An
//! attempt admitted in one state that finishes after the state changed is
//! not counted (a generation number tells), so a burst of slow failures
//! admitted while closed cannot re-open a breaker that is probing.
//!
//! What counts as a failure: see [`DeliveryError::is_sink_failure`].

use super::config::BreakerConfig;
use super::stats::{BreakerState, DeliveryStats};
use super::{Batch, DeliveryError};
use futures_util::future::BoxFuture;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::Instant;
use tower::{Layer, Service};
use tracing::{info, warn};

/// How long a refused attempt waits when the half-open trial calls are all
/// taken: long enough not to spin, short enough to follow the probe.
const HALF_OPEN_BUSY_WAIT: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, Copy)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { admitted: u32, successes: u32 },
}

/// One sink's breaker state, shared by every clone of its service.
pub struct Breaker {
    config: BreakerConfig,
    sink: String,
    stats: Arc<DeliveryStats>,
    state: Mutex<(State, u64)>,
}

/// Proof that an attempt was admitted, and in which generation.
#[derive(Debug, Clone, Copy)]
pub struct Ticket {
    generation: u64,
}

impl Breaker {
    /// A closed breaker for `sink`.
    pub fn new(config: BreakerConfig, sink: &str, stats: Arc<DeliveryStats>) -> Self {
        Self {
            config,
            sink: sink.to_string(),
            stats,
            state: Mutex::new((State::Closed { failures: 0 }, 0)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (State, u64)> {
        // Nothing that can panic runs under the lock; a poisoned lock still
        // holds a consistent state.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn enter(&self, slot: &mut (State, u64), next: State) {
        slot.0 = next;
        slot.1 += 1;
        let (state, message) = match next {
            State::Closed { .. } => (BreakerState::Closed, "circuit closed: sink healthy again"),
            State::Open { .. } => (BreakerState::Open, "circuit opened: sink failing"),
            State::HalfOpen { .. } => (BreakerState::HalfOpen, "circuit half-open: probing sink"),
        };
        self.stats.set_breaker_state(state);
        match state {
            BreakerState::Open => {
                warn!(sink = %self.sink, timeout = ?self.config.timeout, "{message}")
            }
            _ => info!(sink = %self.sink, "{message}"),
        }
    }

    /// Admit an attempt, or say how long to wait.
    pub fn admit(&self) -> Result<Ticket, Duration> {
        if !self.config.enabled {
            return Ok(Ticket { generation: 0 });
        }
        let mut slot = self.lock();
        if let State::Open { until } = slot.0 {
            let now = Instant::now();
            if now < until {
                DeliveryStats::add(&self.stats.breaker_rejected, 1);
                return Err(until - now);
            }
            self.enter(
                &mut slot,
                State::HalfOpen {
                    admitted: 0,
                    successes: 0,
                },
            );
        }
        if let State::HalfOpen { admitted, .. } = &mut slot.0 {
            if *admitted >= self.config.half_open_max_calls {
                DeliveryStats::add(&self.stats.breaker_rejected, 1);
                return Err(HALF_OPEN_BUSY_WAIT);
            }
            *admitted += 1;
        }
        Ok(Ticket { generation: slot.1 })
    }

    /// Record how an admitted attempt went.
    pub fn record(&self, ticket: Ticket, failed: bool) {
        if !self.config.enabled {
            return;
        }
        let mut slot = self.lock();
        if slot.1 != ticket.generation {
            return;
        }
        let open = State::Open {
            until: Instant::now() + self.config.timeout,
        };
        match (&mut slot.0, failed) {
            (State::Closed { failures }, false) => *failures = 0,
            (State::Closed { failures }, true) => {
                *failures += 1;
                if *failures >= self.config.failure_threshold {
                    self.enter(&mut slot, open);
                }
            }
            (State::HalfOpen { .. }, true) => self.enter(&mut slot, open),
            (
                State::HalfOpen {
                    successes,
                    admitted,
                },
                false,
            ) => {
                *successes += 1;
                *admitted = admitted.saturating_sub(1);
                if *successes >= self.config.success_threshold {
                    self.enter(&mut slot, State::Closed { failures: 0 });
                }
            }
            (State::Open { .. }, _) => {}
        }
    }
}

/// Adds [`BreakerService`] around a sink's attempts.
#[derive(Clone)]
pub struct BreakerLayer {
    breaker: Arc<Breaker>,
}

impl BreakerLayer {
    /// Share `breaker` between every service this layer makes.
    pub fn new(breaker: Arc<Breaker>) -> Self {
        Self { breaker }
    }
}

impl<S> Layer<S> for BreakerLayer {
    type Service = BreakerService<S>;
    fn layer(&self, inner: S) -> BreakerService<S> {
        BreakerService {
            inner,
            breaker: self.breaker.clone(),
        }
    }
}

/// The breaker service.
#[derive(Clone)]
pub struct BreakerService<S> {
    inner: S,
    breaker: Arc<Breaker>,
}

impl<S> Service<Batch> for BreakerService<S>
where
    S: Service<Batch, Response = (), Error = DeliveryError>,
    S::Future: Send + 'static,
{
    type Response = ();
    type Error = DeliveryError;
    type Future = BoxFuture<'static, Result<(), DeliveryError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, batch: Batch) -> Self::Future {
        let ticket = match self.breaker.admit() {
            Ok(t) => t,
            Err(retry_in) => {
                return Box::pin(async move { Err(DeliveryError::CircuitOpen { retry_in }) })
            }
        };
        let n = batch.len();
        let attempt = self.inner.call(batch);
        let breaker = self.breaker.clone();
        Box::pin(async move {
            let result = attempt.await;
            let failed = result.as_ref().err().is_some_and(|e| e.is_sink_failure(n));
            breaker.record(ticket, failed);
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> (Breaker, Arc<DeliveryStats>) {
        let stats = Arc::new(DeliveryStats::default());
        let cfg = BreakerConfig {
            enabled: true,
            failure_threshold: 3,
            success_threshold: 2,
            timeout: Duration::from_secs(10),
            half_open_max_calls: 1,
        };
        (Breaker::new(cfg, "test", stats.clone()), stats)
    }

    #[tokio::test(start_paused = true)]
    async fn opens_on_the_threshold_failure_probes_and_closes() {
        let (b, stats) = breaker();
        for _ in 0..2 {
            let t = b.admit().unwrap();
            b.record(t, true);
        }
        assert_eq!(stats.breaker_state(), BreakerState::Closed);
        let t = b.admit().unwrap();
        b.record(t, true);
        assert_eq!(
            stats.breaker_state(),
            BreakerState::Open,
            "the third failure opens it"
        );
        assert_eq!(b.admit().unwrap_err(), Duration::from_secs(10));

        tokio::time::advance(Duration::from_secs(10)).await;
        let probe = b.admit().unwrap();
        assert_eq!(stats.breaker_state(), BreakerState::HalfOpen);
        assert_eq!(
            b.admit().unwrap_err(),
            HALF_OPEN_BUSY_WAIT,
            "one trial call at a time"
        );
        b.record(probe, false);
        let probe = b.admit().unwrap();
        b.record(probe, false);
        let s = stats.snapshot();
        assert_eq!(s.breaker_state, BreakerState::Closed);
        assert_eq!(
            (s.breaker_opened, s.breaker_half_opened, s.breaker_closed),
            (1, 1, 1)
        );
        assert_eq!(s.breaker_rejected, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_probe_reopens_and_stale_results_are_ignored() {
        let (b, stats) = breaker();
        let slow = b.admit().unwrap();
        for _ in 0..3 {
            let t = b.admit().unwrap();
            b.record(t, true);
        }
        tokio::time::advance(Duration::from_secs(10)).await;
        let probe = b.admit().unwrap();
        b.record(slow, true); // admitted while closed: not counted now
        assert_eq!(stats.breaker_state(), BreakerState::HalfOpen);
        b.record(probe, true);
        assert_eq!(stats.breaker_state(), BreakerState::Open);
        assert_eq!(stats.snapshot().breaker_opened, 2);
    }

    #[test]
    fn success_resets_the_consecutive_count() {
        let (b, stats) = breaker();
        for failed in [true, true, false, true, true] {
            let t = b.admit().unwrap();
            b.record(t, failed);
        }
        assert_eq!(stats.breaker_state(), BreakerState::Closed);
    }
}
