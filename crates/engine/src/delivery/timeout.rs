//! A deadline per attempt. It sits right above the sink, below the retry
//! layer, so a slow attempt becomes a transient failure that is retried,
//! and the time spent waiting for backoff is never counted against it.

use super::stats::DeliveryStats;
use super::{Batch, DeliveryError};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::Sleep;
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
    S::Future: Unpin,
{
    type Response = ();
    type Error = DeliveryError;
    type Future = Deadline<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, batch: Batch) -> Self::Future {
        Deadline {
            attempt: self.inner.call(batch),
            after: self.after,
            timer: None,
            stats: self.stats.clone(),
        }
    }
}

/// An attempt with its deadline. The timer is made only when the attempt
/// does not finish at its first poll: a sink that answers at once (a buffer,
/// a blackhole) costs no timer registration. The first poll follows the call
/// immediately, so the deadline still runs from the attempt's start.
pub struct Deadline<F> {
    attempt: F,
    after: Option<Duration>,
    timer: Option<Pin<Box<Sleep>>>,
    stats: Arc<DeliveryStats>,
}

impl<F> Future for Deadline<F>
where
    F: Future<Output = Result<(), DeliveryError>> + Unpin,
{
    type Output = Result<(), DeliveryError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Poll::Ready(result) = Pin::new(&mut self.attempt).poll(cx) {
            return Poll::Ready(result);
        }
        let Some(after) = self.after else {
            return Poll::Pending;
        };
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(after)));
        std::task::ready!(timer.as_mut().poll(cx));
        DeliveryStats::add(&self.stats.timeouts, 1);
        Poll::Ready(Err(DeliveryError::TimedOut(after)))
    }
}
