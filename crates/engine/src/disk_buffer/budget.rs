//! The bound on a disk buffer's size: bytes written and not yet acknowledged.
//!
//! Writers take bytes before appending and wait while the buffer is full —
//! backpressure that reaches the source, like the intake queue's bound in
//! events. The acknowledgement pointer gives bytes back as it advances. A
//! chunk larger than the whole bound enters an empty buffer rather than
//! waiting forever.

use std::sync::Mutex;
use tokio::sync::Notify;
use tokio::time::Instant;

pub(crate) struct Budget {
    max: u64,
    used: Mutex<u64>,
    freed: Notify,
}

impl Budget {
    /// A budget of `max` bytes, `used` of them already taken (records left
    /// unacknowledged by an earlier run).
    pub(crate) fn new(max: u64, used: u64) -> Self {
        Self {
            max,
            used: Mutex::new(used),
            freed: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, u64> {
        // The guarded value is a plain counter, valid even after a panic.
        self.used.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Take `n` bytes, waiting for room until `deadline` (forever if `None`).
    /// False if the deadline passed first.
    pub(crate) async fn acquire(&self, n: u64, deadline: Option<Instant>) -> bool {
        loop {
            // Register for wake-ups before looking, so a release between the
            // look and the wait is not missed.
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            {
                let mut used = self.lock();
                if *used == 0 || *used + n <= self.max {
                    *used += n;
                    return true;
                }
            }
            match deadline {
                None => freed.await,
                Some(d) => {
                    if tokio::time::timeout_at(d, freed).await.is_err() {
                        return false;
                    }
                }
            }
        }
    }

    /// Give back `n` bytes.
    pub(crate) fn release(&self, n: u64) {
        if n == 0 {
            return;
        }
        {
            let mut used = self.lock();
            *used = used.saturating_sub(n);
        }
        self.freed.notify_waiters();
    }

    /// Bytes taken now.
    pub(crate) fn used(&self) -> u64 {
        *self.lock()
    }

    /// The bound.
    pub(crate) fn max(&self) -> u64 {
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn a_full_budget_makes_writers_wait_until_bytes_are_released() {
        let b = Arc::new(Budget::new(100, 0));
        assert!(b.acquire(80, None).await);
        let soon = Some(Instant::now() + Duration::from_millis(50));
        assert!(!b.acquire(30, soon).await, "no room within the wait");
        let waiter = tokio::spawn({
            let b = b.clone();
            async move { b.acquire(30, None).await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        b.release(50);
        assert!(waiter.await.unwrap());
        assert_eq!(b.used(), 60);
    }

    #[tokio::test]
    async fn an_oversized_write_enters_an_empty_buffer() {
        let b = Budget::new(10, 0);
        assert!(b.acquire(25, None).await);
        assert_eq!(b.used(), 25);
    }
}
