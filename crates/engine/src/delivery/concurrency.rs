//! How many batches are delivered at once: a fixed number (the seed's
//! `worker_count`), or an adaptive limit.
//!
//! # The adaptive limit (AIMD on latency)
//!
//! The limit starts at `initial_concurrency` (default: `min_concurrency`,
//! default 1) and moves between `min_concurrency` and `max_concurrency`, like
//! TCP's congestion window:
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
//! - **Idle reset**: with `idle_timeout`, a limit that saw no batch in flight
//!   for that long falls back to `min_concurrency` at the next batch: what
//!   was learnt of the sink's capacity is stale (the seed's worker pool lets
//!   idle workers go the same way).
//!
//! The dispatch loop keeps at most `max_concurrency` batches in this layer;
//! those above the current limit wait here for a slot.
//!
//! # Mechanism
//!
//! Both kinds are one counter of batches in flight against a limit (a fixed
//! one never moves), kept in atomics: taking and freeing a slot is a
//! compare-and-swap and a subtraction, with no lock, and a batch that finds a
//! free slot passes without allocating. Only a batch that must wait boxes its
//! future and parks on a [`Notify`]; a freed slot wakes the waiters only when
//! there are some. The adaptive limit adjusts itself with compare-and-swap
//! loops on the limit and on the time of the last decrease.
//!
//! At the pipeline's shutdown deadline ([`Cutoff`]) a waiting batch stops
//! waiting and goes on without a slot: the retry layer below abandons it.

use super::config::{Concurrency, FlowControl};
use super::stats::DeliveryStats;
use crate::shutdown::Cutoff;
use futures_util::future::{BoxFuture, FutureExt};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{
    AtomicU64, AtomicUsize,
    Ordering::{Relaxed, SeqCst},
};
use std::sync::Arc;
use std::task::{Context, Poll};
use switchyard_core::Event;
use tokio::sync::Notify;
use tokio::time::Instant;
use tower::{Layer, Service};

/// Adds [`ConcurrencyLimit`].
#[derive(Clone)]
pub struct ConcurrencyLayer {
    limiter: Arc<Limiter>,
}

impl ConcurrencyLayer {
    /// A limit shared by every service this layer makes.
    pub fn new(kind: Concurrency, flow: &FlowControl, stats: Arc<DeliveryStats>) -> Self {
        Self::with_cutoff(kind, flow, stats, Cutoff::new())
    }

    /// [`ConcurrencyLayer::new`] whose batches stop waiting for a slot at
    /// `cutoff`.
    pub fn with_cutoff(
        kind: Concurrency,
        flow: &FlowControl,
        stats: Arc<DeliveryStats>,
        cutoff: Cutoff,
    ) -> Self {
        let mut limiter = Limiter::new(kind, flow.clone(), stats);
        limiter.cutoff = cutoff;
        Self {
            limiter: Arc::new(limiter),
        }
    }
}

impl<S> Layer<S> for ConcurrencyLayer {
    type Service = ConcurrencyLimit<S>;
    fn layer(&self, inner: S) -> ConcurrencyLimit<S> {
        ConcurrencyLimit {
            inner,
            limiter: self.limiter.clone(),
        }
    }
}

/// The concurrency service. Always ready: a batch waits for its slot inside
/// its future, and the dispatch loop bounds how many such futures exist. The
/// slot is taken at the future's first poll, not in `call`, so a future the
/// caller has not started yet holds none.
#[derive(Clone)]
pub struct ConcurrencyLimit<S> {
    inner: S,
    limiter: Arc<Limiter>,
}

impl<S> Service<Vec<Event>> for ConcurrencyLimit<S>
where
    S: Service<Vec<Event>, Response = (), Error = Infallible> + Clone + Send + Unpin + 'static,
    S::Future: Send + Unpin + 'static,
{
    type Response = ();
    type Error = Infallible;
    type Future = LimitFuture<S>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, batch: Vec<Event>) -> Self::Future {
        LimitFuture::Start {
            inner: self.inner.clone(),
            limiter: self.limiter.clone(),
            batch,
        }
    }
}

/// A batch at the limit. One that finds a free slot at its first poll holds
/// it without allocating; one that must wait continues as a boxed future.
pub enum LimitFuture<S: Service<Vec<Event>>> {
    /// Not polled yet.
    Start {
        /// The next layer.
        inner: S,
        /// The shared limit.
        limiter: Arc<Limiter>,
        /// The batch.
        batch: Vec<Event>,
    },
    /// Holding a slot, freed the moment the batch is done (or on drop).
    Held {
        /// The rest of the stack.
        call: S::Future,
        /// The slot.
        slot: Option<Slot>,
    },
    /// Waiting for a slot.
    Waiting(BoxFuture<'static, Result<(), Infallible>>),
    /// Between two states (never seen by a poll).
    Moving,
}

impl<S> Future for LimitFuture<S>
where
    S: Service<Vec<Event>, Response = (), Error = Infallible> + Send + Unpin + 'static,
    S::Future: Send + Unpin + 'static,
{
    type Output = Result<(), Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        loop {
            match this {
                LimitFuture::Start { .. } => {
                    let LimitFuture::Start {
                        mut inner,
                        limiter,
                        batch,
                    } = std::mem::replace(this, LimitFuture::Moving)
                    else {
                        unreachable!("matched just above");
                    };
                    *this = match Limiter::try_acquire(&limiter) {
                        Some(slot) => LimitFuture::Held {
                            call: inner.call(batch),
                            slot: Some(slot),
                        },
                        None => LimitFuture::Waiting(
                            async move {
                                // `None` at the cutoff: on without a slot.
                                let slot = limiter.cutoff.unless(Limiter::acquire(&limiter)).await;
                                let result = inner.call(batch).await;
                                drop(slot);
                                result
                            }
                            .boxed(),
                        ),
                    };
                }
                LimitFuture::Held { call, slot } => {
                    let out = std::task::ready!(Pin::new(call).poll(cx));
                    *slot = None;
                    return Poll::Ready(out);
                }
                LimitFuture::Waiting(wait) => return wait.as_mut().poll(cx),
                LimitFuture::Moving => unreachable!("a limit future is polled between states"),
            }
        }
    }
}

/// Batches in flight against a limit.
pub struct Limiter {
    /// The limit, as `f64` bits (the adaptive limit moves by fractions).
    limit: AtomicU64,
    in_flight: AtomicUsize,
    /// Batches parked on `freed`: a freed slot notifies only when non-zero.
    waiting: AtomicUsize,
    freed: Notify,
    aimd: Option<Aimd>,
    stats: Arc<DeliveryStats>,
    cutoff: Cutoff,
}

/// What the adaptive limit adds.
struct Aimd {
    flow: FlowControl,
    /// Times below are nanoseconds since this instant.
    epoch: Instant,
    last_decrease: AtomicU64,
    /// When the last batch ended (for the idle reset).
    last_release: AtomicU64,
}

impl Aimd {
    fn nanos(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.epoch).as_nanos() as u64
    }
}

/// A taken slot, freed on drop: when it was taken (adaptive only) and
/// whether the limit was then in full use.
pub struct Slot {
    limiter: Arc<Limiter>,
    started: Option<Instant>,
    saturated: bool,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.limiter.release(self.started, self.saturated);
    }
}

impl Limiter {
    fn new(kind: Concurrency, flow: FlowControl, stats: Arc<DeliveryStats>) -> Self {
        let (limit, aimd) = match kind {
            Concurrency::Fixed(n) => (n.max(1) as f64, None),
            Concurrency::Adaptive => {
                let (min, max) = flow_bounds(&flow);
                let start = flow.initial_concurrency.unwrap_or(min).clamp(min, max);
                let aimd = Aimd {
                    flow,
                    epoch: Instant::now(),
                    last_decrease: AtomicU64::new(0),
                    last_release: AtomicU64::new(0),
                };
                (start as f64, Some(aimd))
            }
        };
        stats.concurrency_limit.store(limit as u64, Relaxed);
        Self {
            limit: AtomicU64::new(limit.to_bits()),
            in_flight: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
            freed: Notify::new(),
            aimd,
            stats,
            cutoff: Cutoff::new(),
        }
    }

    fn limit(&self) -> f64 {
        f64::from_bits(self.limit.load(Relaxed))
    }

    /// A slot if one is free now.
    fn try_acquire(this: &Arc<Self>) -> Option<Slot> {
        if let Some(aimd) = &this.aimd {
            this.reset_when_idle(aimd);
        }
        let limit = this.limit().floor() as usize;
        let mut current = this.in_flight.load(SeqCst);
        loop {
            if current >= limit {
                return None;
            }
            match this
                .in_flight
                .compare_exchange_weak(current, current + 1, SeqCst, SeqCst)
            {
                Ok(_) => break,
                Err(now) => current = now,
            }
        }
        this.stats.in_flight.store(current as u64 + 1, Relaxed);
        Some(Slot {
            limiter: this.clone(),
            started: this.aimd.as_ref().map(|_| Instant::now()),
            saturated: current + 1 >= limit,
        })
    }

    /// Wait for a slot.
    async fn acquire(this: &Arc<Self>) -> Slot {
        loop {
            if let Some(slot) = Self::try_acquire(this) {
                return slot;
            }
            // Announce the wait, then check again: a release either sees
            // `waiting` (and notifies this future, created before) or freed
            // its slot before the check below (which then takes it).
            let freed = this.freed.notified();
            this.waiting.fetch_add(1, SeqCst);
            let slot = Self::try_acquire(this);
            if slot.is_none() {
                freed.await;
            }
            this.waiting.fetch_sub(1, SeqCst);
            if let Some(slot) = slot {
                return slot;
            }
        }
    }

    fn release(&self, started: Option<Instant>, saturated: bool) {
        if let (Some(aimd), Some(started)) = (&self.aimd, started) {
            self.adjust(aimd, started, saturated);
            aimd.last_release.store(aimd.nanos(Instant::now()), Relaxed);
        }
        let left = self.in_flight.fetch_sub(1, SeqCst) - 1;
        self.stats.in_flight.store(left as u64, Relaxed);
        if self.waiting.load(SeqCst) > 0 {
            self.freed.notify_waiters();
        }
    }

    /// The idle reset: see the module's documentation.
    fn reset_when_idle(&self, aimd: &Aimd) {
        let Some(idle) = aimd.flow.idle_timeout else {
            return;
        };
        let since = aimd
            .nanos(Instant::now())
            .saturating_sub(aimd.last_release.load(Relaxed));
        if self.in_flight.load(SeqCst) == 0 && since > idle.as_nanos() as u64 {
            let min = flow_bounds(&aimd.flow).0 as f64;
            if self.limit() > min {
                self.limit.store(min.to_bits(), Relaxed);
                self.stats.concurrency_limit.store(min as u64, Relaxed);
            }
        }
    }

    /// AIMD: see the module's documentation.
    fn adjust(&self, aimd: &Aimd, started: Instant, saturated: bool) {
        let now = Instant::now();
        let nanos = |t: Instant| aimd.nanos(t);
        let (min, max) = flow_bounds(&aimd.flow);
        let (min, max) = (min as f64, max as f64);
        let update = |f: &dyn Fn(f64) -> f64| {
            let _ = self.limit.fetch_update(Relaxed, Relaxed, |bits| {
                Some(f(f64::from_bits(bits)).to_bits())
            });
        };
        if now - started > aimd.flow.target_latency {
            // One decrease per round trip: only a batch that started after
            // the last decrease may claim the next one.
            let claimed = aimd
                .last_decrease
                .fetch_update(Relaxed, Relaxed, |last| {
                    (nanos(started) >= last).then_some(nanos(now))
                })
                .is_ok();
            if claimed {
                let factor = 1.0 - aimd.flow.adjustment_factor;
                update(&|l| (l * factor).max(min));
            }
        } else if saturated {
            update(&|l| (l + 1.0 / l).min(max));
        } else {
            return;
        }
        self.stats
            .concurrency_limit
            .store(self.limit().floor() as u64, Relaxed);
    }
}

/// The adaptive limit's floor and ceiling, each at least 1 (a floor above
/// the ceiling is refused by validation; here the ceiling wins).
fn flow_bounds(flow: &FlowControl) -> (usize, usize) {
    let max = flow.max_concurrency.max(1);
    (flow.min_concurrency.clamp(1, max), max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn adaptive(max: usize) -> (Arc<Limiter>, Arc<DeliveryStats>) {
        let stats = Arc::new(DeliveryStats::default());
        let flow = FlowControl {
            target_latency: Duration::from_millis(100),
            adjustment_factor: 0.25,
            max_concurrency: max,
            ..FlowControl::default()
        };
        let limiter = Limiter::new(Concurrency::Adaptive, flow, stats.clone());
        (Arc::new(limiter), stats)
    }

    #[tokio::test(start_paused = true)]
    async fn grows_while_fast_and_saturated_and_shrinks_once_per_slow_spell() {
        let (a, stats) = adaptive(8);
        for _ in 0..20 {
            let slot = Limiter::acquire(&a).await;
            tokio::time::advance(Duration::from_millis(10)).await;
            drop(slot);
        }
        // One batch at a time uses the limit in full only while it is 1.
        assert_eq!(stats.snapshot().concurrency_limit, 2);
        let slow_a = Limiter::acquire(&a).await;
        for _ in 0..20 {
            let s = Limiter::try_acquire(&a).expect("a slot below the limit");
            tokio::time::advance(Duration::from_millis(10)).await;
            drop(s);
        }
        // 2 -> 2.5 -> 2.9 -> 3.2, then the limit is no longer in full use.
        assert_eq!(stats.snapshot().concurrency_limit, 3);
        let slow_b = Limiter::try_acquire(&a).expect("a third slot");
        tokio::time::advance(Duration::from_millis(500)).await;
        drop(slow_a);
        drop(slow_b); // started before the decrease: no second one
        assert_eq!(
            stats.snapshot().concurrency_limit,
            2,
            "3.2 * 0.75 = 2.4, once"
        );
    }

    /// The seed's worker pool: `worker_count` is where the limit starts,
    /// `min_workers` its floor, and an idle spell of `idle_timeout` brings it
    /// back to the floor.
    #[tokio::test(start_paused = true)]
    async fn starts_at_its_initial_value_never_drops_below_the_floor_and_resets_when_idle() {
        let stats = Arc::new(DeliveryStats::default());
        let flow = FlowControl {
            target_latency: Duration::from_millis(100),
            adjustment_factor: 0.5,
            max_concurrency: 10,
            min_concurrency: 2,
            initial_concurrency: Some(4),
            idle_timeout: Some(Duration::from_secs(60)),
        };
        let a = Arc::new(Limiter::new(Concurrency::Adaptive, flow, stats.clone()));
        assert_eq!(stats.snapshot().concurrency_limit, 4);
        let slots: Vec<Slot> = (0..4)
            .map(|_| Limiter::try_acquire(&a).expect("four slots"))
            .collect();
        assert!(Limiter::try_acquire(&a).is_none(), "the limit starts at 4");
        tokio::time::advance(Duration::from_millis(500)).await;
        drop(slots); // slow: 4 * 0.5 = 2, once
        assert_eq!(stats.snapshot().concurrency_limit, 2);
        for _ in 0..3 {
            let slot = Limiter::try_acquire(&a).expect("a slot");
            tokio::time::advance(Duration::from_millis(500)).await;
            drop(slot);
        }
        assert_eq!(
            stats.snapshot().concurrency_limit,
            2,
            "never below the floor"
        );
        // Grow above the floor with fast, saturated batches...
        for _ in 0..6 {
            let x = Limiter::try_acquire(&a).expect("slot");
            let y = Limiter::try_acquire(&a).expect("slot");
            tokio::time::advance(Duration::from_millis(10)).await;
            drop((x, y));
        }
        assert!(
            stats.snapshot().concurrency_limit >= 3,
            "{:?}",
            stats.snapshot()
        );
        // ...then stay idle past `idle_timeout`: back to the floor.
        tokio::time::advance(Duration::from_secs(61)).await;
        drop(Limiter::try_acquire(&a).expect("a slot"));
        assert_eq!(stats.snapshot().concurrency_limit, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_over_the_fixed_limit_waits_for_a_freed_slot() {
        let stats = Arc::new(DeliveryStats::default());
        let limiter = Arc::new(Limiter::new(
            Concurrency::Fixed(2),
            FlowControl::default(),
            stats.clone(),
        ));
        let a = Limiter::try_acquire(&limiter).expect("first slot");
        let _b = Limiter::try_acquire(&limiter).expect("second slot");
        assert!(Limiter::try_acquire(&limiter).is_none(), "the limit is 2");
        assert_eq!(stats.snapshot().in_flight, 2);
        let waiter = tokio::spawn({
            let limiter = limiter.clone();
            async move { Limiter::acquire(&limiter).await.saturated }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(!waiter.is_finished(), "no slot is free yet");
        drop(a);
        assert!(waiter.await.unwrap(), "it took the last free slot");
        assert_eq!(
            stats.snapshot().in_flight,
            1,
            "the waiter's slot was dropped with its task"
        );
    }
}
