//! Re-sending dead-lettered events: `switchyard dlq replay` and the
//! automatic retry of a running dispatcher share this code.
//!
//! Records are read, rebuilt into events and sent in batches to the sink
//! (with a deadline per batch), each batch first admitted by the sink's rate
//! limit, if it has one. A delivered record is removed; one that
//! fails again stays, with one more attempt and a new last-failure time. A
//! record is removed only after its sink confirmed it, so a crash in between
//! means it is sent again later: at least once, as everywhere else.

use super::record::rfc3339;
use super::store::{Dlq, DlqError};
use crate::delivery::stats::{BreakerState, DeliveryStats};
use crate::delivery::RateLimitLayer;
use std::sync::Arc;
use std::time::Duration;
use switchyard_core::{Event, Sink, SinkErrorKind};
use time::OffsetDateTime;
use tracing::{error, info, warn};

/// How a replay went.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplaySummary {
    /// Records delivered and removed.
    pub replayed: u64,
    /// Records that failed again (kept) or could not be read.
    pub failed: u64,
}

/// Send the records `ids` to `sink`, `batch_size` at a time, each batch once
/// `rate` admits it and within `timeout`; call `progress(done, total)` after
/// each batch.
pub async fn replay(
    dlq: &Dlq,
    sink: &dyn Sink,
    rate: &RateLimitLayer,
    ids: &[u64],
    batch_size: usize,
    timeout: Duration,
    mut progress: impl FnMut(u64, u64),
) -> Result<ReplaySummary, DlqError> {
    let mut summary = ReplaySummary::default();
    let total = ids.len() as u64;
    for chunk in ids.chunks(batch_size.max(1)) {
        let mut records = Vec::with_capacity(chunk.len());
        let mut events = Vec::with_capacity(chunk.len());
        for &id in chunk {
            let Some(rec) = dlq.get(id)? else { continue };
            match rec.to_event() {
                Ok(e) => {
                    events.push(e);
                    records.push(rec);
                }
                Err(e) => {
                    error!(id, error = %e, "dead-letter record cannot be replayed");
                    summary.failed += 1;
                }
            }
        }
        if !events.is_empty() {
            rate.admit(events.len()).await;
            let failed = send(sink, &events, timeout).await;
            let (mut delivered, mut again) = (Vec::new(), Vec::new());
            for (i, rec) in records.into_iter().enumerate() {
                match failed.iter().find(|f| f.0 == i) {
                    Some((_, msg)) => again.push((rec, msg.clone())),
                    None => delivered.push(rec.id),
                }
            }
            summary.replayed += dlq.remove(&delivered)? as u64;
            summary.failed += again.len() as u64;
            let now = rfc3339(OffsetDateTime::now_utc());
            for (mut rec, msg) in again {
                rec.attempts += 1;
                rec.error = msg;
                rec.last_failure = now.clone();
                dlq.update(rec)?;
            }
        }
        progress(summary.replayed + summary.failed, total);
    }
    Ok(summary)
}

/// Send `events`; the indexes that failed and why (all of them unless the
/// sink reported a partial failure).
async fn send(sink: &dyn Sink, events: &[Event], timeout: Duration) -> Vec<(usize, String)> {
    let all = |msg: String| (0..events.len()).map(|i| (i, msg.clone())).collect();
    match tokio::time::timeout(timeout, sink.send(events)).await {
        Ok(Ok(())) => Vec::new(),
        Ok(Err(e)) if e.kind == SinkErrorKind::Partial => e
            .failed
            .into_iter()
            .map(|f| (f.index, f.error.message))
            .collect(),
        Ok(Err(e)) => all(e.message),
        Err(_) => all(format!(
            "no answer within {}",
            humantime::format_duration(timeout)
        )),
    }
}

/// Every `retry_interval`, purge expired records and re-send `sink_name`'s
/// records to `sink`, unless its breaker is open, within the sink's rate
/// limit `rate` (the bucket its delivery stack uses). Runs until aborted.
pub async fn auto_retry(
    dlq: Arc<Dlq>,
    sink: Arc<dyn Sink>,
    sink_name: String,
    stats: Arc<DeliveryStats>,
    rate: RateLimitLayer,
    batch_size: usize,
    timeout: Duration,
) {
    let interval = dlq.config().retry_interval;
    loop {
        tokio::time::sleep(interval).await;
        let d = dlq.clone();
        let expired =
            tokio::task::spawn_blocking(move || d.expire(OffsetDateTime::now_utc())).await;
        match expired {
            Ok(Ok(n)) if n > 0 => info!(records = n, "dead-letter records expired"),
            Ok(Err(e)) => warn!(error = %e, "dead-letter retention purge failed"),
            _ => {}
        }
        if stats.breaker_state() == BreakerState::Open {
            info!(sink = %sink_name, "circuit open: dead-letter retry skipped this round");
            continue;
        }
        let ids: Vec<u64> = dlq
            .list()
            .into_iter()
            .filter(|s| s.sink == sink_name)
            .map(|s| s.id)
            .collect();
        if ids.is_empty() {
            continue;
        }
        // Disk reads and syncs here are few and small next to a sink round
        // trip; they run on this task.
        match replay(
            &dlq,
            sink.as_ref(),
            &rate,
            &ids,
            batch_size,
            timeout,
            |_, _| {},
        )
        .await
        {
            Ok(s) => {
                info!(sink = %sink_name, replayed = s.replayed, failed = s.failed, "dead-letter retry round")
            }
            Err(e) => warn!(sink = %sink_name, error = %e, "dead-letter retry round failed"),
        }
    }
}
