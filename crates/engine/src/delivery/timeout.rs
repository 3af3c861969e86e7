//! A deadline per attempt. It sits right above the sink, below the retry
//! layer, so a slow attempt becomes a transient failure that is retried,
//! and the time spent waiting for backoff is never counted against it.

use super::stats::DeliveryStats;
use super::{Batch, DeliveryError};
use futures_util::future::BoxFuture;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tower::{Layer, Service};

/// Adds [`Timeout`]; `None` lets attempts run as long as the sink's own
/// timeouts allow.
#[derive(Clone)]
pub struct TimeoutLayer {
    after: Option<Duration>,
    stats: Arc<DeliveryStats>,
}

impl TimeoutLayer {
    /// Attempts longer than `after` fail as [`DeliveryError::TimedOut`].
    pub fn new(after: Option<Duration>, stats: Arc<DeliveryStats>) -> Self {
        Self { after, stats }
    }
}

impl<S> Layer<S> for TimeoutLayer {
    type Service = Timeout<S>;
    fn layer(&self, inner: S) -> Timeout<S> {
        Timeout {
            inner,
            after: self.after,
            stats: self.stats.clone(),
        }
    }
}

/// The timeout service.
#[derive(Clone)]
pub struct Timeout<S> {
    inner: S,
    after: Option<Duration>,
    stats: Arc<DeliveryStats>,
}

impl<S> Service<Batch> for Timeout<S>
where
    S: Service<Batch, Response = (), Error = DeliveryError>,
    S::Future: Send + 'static,
{
    type Response = ();
    type Error = DeliveryError;
    type Future = BoxFuture<'static, Result<(), DeliveryError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, batch: Batch) -> Self::Future {
        let attempt = self.inner.call(batch);
        let Some(after) = self.after else {
            return Box::pin(attempt);
        };
        let stats = self.stats.clone();
        Box::pin(async move {
            match tokio::time::timeout(after, attempt).await {
                Ok(result) => result,
                Err(_) => {
                    DeliveryStats::add(&stats.timeouts, 1);
                    Err(DeliveryError::TimedOut(after))
                }
            }
        })
    }
}
