//! The innermost service: one call is one [`Sink::send`] of the whole batch.

use super::{Batch, DeliveryError};
use futures_util::future::BoxFuture;
use std::sync::Arc;
use std::task::{Context, Poll};
use switchyard_core::Sink;
use tower::Service;

/// A sink as a `tower::Service`.
#[derive(Clone)]
pub struct SinkService {
    sink: Arc<dyn Sink>,
}

impl SinkService {
    /// Wrap a sink.
    pub fn new(sink: Arc<dyn Sink>) -> Self {
        Self { sink }
    }
}

impl Service<Batch> for SinkService {
    type Response = ();
    type Error = DeliveryError;
    type Future = BoxFuture<'static, Result<(), DeliveryError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, batch: Batch) -> Self::Future {
        let sink = self.sink.clone();
        Box::pin(async move { sink.send(&batch).await.map_err(DeliveryError::Sink) })
    }
}
