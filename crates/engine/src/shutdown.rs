//! The deadline of a stop.
//!
//! A stopping pipeline drains: sources stop, the sink loops deliver what is
//! left. With a sink that is down, draining never ends on its own — retries
//! back off for up to 30 s each, an open breaker holds batches at its gate —
//! so the binary triggers a [`Cutoff`] once its `shutdown_timeout` has
//! passed. From then on no layer of the delivery stack waits any more (rate
//! limit, concurrency slot, breaker gate and backoff all let go, and an
//! attempt under way is abandoned), and each sink loop hands every event it
//! still holds to [`Settle::abandoned`](crate::delivery::Settle::abandoned):
//! left on the sink's disk buffer for the next start, else dead-lettered
//! with the reason `shutdown`, else counted as lost.
//!
//! It is one flag and one `Notify`: checking it is one atomic load, and
//! waiting for it takes no timer.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::Notify;

/// A shared "stop delivering now" signal; clones see the same flag.
#[derive(Clone, Default)]
pub struct Cutoff(Arc<Inner>);

#[derive(Default)]
struct Inner {
    reached: AtomicBool,
    notify: Notify,
}

impl std::fmt::Debug for Cutoff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Cutoff").field(&self.is_reached()).finish()
    }
}

impl Cutoff {
    /// A cutoff not reached yet (and never, unless someone triggers it).
    pub fn new() -> Self {
        Self::default()
    }

    /// Reach it: every waiter wakes. Later calls do nothing.
    pub fn trigger(&self) {
        if !self.0.reached.swap(true, Ordering::AcqRel) {
            self.0.notify.notify_waiters();
        }
    }

    /// Whether it has been reached.
    pub fn is_reached(&self) -> bool {
        self.0.reached.load(Ordering::Acquire)
    }

    /// Resolves once it is reached.
    pub async fn reached(&self) {
        loop {
            // Made before the check: `notify_waiters` reaches futures that
            // exist when it runs, polled or not, so a trigger in between is
            // not missed.
            let notified = self.0.notify.notified();
            if self.is_reached() {
                return;
            }
            notified.await;
        }
    }

    /// `wait`'s output, or `None` when the cutoff comes first (then `wait`
    /// is dropped). For the waits of the delivery stack, which all give up
    /// at the cutoff.
    pub async fn unless<F: Future>(&self, wait: F) -> Option<F::Output> {
        if self.is_reached() {
            return None;
        }
        tokio::select! {
            out = wait => Some(out),
            _ = self.reached() => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn a_wait_gives_up_when_the_cutoff_is_triggered() {
        let cutoff = Cutoff::new();
        let c = cutoff.clone();
        let waiting = tokio::spawn(async move {
            c.unless(tokio::time::sleep(Duration::from_secs(3600)))
                .await
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!waiting.is_finished());
        cutoff.trigger();
        assert_eq!(waiting.await.unwrap(), None);
        assert!(cutoff.is_reached());
        assert_eq!(cutoff.unless(async { 1 }).await, None, "already reached");
        cutoff.reached().await;
    }

    #[tokio::test]
    async fn a_wait_that_ends_first_keeps_its_output() {
        let cutoff = Cutoff::new();
        assert_eq!(cutoff.unless(async { 7 }).await, Some(7));
    }
}
