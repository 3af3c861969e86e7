//! A deadline per attempt. It sits right above the sink, below the retry
//! layer, so a slow attempt becomes a transient failure that is retried,
//! and the time spent waiting for backoff is never counted against it.
//!
//! It also ends an attempt under way at the pipeline's shutdown deadline
//! ([`Cutoff`]) with [`DeliveryError::CutOff`], so a sink that hangs cannot
//! hold a stop beyond it; the retry layer then abandons the batch.

use super::stats::DeliveryStats;
use super::{Batch, DeliveryError};
use crate::shutdown::Cutoff;
use futures_util::future::{BoxFuture, FutureExt};
use std::future::Future;
use std::pin::Pin;
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
    cutoff: Cutoff,
}

impl TimeoutLayer {
    /// Attempts longer than `after` fail as [`DeliveryError::TimedOut`].
    pub fn new(after: Option<Duration>, stats: Arc<DeliveryStats>) -> Self {
        Self {
            after,
            stats,
            cutoff: Cutoff::new(),
        }
    }

    /// Attempts still running at `cutoff` fail as [`DeliveryError::CutOff`].
    pub fn with_cutoff(mut self, cutoff: Cutoff) -> Self {
        self.cutoff = cutoff;
        self
    }
}

impl<S> Layer<S> for TimeoutLayer {
    type Service = Timeout<S>;
    fn layer(&self, inner: S) -> Timeout<S> {
        Timeout {
            inner,
            after: self.after,
            stats: self.stats.clone(),
            cutoff: self.cutoff.clone(),
        }
    }
}

/// The timeout service.
#[derive(Clone)]
pub struct Timeout<S> {
    inner: S,
    after: Option<Duration>,
    stats: Arc<DeliveryStats>,
    cutoff: Cutoff,
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
            watch: None,
            stats: self.stats.clone(),
            cutoff: self.cutoff.clone(),
        }
    }
}

/// An attempt with its deadline. The watch (the timer and the wait for the
/// cutoff, one boxed future) is made only when the attempt does not finish
/// at its first poll: a sink that answers at once (a buffer, a blackhole)
/// costs no timer registration and no allocation. The first poll follows
/// the call immediately, so the deadline still runs from the attempt's start.
pub struct Deadline<F> {
    attempt: F,
    after: Option<Duration>,
    watch: Option<BoxFuture<'static, DeliveryError>>,
    stats: Arc<DeliveryStats>,
    cutoff: Cutoff,
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
        let this = &mut *self;
        let watch = this.watch.get_or_insert_with(|| {
            let (after, cutoff) = (this.after, this.cutoff.clone());
            async move {
                let expiry = async {
                    match after {
                        Some(d) => tokio::time::sleep(d).await,
                        None => std::future::pending().await,
                    }
                };
                match cutoff.unless(expiry).await {
                    Some(()) => DeliveryError::TimedOut(after.unwrap_or_default()),
                    None => DeliveryError::CutOff,
                }
            }
            .boxed()
        });
        let error = std::task::ready!(watch.as_mut().poll(cx));
        if let DeliveryError::TimedOut(_) = error {
            DeliveryStats::add(&this.stats.timeouts, 1);
        }
        Poll::Ready(Err(error))
    }
}
