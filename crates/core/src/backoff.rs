//! Waiting before trying again: the one backoff every retry, restart,
//! reconnect and re-probe loop uses.
//!
//! The delay before the `n`-th retry (0-based) grows from `base`, doubling
//! each time, up to `max` (the *ceiling*), and is then spread by [`Jitter`]:
//! a uniform draw between two fractions of the ceiling, so that many
//! processes failing together (a fleet losing Redis, nodes losing a peer) do
//! not all come back in the same instant. The retry count is the caller's:
//! it starts at 0 and the caller resets it when things work again (a
//! connection made, a task that stayed up, a peer that answered).

use std::time::Duration;

/// The longest wait between two delivery attempts or source restarts.
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(30);

/// How a delay is drawn from its ceiling: uniformly in
/// `[low × ceiling, high × ceiling]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Jitter {
    low: f64,
    high: f64,
}

impl Jitter {
    /// Anywhere from nothing to the ceiling ("full jitter"): the widest
    /// spread, for retries that many callers make at once.
    pub const FULL: Jitter = Jitter {
        low: 0.0,
        high: 1.0,
    };
    /// Between half the ceiling and the ceiling: spread, yet never much
    /// sooner than planned (reconnecting to a server that went away).
    pub const HALF: Jitter = Jitter {
        low: 0.5,
        high: 1.0,
    };
    /// The ceiling plus up to a quarter more: never sooner than planned
    /// (re-probing a peer that failed).
    pub const QUARTER_MORE: Jitter = Jitter {
        low: 1.0,
        high: 1.25,
    };
    /// Exactly the ceiling.
    pub const NONE: Jitter = Jitter {
        low: 1.0,
        high: 1.0,
    };

    fn spread(self, ceiling: Duration) -> Duration {
        let fraction = self.low + (self.high - self.low) * fastrand::f64();
        ceiling.mul_f64(fraction)
    }
}

/// A backoff policy: doubling from `base`, capped at `max`, spread by `jitter`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// Ceiling of the first retry's delay.
    pub base: Duration,
    /// The largest ceiling; later retries wait (about) this long.
    pub max: Duration,
    /// How the delay is drawn below (or around) the ceiling.
    pub jitter: Jitter,
}

impl Backoff {
    /// Doubling from `base` up to `max`, spread by `jitter`.
    pub const fn new(base: Duration, max: Duration, jitter: Jitter) -> Self {
        Self { base, max, jitter }
    }

    /// Full jitter up to [`MAX_RETRY_DELAY`]: delivery retries and source
    /// restarts.
    pub const fn full_jitter(base: Duration) -> Self {
        Self::new(base, MAX_RETRY_DELAY, Jitter::FULL)
    }

    /// The ceiling before the `retry`-th retry (0-based): `base × 2^retry`,
    /// at most `max`.
    pub fn ceiling(&self, retry: u32) -> Duration {
        let factor = 1u32.checked_shl(retry.min(31)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.max)
    }

    /// The delay before the `retry`-th retry. A server's `retry_after`
    /// (`Retry-After`) wins when it asks for longer, up to `max`.
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        let jittered = self.jitter.spread(self.ceiling(retry));
        match retry_after {
            Some(ra) => ra.min(self.max).max(jittered),
            None => jittered,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_jitter_doubles_and_caps() {
        let b = Backoff::full_jitter(Duration::from_secs(1));
        assert_eq!(b.ceiling(0), Duration::from_secs(1));
        assert_eq!(b.ceiling(3), Duration::from_secs(8));
        assert_eq!(b.ceiling(10), MAX_RETRY_DELAY);
        assert_eq!(b.ceiling(u32::MAX), MAX_RETRY_DELAY);
        for r in 0..8 {
            assert!(b.delay(r, None) <= b.ceiling(r));
        }
        assert!(b.delay(0, Some(Duration::from_secs(5))) >= Duration::from_secs(5));
        assert_eq!(
            b.delay(0, Some(Duration::from_secs(600))),
            MAX_RETRY_DELAY,
            "Retry-After is capped too"
        );
    }

    /// The mesh's re-probe delay: at least the ceiling, at most a quarter more.
    #[test]
    fn quarter_more_doubles_and_caps() {
        let base = Duration::from_millis(100);
        let max = Duration::from_secs(1);
        let b = Backoff::new(base, max, Jitter::QUARTER_MORE);
        for _ in 0..100 {
            let b0 = b.delay(0, None);
            assert!(b0 >= base && b0 <= base.mul_f64(1.25));
            let b3 = b.delay(3, None);
            assert!(b3 >= Duration::from_millis(800) && b3 <= Duration::from_millis(1000));
            assert!(b.delay(30, None) <= max.mul_f64(1.25));
            assert!(b.delay(30, None) >= max);
        }
    }

    /// Redis reconnects: 100 ms doubling to 5 s, each between half and all
    /// of its ceiling.
    #[test]
    fn half_jitter_stays_in_the_upper_half() {
        let b = Backoff::new(
            Duration::from_millis(100),
            Duration::from_secs(5),
            Jitter::HALF,
        );
        let ceilings = [100, 200, 400, 800, 1600, 3200, 5000, 5000];
        for (retry, ms) in ceilings.into_iter().enumerate() {
            let ceiling = Duration::from_millis(ms);
            assert_eq!(b.ceiling(retry as u32), ceiling);
            for _ in 0..50 {
                let d = b.delay(retry as u32, None);
                assert!(d >= ceiling / 2 && d <= ceiling, "{retry}: {d:?}");
            }
        }
    }

    #[test]
    fn no_jitter_is_the_ceiling() {
        let b = Backoff::new(
            Duration::from_millis(200),
            Duration::from_secs(5),
            Jitter::NONE,
        );
        assert_eq!(b.delay(0, None), Duration::from_millis(200));
        assert_eq!(b.delay(2, None), Duration::from_millis(800));
        assert_eq!(b.delay(9, None), Duration::from_secs(5));
    }
}
