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

use super::config::{RateLimit, RateUnit};
use super::stats::DeliveryStats;
use futures_util::future::{BoxFuture, Either, FutureExt};
use governor::{DefaultDirectRateLimiter, Quota};
use std::convert::Infallible;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::task::{Context, Poll};
use switchyard_core::Event;
use tower::{Layer, Service};

/// Adds [`RateLimited`]; `None` adds nothing but a pass-through.
#[derive(Clone)]
pub struct RateLimitLayer {
    limiter: Option<(Arc<DefaultDirectRateLimiter>, RateUnit, NonZeroU32)>,
    stats: Arc<DeliveryStats>,
}

impl RateLimitLayer {
    /// One bucket shared by every service this layer makes.
    pub fn new(limit: Option<RateLimit>, stats: Arc<DeliveryStats>) -> Self {
        let limiter = limit.and_then(|l| {
            let rate = NonZeroU32::new(l.per_second)?;
            Some((
                Arc::new(DefaultDirectRateLimiter::direct(Quota::per_second(rate))),
                l.unit,
                rate,
            ))
        });
        Self { limiter, stats }
    }

    /// Wait until a batch of `events` may start: the same bucket and the
    /// same rules as the batches going through the stack. Returns at once
    /// without a limit.
    pub async fn admit(&self, events: usize) {
        let Some((limiter, unit, burst)) = &self.limiter else {
            return;
        };
        let tokens = tokens(*unit, *burst, events);
        if matches!(limiter.check_n(tokens), Ok(Ok(()))) {
            return;
        }
        DeliveryStats::add(&self.stats.rate_limited_waits, 1);
        let _ = limiter.until_n_ready(tokens).await;
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
            limiter: self.limiter.clone(),
            stats: self.stats.clone(),
        }
    }
}

/// The rate-limit service.
#[derive(Clone)]
pub struct RateLimited<S> {
    inner: S,
    limiter: Option<(Arc<DefaultDirectRateLimiter>, RateUnit, NonZeroU32)>,
    stats: Arc<DeliveryStats>,
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
        let Some((limiter, unit, burst)) = &self.limiter else {
            return Either::Left(self.inner.call(batch));
        };
        let tokens = tokens(*unit, *burst, batch.len());
        // `tokens` never exceeds the bucket, so neither call can fail for
        // lack of capacity.
        if matches!(limiter.check_n(tokens), Ok(Ok(()))) {
            return Either::Left(self.inner.call(batch));
        }
        DeliveryStats::add(&self.stats.rate_limited_waits, 1);
        let (limiter, mut inner) = (limiter.clone(), self.inner.clone());
        Either::Right(
            async move {
                let _ = limiter.until_n_ready(tokens).await;
                inner.call(batch).await
            }
            .boxed(),
        )
    }
}
