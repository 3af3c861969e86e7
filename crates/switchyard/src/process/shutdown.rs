//! How `switchyard dispatcher` and `switchyard run` stop.
//!
//! The first SIGTERM or SIGINT starts a drain: sources stop taking input and
//! the sinks deliver what is left. A drain can only take as long as the sink
//! allows, and a sink that is down never allows it to end — so the drain has
//! a deadline (`--shutdown-timeout`, `shutdown_timeout:`). At the deadline
//! the pipeline's [`Cutoff`] is triggered: delivery is abandoned and every
//! undelivered event is kept on its sink's disk buffer, dead-lettered with
//! the reason `shutdown`, or counted as lost (see
//! `switchyard_engine::shutdown`). The process then finishes as after any
//! drain and prints its final counters.
//!
//! A second signal stops at once: whoever sends it has decided not to wait,
//! so the process prints what it loses and exits without draining.

use super::signals::Signals;
use std::time::Duration;
use switchyard_engine::Cutoff;
use tracing::{error, warn};

/// Watch the signals. The returned future resolves at the first one; from
/// then on `cutoff` is triggered after `timeout`, and a second signal calls
/// `at_once` (which reports what is lost) and exits with status 1.
pub fn watch(
    cutoff: Cutoff,
    timeout: Duration,
    at_once: impl FnOnce() + Send + 'static,
) -> impl std::future::Future<Output = ()> {
    let (first_tx, first_rx) = tokio::sync::oneshot::channel::<()>();
    let mut signals = Signals::new();
    tokio::spawn(async move {
        signals.next().await;
        let _ = first_tx.send(());
        warn!(timeout = %humantime::format_duration(timeout), "stopping: draining until the shutdown timeout; a second SIGTERM or SIGINT stops at once");
        tokio::select! {
            _ = tokio::time::sleep(timeout) => {
                warn!(timeout = %humantime::format_duration(timeout), "shutdown timeout reached: abandoning delivery; undelivered events go to the disk buffer or the dead-letter queue, or are lost");
                cutoff.trigger();
                signals.next().await;
            }
            _ = signals.next() => {}
        }
        error!("second signal: stopping at once, without draining");
        at_once();
        std::process::exit(1);
    });
    async move {
        let _ = first_rx.await;
    }
}
