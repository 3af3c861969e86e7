//! What the delivery stack of one sink is doing, as plain atomics: cheap to
//! update on the hot path, and readable by whoever exports metrics or health
//! (the admin endpoint, the final counters) without a lock.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering::Relaxed};

/// A circuit breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Calls go through; consecutive failures are counted.
    Closed,
    /// Calls wait at the gate until the open timeout has passed.
    Open,
    /// A few trial calls probe the sink.
    HalfOpen,
}

/// Live counters of one sink's delivery stack.
#[derive(Debug, Default)]
pub struct DeliveryStats {
    pub(crate) breaker_state: AtomicU8,
    pub(crate) breaker_opened: AtomicU64,
    pub(crate) breaker_half_opened: AtomicU64,
    pub(crate) breaker_closed: AtomicU64,
    pub(crate) breaker_rejected: AtomicU64,
    pub(crate) retries: AtomicU64,
    pub(crate) timeouts: AtomicU64,
    pub(crate) rate_limited_waits: AtomicU64,
    pub(crate) dead_lettered: AtomicU64,
    pub(crate) dlq_full_dropped: AtomicU64,
    pub(crate) in_flight: AtomicU64,
    pub(crate) concurrency_limit: AtomicU64,
}

/// A copy of [`DeliveryStats`] at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct DeliveryStatsSnapshot {
    /// The breaker's state now.
    pub breaker_state: BreakerState,
    /// Transitions into `open` (from closed or half-open).
    pub breaker_opened: u64,
    /// Transitions from open into `half_open`.
    pub breaker_half_opened: u64,
    /// Transitions from half-open back to `closed`.
    pub breaker_closed: u64,
    /// Calls held at the breaker's gate because it was open or its
    /// half-open trial calls were all taken (each call counted once per
    /// wait). Held, not failed: the exported name is kept from when they
    /// were refused.
    pub breaker_rejected: u64,
    /// Attempts after the first one (waits at the gate are not retries).
    pub retries: u64,
    /// Attempts cut short by the delivery timeout.
    pub timeouts: u64,
    /// Batches that had to wait for the rate limiter.
    pub rate_limited_waits: u64,
    /// Events written to the dead-letter queue.
    pub dead_lettered: u64,
    /// Events dropped because the dead-letter queue was full.
    pub dlq_full_dropped: u64,
    /// Batches inside the concurrency limit now.
    pub in_flight: u64,
    /// The concurrency limit now (moves when it is adaptive).
    pub concurrency_limit: u64,
}

impl DeliveryStats {
    /// Read every counter.
    pub fn snapshot(&self) -> DeliveryStatsSnapshot {
        DeliveryStatsSnapshot {
            breaker_state: self.breaker_state(),
            breaker_opened: self.breaker_opened.load(Relaxed),
            breaker_half_opened: self.breaker_half_opened.load(Relaxed),
            breaker_closed: self.breaker_closed.load(Relaxed),
            breaker_rejected: self.breaker_rejected.load(Relaxed),
            retries: self.retries.load(Relaxed),
            timeouts: self.timeouts.load(Relaxed),
            rate_limited_waits: self.rate_limited_waits.load(Relaxed),
            dead_lettered: self.dead_lettered.load(Relaxed),
            dlq_full_dropped: self.dlq_full_dropped.load(Relaxed),
            in_flight: self.in_flight.load(Relaxed),
            concurrency_limit: self.concurrency_limit.load(Relaxed),
        }
    }

    /// The breaker's state now (for health checks).
    pub fn breaker_state(&self) -> BreakerState {
        match self.breaker_state.load(Relaxed) {
            1 => BreakerState::Open,
            2 => BreakerState::HalfOpen,
            _ => BreakerState::Closed,
        }
    }

    pub(crate) fn set_breaker_state(&self, state: BreakerState) {
        let (code, counter) = match state {
            BreakerState::Closed => (0, &self.breaker_closed),
            BreakerState::Open => (1, &self.breaker_opened),
            BreakerState::HalfOpen => (2, &self.breaker_half_opened),
        };
        self.breaker_state.store(code, Relaxed);
        counter.fetch_add(1, Relaxed);
    }

    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }
}
