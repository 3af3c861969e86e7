//! How many batches are delivered at once: a fixed number (the seed's
//! `worker_count`), or an adaptive limit.
//!
//! # The adaptive limit (AIMD on latency)
//!
//! The limit starts at 1 and moves between 1 and `max_concurrency`, like TCP's
//! congestion window:
//!
//! - **Additive increase**: a batch delivered within `target_latency` while
//!   the limit was in full use adds `1 / limit`, so the limit grows by about
//!   one per round of `limit` batches. A limit that is not used is not raised:
//!   fast answers at low load say nothing about higher load.
//! - **Multiplicative decrease**: a batch slower than `target_latency`
//!   (retries included: a failing sink is a slow one) multiplies the limit by
//!   `1 - adjustment_factor`. Only one decrease per round trip: batches that
//!   started before the last decrease do not decrease it again, or one slow
//!   spell seen by many batches at once would collapse the limit to 1.
//!
//! The dispatch loop keeps at most `max_concurrency` batches in this layer;
//! those above the current limit wait here for a slot.

use super::config::{Concurrency, FlowControl};
use super::stats::DeliveryStats;
use futures_util::future::BoxFuture;
use std::convert::Infallible;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use switchyard_core::Event;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tower::{Layer, Service};

/// Adds [`ConcurrencyLimit`].
#[derive(Clone)]
pub struct ConcurrencyLayer {
    limit: Limit,
}

#[derive(Clone)]
enum Limit {
    Fixed(Arc<Semaphore>),
    Adaptive(Arc<Aimd>),
}

impl ConcurrencyLayer {
    /// A limit shared by every service this layer makes.
    pub fn new(kind: Concurrency, flow: &FlowControl, stats: Arc<DeliveryStats>) -> Self {
        let limit = match kind {
            Concurrency::Fixed(n) => {
                let n = n.clamp(1, Semaphore::MAX_PERMITS);
                stats.concurrency_limit.store(n as u64, Relaxed);
                Limit::Fixed(Arc::new(Semaphore::new(n)))
            }
            Concurrency::Adaptive => {
                Limit::Adaptive(Arc::new(Aimd::new(flow.clone(), stats.clone())))
            }
        };
        Self { limit }
    }
}

impl<S> Layer<S> for ConcurrencyLayer {
    type Service = ConcurrencyLimit<S>;
    fn layer(&self, inner: S) -> ConcurrencyLimit<S> {
        ConcurrencyLimit {
            inner,
            limit: self.limit.clone(),
        }
    }
}

/// The concurrency service. Always ready: a batch waits for its slot inside
/// its future, and the dispatch loop bounds how many such futures exist.
#[derive(Clone)]
pub struct ConcurrencyLimit<S> {
    inner: S,
    limit: Limit,
}

impl<S> Service<Vec<Event>> for ConcurrencyLimit<S>
where
    S: Service<Vec<Event>, Response = (), Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = ();
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<(), Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, batch: Vec<Event>) -> Self::Future {
        let mut inner = self.inner.clone();
        let limit = self.limit.clone();
        Box::pin(async move {
            match limit {
                Limit::Fixed(sem) => {
                    // The semaphore is never closed, so acquiring cannot fail.
                    let _permit: OwnedSemaphorePermit = sem
                        .acquire_owned()
                        .await
                        .expect("the semaphore is never closed");
                    inner.call(batch).await
                }
                Limit::Adaptive(aimd) => {
                    let slot = aimd.acquire().await;
                    let result = inner.call(batch).await;
                    aimd.release(slot);
                    result
                }
            }
        })
    }
}

/// The adaptive limit's state.
pub struct Aimd {
    flow: FlowControl,
    stats: Arc<DeliveryStats>,
    state: Mutex<AimdState>,
    freed: Notify,
}

struct AimdState {
    limit: f64,
    in_flight: usize,
    last_decrease: Instant,
}

/// A taken slot: when it was taken and whether the limit was in full use.
pub struct Slot {
    started: Instant,
    saturated: bool,
}

impl Aimd {
    fn new(flow: FlowControl, stats: Arc<DeliveryStats>) -> Self {
        stats.concurrency_limit.store(1, Relaxed);
        Self {
            flow,
            stats,
            state: Mutex::new(AimdState {
                limit: 1.0,
                in_flight: 0,
                last_decrease: Instant::now(),
            }),
            freed: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, AimdState> {
        // Plain arithmetic under the lock: a poisoned state is still sound.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn acquire(&self) -> Slot {
        loop {
            let freed = self.freed.notified();
            {
                let mut s = self.lock();
                if (s.in_flight as f64) < s.limit.floor() {
                    s.in_flight += 1;
                    self.stats.in_flight.store(s.in_flight as u64, Relaxed);
                    return Slot {
                        started: Instant::now(),
                        saturated: s.in_flight as f64 >= s.limit.floor(),
                    };
                }
            }
            freed.await;
        }
    }

    fn release(&self, slot: Slot) {
        let now = Instant::now();
        let latency = now - slot.started;
        let mut s = self.lock();
        s.in_flight -= 1;
        let max = self.flow.max_concurrency.max(1) as f64;
        if latency > self.flow.target_latency {
            if slot.started >= s.last_decrease {
                s.limit = (s.limit * (1.0 - self.flow.adjustment_factor)).max(1.0);
                s.last_decrease = now;
            }
        } else if slot.saturated {
            s.limit = (s.limit + 1.0 / s.limit).min(max);
        }
        self.stats.in_flight.store(s.in_flight as u64, Relaxed);
        self.stats
            .concurrency_limit
            .store(s.limit.floor() as u64, Relaxed);
        drop(s);
        self.freed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn aimd(max: usize) -> (Aimd, Arc<DeliveryStats>) {
        let stats = Arc::new(DeliveryStats::default());
        let flow = FlowControl {
            target_latency: Duration::from_millis(100),
            adjustment_factor: 0.25,
            max_concurrency: max,
        };
        (Aimd::new(flow, stats.clone()), stats)
    }

    #[tokio::test(start_paused = true)]
    async fn grows_while_fast_and_saturated_and_shrinks_once_per_slow_spell() {
        let (a, stats) = aimd(8);
        for _ in 0..20 {
            let slot = a.acquire().await;
            tokio::time::advance(Duration::from_millis(10)).await;
            a.release(slot);
        }
        // One batch at a time uses the limit in full only while it is 1.
        assert_eq!(stats.snapshot().concurrency_limit, 2);
        let slow_a = a.acquire().await;
        for _ in 0..20 {
            let s = a.acquire_now().expect("a slot below the limit");
            tokio::time::advance(Duration::from_millis(10)).await;
            a.release(s);
        }
        // 2 -> 2.5 -> 2.9 -> 3.2, then the limit is no longer in full use.
        assert_eq!(stats.snapshot().concurrency_limit, 3);
        let slow_b = a.acquire_now().expect("a third slot");
        tokio::time::advance(Duration::from_millis(500)).await;
        a.release(slow_a);
        a.release(slow_b); // started before the decrease: no second one
        assert_eq!(
            stats.snapshot().concurrency_limit,
            2,
            "3.2 * 0.75 = 2.4, once"
        );
    }

    impl Aimd {
        fn acquire_now(&self) -> Option<Slot> {
            let mut s = self.lock();
            ((s.in_flight as f64) < s.limit.floor()).then(|| {
                s.in_flight += 1;
                Slot {
                    started: Instant::now(),
                    saturated: s.in_flight as f64 >= s.limit.floor(),
                }
            })
        }
    }
}
