//! A stop with a sink that is down: before the cutoff, a sink loop with
//! generous retries never ended (an orchestrator's SIGKILL then lost every
//! event in memory, uncounted). At the cutoff every event still undelivered
//! — retrying, waiting at the open breaker's gate, in an attempt that hangs,
//! or never taken from the intake — is abandoned and counted: dead-lettered
//! with the reason `shutdown`, kept on the disk buffer, or lost.

use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;
use switchyard_core::{AckBatch, BatchOutcome, Event, LogRecord, Sink, SinkError};
use switchyard_engine::delivery::settle::FailureKind;
use switchyard_engine::delivery::{Concurrency, DeliveryConfig};
use switchyard_engine::{
    intake, run_sink, Counters, CountersSnapshot, Cutoff, DeliveryStats, Dlq, DlqConfig,
    SinkPolicy, Stop,
};

/// Safety net for waits that end on their own; never an assertion on speed.
const BOUND: Duration = Duration::from_secs(30);

/// Every attempt fails transiently (a refused connection).
struct Down;

#[async_trait]
impl Sink for Down {
    async fn send(&self, _: &[Event]) -> Result<(), SinkError> {
        Err(SinkError::transient("connection refused"))
    }
}

/// Every attempt hangs (a server that accepts and never answers).
struct Hung;

#[async_trait]
impl Sink for Hung {
    async fn send(&self, _: &[Event]) -> Result<(), SinkError> {
        std::future::pending().await
    }
}

fn pipeline(dlq: Option<Arc<Dlq>>) -> SinkPolicy {
    SinkPolicy {
        batch_size: 5,
        flush_interval: Duration::from_millis(10),
        delivery: DeliveryConfig {
            max_retries: 1000,
            retry_backoff: Duration::from_millis(20),
            concurrency: Concurrency::Fixed(2),
            // The breaker stays on (its defaults): it opens during the
            // outage, and batches then wait at its gate for 30 s.
            ..DeliveryConfig::default()
        },
        sink_name: "down".into(),
        dlq,
    }
}

/// Run `events` log records through `sink`, trigger the cutoff after
/// `after`, and return the counters and the source's outcome.
async fn stop_after(
    sink: Arc<dyn Sink>,
    pipeline: SinkPolicy,
    events: usize,
    on_disk: bool,
    after: Duration,
) -> (CountersSnapshot, BatchOutcome) {
    let (tx, rx) = intake(1000);
    let counters = Arc::new(Counters::default());
    let cutoff = Cutoff::new();
    let engine = tokio::spawn(run_sink(
        rx,
        sink,
        pipeline,
        counters.clone(),
        Arc::new(DeliveryStats::default()),
        Stop {
            cutoff: cutoff.clone(),
            on_disk,
        },
    ));
    let (batch, outcome) = AckBatch::new();
    let chunk: Vec<Event> = (0..events)
        .map(|i| Event::from(LogRecord::new(format!("e{i}"))).with_ack(batch.token()))
        .collect();
    drop(batch);
    tx.send(chunk).await.unwrap();
    // The sources have stopped: the loop drains until the cutoff.
    drop(tx);
    tokio::time::sleep(after).await;
    assert!(
        !engine.is_finished(),
        "a sink that is down cannot be drained"
    );
    cutoff.trigger();
    tokio::time::timeout(BOUND, engine)
        .await
        .expect("the sink loop ends at the cutoff")
        .unwrap();
    let outcome = tokio::time::timeout(BOUND, outcome).await.unwrap().unwrap();
    (counters.snapshot(), outcome)
}

fn open_dlq(dir: &std::path::Path) -> Arc<Dlq> {
    Arc::new(
        Dlq::open(DlqConfig {
            dir: dir.to_path_buf(),
            auto_retry: false,
            ..DlqConfig::default()
        })
        .unwrap(),
    )
}

#[tokio::test]
async fn a_stop_with_the_sink_down_dead_letters_everything_at_the_cutoff_with_reason_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let dlq = open_dlq(dir.path());
    let (c, outcome) = stop_after(
        Arc::new(Down),
        pipeline(Some(dlq.clone())),
        100,
        false,
        Duration::from_millis(500),
    )
    .await;
    assert_eq!(
        (c.received, c.sent, c.dead_lettered, c.dropped, c.lost),
        (100, 0, 100, 0, 0),
        "{c:?}"
    );
    assert_eq!((outcome.dead_lettered, outcome.unresolved), (100, 0));
    let records = dlq.list();
    assert_eq!(records.len(), 100);
    assert!(records
        .iter()
        .all(|r| r.error_kind == FailureKind::Shutdown));
    // Batches that were retrying say what they met.
    assert!(
        records
            .iter()
            .any(|r| r.attempts > 0 && r.error.contains("connection refused")),
        "{:?}",
        records[0]
    );
}

#[tokio::test]
async fn a_disk_buffered_sink_leaves_what_it_did_not_deliver_unacknowledged() {
    let (c, outcome) = stop_after(
        Arc::new(Down),
        pipeline(None),
        40,
        true,
        Duration::from_millis(300),
    )
    .await;
    assert_eq!(
        (c.received, c.kept_on_disk, c.dead_lettered, c.lost),
        (40, 40, 0, 0),
        "{c:?}"
    );
    assert_eq!(
        outcome.unresolved, 40,
        "unresolved: the disk buffer delivers them again"
    );
}

#[tokio::test]
async fn without_a_dead_letter_queue_the_abandoned_events_are_counted_as_lost() {
    let (c, outcome) = stop_after(
        Arc::new(Down),
        pipeline(None),
        40,
        false,
        Duration::from_millis(300),
    )
    .await;
    assert_eq!((c.received, c.lost, c.dropped), (40, 40, 0), "{c:?}");
    assert_eq!(outcome.unresolved, 40);
}

#[tokio::test]
async fn an_attempt_that_hangs_is_abandoned_at_the_cutoff() {
    let dir = tempfile::tempdir().unwrap();
    let dlq = open_dlq(dir.path());
    // No delivery timeout: only the cutoff can end the attempts.
    let (c, _) = stop_after(
        Arc::new(Hung),
        pipeline(Some(dlq.clone())),
        12,
        false,
        Duration::from_millis(300),
    )
    .await;
    assert_eq!((c.received, c.dead_lettered), (12, 12), "{c:?}");
    let hung: Vec<_> = dlq.list().into_iter().filter(|r| r.attempts == 1).collect();
    assert_eq!(hung.len(), 10, "two batches of five were under way");
}
