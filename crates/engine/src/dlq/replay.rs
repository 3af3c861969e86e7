//! Re-sending dead-lettered events: `switchyard dlq replay` and the
//! automatic retry of a running dispatcher share this code.
//!
//! Records are read, rebuilt into events and sent in batches to the sink
//! (with a deadline per batch), each batch first admitted by the sink's rate
//! limit, if it has one. A delivered record is removed; one that
//! fails again stays, with one more attempt, a new last-failure time, and the
//! class of this failure (a record dead-lettered for a permanent error whose
//! replay met a sink that was down now says so). A record is removed only
//! after its sink confirmed it, so a crash in between means it is sent again
//! later: at least once, as everywhere else.

use super::record::rfc3339;
use super::store::{Dlq, DlqError};
use crate::delivery::settle::FailureKind;
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
                    Some((_, kind, msg)) => again.push((rec, *kind, msg.clone())),
                    None => delivered.push(rec.id),
                }
            }
            summary.replayed += dlq.remove(&delivered)? as u64;
            summary.failed += again.len() as u64;
            let now = rfc3339(OffsetDateTime::now_utc());
            for (mut rec, kind, msg) in again {
                rec.attempts += 1;
                rec.error_kind = kind;
                rec.error = msg;
                rec.last_failure = now.clone();
                dlq.update(rec)?;
            }
        }
        progress(summary.replayed + summary.failed, total);
    }
    Ok(summary)
}

/// Send `events`; the indexes that failed, the class of each failure and
/// why (all of them unless the sink reported a partial failure).
async fn send(
    sink: &dyn Sink,
    events: &[Event],
    timeout: Duration,
) -> Vec<(usize, FailureKind, String)> {
    let all = |kind: FailureKind, msg: String| {
        (0..events.len()).map(|i| (i, kind, msg.clone())).collect()
    };
    match tokio::time::timeout(timeout, sink.send(events)).await {
        Ok(Ok(())) => Vec::new(),
        Ok(Err(e)) if e.kind == SinkErrorKind::Partial => e
            .failed
            .into_iter()
            .map(|f| (f.index, class(f.error.kind), f.error.message))
            .collect(),
        Ok(Err(e)) => all(class(e.kind), e.message),
        Err(_) => all(
            FailureKind::Timeout,
            format!("no answer within {}", humantime::format_duration(timeout)),
        ),
    }
}

/// The record's class after a failed replay: a replay is one attempt with no
/// retry, so a transient failure has exhausted its retries.
fn class(kind: SinkErrorKind) -> FailureKind {
    match kind {
        SinkErrorKind::Transient => FailureKind::RetriesExhausted,
        SinkErrorKind::Permanent | SinkErrorKind::Partial => FailureKind::Permanent,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::settle::Failure;
    use crate::dlq::DlqConfig;
    use switchyard_core::{LogRecord, SinkError};

    /// A sink that answers every batch with one error.
    struct Failing(SinkError);

    #[async_trait::async_trait]
    impl Sink for Failing {
        async fn send(&self, _: &[Event]) -> Result<(), SinkError> {
            Err(self.0.clone())
        }
    }

    #[tokio::test]
    async fn a_replay_that_fails_transiently_is_no_longer_labelled_permanent() {
        let dir = tempfile::tempdir().unwrap();
        let dlq = Dlq::open(DlqConfig {
            dir: dir.path().to_path_buf(),
            ..DlqConfig::default()
        })
        .unwrap();
        let now = OffsetDateTime::now_utc();
        let failure = Failure {
            kind: FailureKind::Permanent,
            message: "HTTP 400: bad".into(),
            attempts: 1,
            first_failure: now,
            last_failure: now,
        };
        let ids = dlq
            .append("http", &[LogRecord::new("x").into()], &failure)
            .unwrap();
        let rate = RateLimitLayer::new(None, Arc::new(DeliveryStats::default()));
        let once = |sink: Failing| {
            let (dlq, rate, ids) = (&dlq, &rate, &ids);
            async move {
                replay(dlq, &sink, rate, ids, 10, Duration::from_secs(5), |_, _| {})
                    .await
                    .unwrap()
            }
        };
        let summary = once(Failing(SinkError::transient(
            "HTTP 503: down for maintenance",
        )))
        .await;
        assert_eq!((summary.replayed, summary.failed), (0, 1));
        let listed = &dlq.list()[0];
        assert_eq!(listed.error_kind, FailureKind::RetriesExhausted);
        assert!(listed.error.contains("503"), "{}", listed.error);
        assert_eq!(listed.attempts, 2);

        once(Failing(SinkError::permanent("HTTP 422: no"))).await;
        assert_eq!(dlq.list()[0].error_kind, FailureKind::Permanent);
    }
}
