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

/// The state, and how many times the breaker has opened: a call let through
/// before the latest opening reports a stale outcome, which must not move
/// the state (59 late failures of calls that were already in flight when
/// the peer died would otherwise stretch the open period to its cap).
#[derive(Debug)]
struct Inner {
    state: State,
    openings: u64,
}

/// One peer's breaker.
#[derive(Debug)]
pub struct Breaker {
    config: BreakerConfig,
    inner: Mutex<Inner>,
}

/// Leave to make one call, given by [`Breaker::try_acquire`]. Report how the
/// call went with [`Permit::record`]. A trial call's permit dropped without
/// a verdict (the caller gave up) hands the trial to the next caller, so an
/// abandoned trial cannot keep the peer shut out.
#[derive(Debug)]
#[must_use = "a permit reports its call's outcome with `record`"]
pub struct Permit<'a> {
    breaker: &'a Breaker,
    trial: bool,
    openings: u64,
    settled: bool,
}

impl Permit<'_> {
    /// Whether this is the one trial call after an open period.
    pub fn is_trial(&self) -> bool {
        self.trial
    }

    /// The call's outcome: a success closes the breaker, a failure counts
    /// towards opening it (or re-opens it, for a trial).
    pub fn record(mut self, success: bool, now: Instant) {
        self.settled = true;
        self.breaker.settle(self.trial, self.openings, success, now);
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if self.trial && !self.settled {
            self.breaker.abandon_trial();
        }
    }
}

impl Breaker {
    /// A closed breaker.
    pub fn new(config: BreakerConfig) -> Self {
        Self {
            config,
            inner: Mutex::new(Inner {
                state: State::Closed { failures: 0 },
                openings: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// May a call go out now? `Err` carries how long until the next trial.
    /// When the open period is over, the first caller gets the trial call.
    pub fn try_acquire(&self, now: Instant) -> Result<Permit<'_>, Duration> {
        let mut inner = self.lock();
        let trial = match inner.state {
            State::Closed { .. } => false,
            State::Open { until, trips } if now >= until => {
                inner.state = State::HalfOpen { trips };
                true
            }
            State::Open { until, .. } => return Err(until - now),
            State::HalfOpen { .. } => return Err(Duration::ZERO),
        };
        Ok(Permit {
            breaker: self,
            trial,
            openings: inner.openings,
            settled: false,
        })
    }

    fn settle(&self, trial: bool, openings: u64, success: bool, now: Instant) {
        let mut inner = self.lock();
        if openings != inner.openings {
            // Let through before the latest opening: stale.
            return;
        }
        inner.state = match (inner.state, trial, success) {
            (_, _, true) => State::Closed { failures: 0 },
            (State::HalfOpen { trips }, true, false) => self.open(&mut inner, now, trips + 1),
            (State::Closed { failures }, false, false) if failures + 1 < self.config.failures => {
                State::Closed {
                    failures: failures + 1,
                }
            }
            (State::Closed { .. }, false, false) => self.open(&mut inner, now, 0),
            // A call of this opening that is neither the trial nor let
            // through while closed cannot exist; leave the state alone.
            (state, _, false) => state,
        };
    }

    /// The trial's caller went away: the next caller may try at once.
    fn abandon_trial(&self) {
        let mut inner = self.lock();
        if let State::HalfOpen { trips } = inner.state {
            inner.state = State::Open {
                until: Instant::now(),
                trips,
            };
        }
    }

    /// Whether the breaker currently refuses calls.
    pub fn is_open(&self, now: Instant) -> bool {
        matches!(self.lock().state, State::Open { until, .. } if now < until)
    }

    fn open(&self, inner: &mut Inner, now: Instant, trips: u32) -> State {
        inner.openings += 1;
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

    /// A call let through now, reporting `success`.
    fn call(b: &Breaker, success: bool, t: Instant) {
        b.try_acquire(t).expect("let through").record(success, t);
    }

    #[test]
    fn opens_after_consecutive_failures_only() {
        let b = breaker();
        let t = Instant::now();
        call(&b, false, t);
        call(&b, false, t);
        call(&b, true, t);
        call(&b, false, t);
        call(&b, false, t);
        assert!(b.try_acquire(t).is_ok(), "success reset the count");
        call(&b, false, t);
        assert_eq!(b.try_acquire(t).err(), Some(Duration::from_secs(1)));
    }

    #[test]
    fn one_trial_after_open_period_then_close_or_reopen_longer() {
        let b = breaker();
        let t = Instant::now();
        for _ in 0..3 {
            call(&b, false, t);
        }
        let later = t + Duration::from_secs(1);
        let trial = b.try_acquire(later).expect("trial call");
        assert!(trial.is_trial());
        assert!(b.try_acquire(later).is_err(), "only one trial at a time");
        trial.record(false, later);
        assert_eq!(b.try_acquire(later).err(), Some(Duration::from_secs(2)));
        let next = later + Duration::from_secs(2);
        b.try_acquire(next)
            .expect("second trial")
            .record(true, next);
        assert!(!b.try_acquire(next).expect("closed").is_trial());
        assert!(b.try_acquire(next).is_ok(), "closed again");
    }

    #[test]
    fn late_failures_of_calls_already_in_flight_do_not_stretch_the_open_period() {
        let b = breaker();
        let t = Instant::now();
        // Ten calls go out while the peer still looks fine; then all fail.
        let in_flight: Vec<_> = (0..10).map(|_| b.try_acquire(t).expect("closed")).collect();
        for permit in in_flight {
            permit.record(false, t);
        }
        // Opened once, by the third failure; the seven others were stale.
        assert_eq!(b.try_acquire(t).err(), Some(Duration::from_secs(1)));
        let later = t + Duration::from_secs(1);
        assert!(b.try_acquire(later).expect("trial on time").is_trial());
    }

    #[test]
    fn an_abandoned_trial_does_not_keep_the_peer_shut_out() {
        let b = breaker();
        let t = Instant::now();
        for _ in 0..3 {
            call(&b, false, t);
        }
        let later = t + Duration::from_secs(1);
        // The trial's caller gives up before the peer answers.
        drop(b.try_acquire(later).expect("trial"));
        let next = b
            .try_acquire(later)
            .expect("the next caller gets the trial");
        assert!(next.is_trial());
        next.record(true, later);
        assert!(!b.is_open(later));
        assert!(!b.try_acquire(later).expect("closed").is_trial());
    }

    #[test]
    fn a_stale_success_does_not_close_an_open_breaker() {
        let b = breaker();
        let t = Instant::now();
        let slow = b.try_acquire(t).expect("closed");
        for _ in 0..3 {
            call(&b, false, t);
        }
        slow.record(true, t);
        assert!(b.is_open(t), "the trial decides, not a call from before");
    }
}
