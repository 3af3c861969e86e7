//! The events-per-second gauges of `/metrics` are rates over the last
//! second: something has to take that sample once a second.

use std::sync::Arc;
use std::time::Duration;
use switchyard_engine::metrics::Metrics;
use tokio::task::JoinHandle;

/// Refresh the metrics' events-per-second gauges once a second, until the
/// returned task is aborted.
pub fn sample_rates_every_second(metrics: Arc<Metrics>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            metrics.sample_rates();
        }
    })
}
