//! Retry delays: exponential from `base` (doubling each attempt), capped, with
//! full jitter — a uniform draw in `[0, ceiling]` — so that many dispatchers
//! failing together do not retry together. A server's `Retry-After` wins when
//! it asks for longer.

use std::time::Duration;

/// The longest wait between two attempts.
pub const MAX_DELAY: Duration = Duration::from_secs(30);

/// Backoff policy.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// Ceiling of the first retry's delay.
    pub base: Duration,
}

impl Backoff {
    /// The ceiling before the `retry`-th retry (0-based).
    pub fn ceiling(&self, retry: u32) -> Duration {
        let factor = 1u32.checked_shl(retry.min(31)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(MAX_DELAY)
    }

    /// The delay before the `retry`-th retry.
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        let ceiling = self.ceiling(retry);
        let jittered = ceiling.mul_f64(fastrand::f64());
        match retry_after {
            Some(ra) => ra.min(MAX_DELAY).max(jittered),
            None => jittered,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_and_caps() {
        let b = Backoff {
            base: Duration::from_secs(1),
        };
        assert_eq!(b.ceiling(0), Duration::from_secs(1));
        assert_eq!(b.ceiling(3), Duration::from_secs(8));
        assert_eq!(b.ceiling(10), MAX_DELAY);
        assert_eq!(b.ceiling(u32::MAX), MAX_DELAY);
        for r in 0..8 {
            assert!(b.delay(r, None) <= b.ceiling(r));
        }
        assert!(b.delay(0, Some(Duration::from_secs(5))) >= Duration::from_secs(5));
    }
}
