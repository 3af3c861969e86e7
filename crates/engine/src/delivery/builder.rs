//! The one place where the delivery layers are put in order.

use super::breaker::{Breaker, BreakerLayer};
use super::concurrency::ConcurrencyLayer;
use super::config::DeliveryConfig;
use super::rate_limit::RateLimitLayer;
use super::retry::{RetryLayer, RetryPolicy};
use super::settle::Settle;
use super::sink_service::SinkService;
use super::stats::DeliveryStats;
use super::timeout::TimeoutLayer;
use std::convert::Infallible;
use std::sync::Arc;
use switchyard_core::backoff::Backoff;
use switchyard_core::{Event, Sink};
use tower::util::BoxCloneSyncService;
use tower::ServiceBuilder;

/// A sink wrapped in its delivery stack: takes a batch, answers once every
/// event of it is settled (delivered, dead-lettered or dropped). Never fails.
pub type DeliveryService = BoxCloneSyncService<Vec<Event>, (), Infallible>;

/// Compose the stack around `sink`, outermost first:
///
/// 1. rate limit — how fast batches may start;
/// 2. concurrency — how many are in flight (a slot is held through retries
///    and through waits at the breaker's gate);
/// 3. circuit breaker — a gate: while open, batches wait here, never fail;
/// 4. retry — backoff, `Retry-After`, partial failures, settling; reports
///    each attempt to the breaker and hands a batch back to the gate when
///    the breaker opens meanwhile;
/// 5. timeout — a deadline per attempt;
/// 6. the sink.
///
/// Every layer that waits (1–4) stops waiting at `settle`'s cutoff, and the
/// timeout ends an attempt under way; the retry layer then hands what is
/// left to [`Settle::abandoned`].
///
/// `stats` must be the one `settle` was built with.
pub fn build(
    sink: Arc<dyn Sink>,
    config: &DeliveryConfig,
    settle: Arc<Settle>,
    stats: Arc<DeliveryStats>,
) -> DeliveryService {
    let rate = RateLimitLayer::new(config.rate_limit, stats.clone());
    build_with_rate_limit(sink, config, settle, stats, rate)
}

/// [`build`] with a rate limit made by the caller (from
/// `config.rate_limit`), so that others can take from the same bucket.
pub fn build_with_rate_limit(
    sink: Arc<dyn Sink>,
    config: &DeliveryConfig,
    settle: Arc<Settle>,
    stats: Arc<DeliveryStats>,
    rate: RateLimitLayer,
) -> DeliveryService {
    let cutoff = settle.cutoff().clone();
    let breaker = config.circuit_breaker.enabled.then(|| {
        Arc::new(
            Breaker::new(config.circuit_breaker.clone(), settle.sink(), stats.clone())
                .with_cutoff(cutoff.clone()),
        )
    });
    let policy = RetryPolicy {
        max_retries: config.max_retries,
        backoff: Backoff::full_jitter(config.retry_backoff),
        max_elapsed: config.max_elapsed,
    };
    let stack = ServiceBuilder::new()
        .layer(rate.with_cutoff(cutoff.clone()))
        .layer(ConcurrencyLayer::with_cutoff(
            config.concurrency,
            &config.flow_control,
            stats.clone(),
            cutoff.clone(),
        ))
        .layer(BreakerLayer::new(breaker))
        .layer(RetryLayer::new(policy, settle, stats.clone()))
        .layer(TimeoutLayer::new(config.timeout, stats).with_cutoff(cutoff))
        .service(SinkService::new(sink));
    BoxCloneSyncService::new(stack)
}
