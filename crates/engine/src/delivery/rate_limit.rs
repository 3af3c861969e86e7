//! A rate limit in events or requests per second, with governor's token
//! bucket (GCRA). The bucket holds one second's worth, so a quiet sink may
//! take a short burst. With `events`, a batch takes one token per event; a
//! batch larger than the whole bucket waits for a full bucket, so it is
//! neither refused nor allowed to overdraw.
//!
//! The tokens are taken when the batch is handed in; a batch that finds them
//! passes straight to the next layer (its future is the next layer's, with
//! nothing added), and only one that must wait boxes its future.
//!
//! Clones of a layer share its bucket, and [`RateLimitLayer::admit`] takes
//! from it too: the dead-letter queue's re-sends use it, so replayed batches
//! count against the same limit as new ones instead of bypassing it.
//!
//! Batches that must wait are served first come, first served: a waiter
//! queues behind those already waiting, and a newcomer takes tokens straight
//! away only while nobody waits. Without the queue, every waiter sleeps
//! until its own tokens would be there, so a small batch overtakes a large
//! one indefinitely, and a dead-letter retry loop that fails and comes back
//! every few milliseconds can take every token a waiting new batch needed.
//!
//! At the pipeline's shutdown deadline ([`Cutoff`]) a waiting batch leaves
//! the line and goes on: the retry layer below abandons it.

use super::config::{RateLimit, RateUnit};
use super::stats::DeliveryStats;
use crate::shutdown::Cutoff;
use futures_util::future::{BoxFuture, Either, FutureExt};
use governor::{DefaultDirectRateLimiter, Quota};
use std::convert::Infallible;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use switchyard_core::Event;
use tower::{Layer, Service};

/// The token bucket and its queue of waiters.
struct Bucket {
    limiter: DefaultDirectRateLimiter,
    unit: RateUnit,
    burst: NonZeroU32,
    /// Held by the one waiter at the head of the line; tokio's mutex hands
    /// it over in the order it was asked for.
    line: tokio::sync::Mutex<()>,
    /// Waiters in the line, the head included.
    waiting: AtomicUsize,
}

impl Bucket {
    /// Take the tokens for `events` now, if nobody is waiting and the bucket
    /// has them.
    fn try_take(&self, events: usize) -> bool {
        self.waiting.load(Ordering::Acquire) == 0
            && matches!(
                self.limiter.check_n(tokens(self.unit, self.burst, events)),
                Ok(Ok(()))
            )
    }

    /// Queue behind the waiters before this one, then wait for the tokens
    /// for `events`. Dropping the future leaves the line.
    async fn wait(&self, events: usize) {
        let _in_line = InLine::join(&self.waiting);
        let _head = self.line.lock().await;
        // `tokens` never exceeds the bucket, so this cannot fail for lack
        // of capacity.
        let _ = self
            .limiter
            .until_n_ready(tokens(self.unit, self.burst, events))
            .await;
    }
}

/// Counts a waiter in the line until dropped, cancelled or not.
struct InLine<'a>(&'a AtomicUsize);

impl<'a> InLine<'a> {
    fn join(waiting: &'a AtomicUsize) -> Self {
        waiting.fetch_add(1, Ordering::AcqRel);
        Self(waiting)
    }
}

impl Drop for InLine<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Adds [`RateLimited`]; `None` adds nothing but a pass-through.
#[derive(Clone)]
pub struct RateLimitLayer {
    bucket: Option<Arc<Bucket>>,
    stats: Arc<DeliveryStats>,
    cutoff: Cutoff,
}

impl RateLimitLayer {
    /// One bucket shared by every service this layer makes.
    pub fn new(limit: Option<RateLimit>, stats: Arc<DeliveryStats>) -> Self {
        let bucket = limit.and_then(|l| {
            let rate = NonZeroU32::new(l.per_second)?;
            Some(Arc::new(Bucket {
                limiter: DefaultDirectRateLimiter::direct(Quota::per_second(rate)),
                unit: l.unit,
                burst: rate,
                line: tokio::sync::Mutex::new(()),
                waiting: AtomicUsize::new(0),
            }))
        });
        Self {
            bucket,
            stats,
            cutoff: Cutoff::new(),
        }
    }

    /// The same bucket, for batches that stop waiting at `cutoff`.
    pub fn with_cutoff(&self, cutoff: Cutoff) -> Self {
        Self {
            cutoff,
            ..self.clone()
        }
    }

    /// Wait until a batch of `events` may start: the same bucket and the
    /// same rules as the batches going through the stack. Returns at once
    /// without a limit.
    pub async fn admit(&self, events: usize) {
        let Some(bucket) = &self.bucket else {
            return;
        };
        if bucket.try_take(events) {
            return;
        }
        DeliveryStats::add(&self.stats.rate_limited_waits, 1);
        bucket.wait(events).await;
    }
}

/// Tokens a batch of `events` takes: one per request, or one per event but
/// never more than the bucket holds.
fn tokens(unit: RateUnit, burst: NonZeroU32, events: usize) -> NonZeroU32 {
    match unit {
        RateUnit::Requests => NonZeroU32::MIN,
        RateUnit::Events => {
            let n = u32::try_from(events).unwrap_or(u32::MAX).min(burst.get());
            NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
        }
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimited<S>;
    fn layer(&self, inner: S) -> RateLimited<S> {
        RateLimited {
            inner,
            bucket: self.bucket.clone(),
            stats: self.stats.clone(),
            cutoff: self.cutoff.clone(),
        }
    }
}

/// The rate-limit service.
#[derive(Clone)]
pub struct RateLimited<S> {
    inner: S,
    bucket: Option<Arc<Bucket>>,
    stats: Arc<DeliveryStats>,
    cutoff: Cutoff,
}

impl<S> Service<Vec<Event>> for RateLimited<S>
where
    S: Service<Vec<Event>, Response = (), Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = ();
    type Error = Infallible;
    type Future = Either<S::Future, BoxFuture<'static, Result<(), Infallible>>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, batch: Vec<Event>) -> Self::Future {
        let Some(bucket) = &self.bucket else {
            return Either::Left(self.inner.call(batch));
        };
        if bucket.try_take(batch.len()) {
            return Either::Left(self.inner.call(batch));
        }
        DeliveryStats::add(&self.stats.rate_limited_waits, 1);
        let (bucket, mut inner) = (bucket.clone(), self.inner.clone());
        let cutoff = self.cutoff.clone();
        Either::Right(
            async move {
                cutoff.unless(bucket.wait(batch.len())).await;
                inner.call(batch).await
            }
            .boxed(),
        )
    }
}
