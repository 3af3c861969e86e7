//! A per-peer circuit breaker: after `failures` consecutive failed calls the
//! peer gets no traffic for `open_for`; then one trial call decides whether it
//! closes again or re-opens for twice as long (capped at 16×).
//!
//! Time is passed in, so the state machine is tested without sleeping.

use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// When a breaker opens and for how long.
#[derive(Debug, Clone, Copy)]
pub struct BreakerConfig {
    /// Consecutive failures that open the breaker.
    pub failures: u32,
    /// How long it stays open the first time.
    pub open_for: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failures: 5,
            open_for: Duration::from_secs(5),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
        trips: u32,
    },
    /// One trial call is in flight.
    HalfOpen {
        trips: u32,
    },
}

/// One peer's breaker.
#[derive(Debug)]
pub struct Breaker {
    config: BreakerConfig,
    state: Mutex<State>,
}

impl Breaker {
    /// A closed breaker.
    pub fn new(config: BreakerConfig) -> Self {
        Self {
            config,
            state: Mutex::new(State::Closed { failures: 0 }),
        }
    }

    /// May a call go out now? `Err` carries how long until the next trial.
    /// When the open period is over, the first caller gets the trial call.
    pub fn try_acquire(&self, now: Instant) -> Result<(), Duration> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match *state {
            State::Closed { .. } => Ok(()),
            State::Open { until, trips } if now >= until => {
                *state = State::HalfOpen { trips };
                Ok(())
            }
            State::Open { until, .. } => Err(until - now),
            State::HalfOpen { .. } => Err(Duration::ZERO),
        }
    }

    /// Record the outcome of a call that [`Breaker::try_acquire`] allowed.
    pub fn record(&self, success: bool, now: Instant) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        *state = match (*state, success) {
            (_, true) => State::Closed { failures: 0 },
            (State::Closed { failures }, false) if failures + 1 < self.config.failures => {
                State::Closed {
                    failures: failures + 1,
                }
            }
            (State::Closed { .. }, false) => self.open(now, 0),
            (State::HalfOpen { trips }, false) | (State::Open { trips, .. }, false) => {
                self.open(now, trips + 1)
            }
        };
    }

    /// Whether the breaker currently refuses calls.
    pub fn is_open(&self, now: Instant) -> bool {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        matches!(*state, State::Open { until, .. } if now < until)
    }

    fn open(&self, now: Instant, trips: u32) -> State {
        let factor = 1u32 << trips.min(4);
        State::Open {
            until: now + self.config.open_for * factor,
            trips,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> Breaker {
        Breaker::new(BreakerConfig {
            failures: 3,
            open_for: Duration::from_secs(1),
        })
    }

    #[test]
    fn opens_after_consecutive_failures_only() {
        let b = breaker();
        let t = Instant::now();
        b.record(false, t);
        b.record(false, t);
        b.record(true, t);
        b.record(false, t);
        b.record(false, t);
        assert!(b.try_acquire(t).is_ok(), "success reset the count");
        b.record(false, t);
        assert_eq!(b.try_acquire(t), Err(Duration::from_secs(1)));
    }

    #[test]
    fn one_trial_after_open_period_then_close_or_reopen_longer() {
        let b = breaker();
        let t = Instant::now();
        for _ in 0..3 {
            b.record(false, t);
        }
        let later = t + Duration::from_secs(1);
        assert!(b.try_acquire(later).is_ok(), "trial call");
        assert!(b.try_acquire(later).is_err(), "only one trial at a time");
        b.record(false, later);
        assert_eq!(b.try_acquire(later), Err(Duration::from_secs(2)));
        let trial = later + Duration::from_secs(2);
        assert!(b.try_acquire(trial).is_ok());
        b.record(true, trial);
        assert!(b.try_acquire(trial).is_ok());
        assert!(b.try_acquire(trial).is_ok(), "closed again");
    }
}
