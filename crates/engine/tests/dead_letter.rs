//! Events that fail for good: into the dead-letter queue with their reason
//! (settled for their source), or dropped with "dlq full" when it has no room;
//! auto-retry sends them again once the sink recovers.

use async_trait::async_trait;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use switchyard_core::{AckBatch, Event, LogRecord, Sink, SinkError};
use switchyard_engine::delivery::{BreakerConfig, DeliveryConfig, RateLimit, RateUnit};
use switchyard_engine::dlq::record::PayloadKind;
use switchyard_engine::{
    intake, run_sink, Counters, CountersSnapshot, DeliveryStats, Dlq, DlqConfig, SinkPolicy, Stop,
};

/// Refuses `poison` events permanently; fails everything transiently while
/// `down`; records what it accepted.
#[derive(Clone, Default)]
struct Picky {
    down: Arc<AtomicBool>,
    accepted: Arc<Mutex<Vec<String>>>,
}

#[async_trait]
impl Sink for Picky {
    async fn send(&self, events: &[Event]) -> Result<(), SinkError> {
        if self.down.load(SeqCst) {
            return Err(SinkError::transient("sink down"));
        }
        let mut texts = Vec::new();
        for e in events {
            let mut json = Vec::new();
            e.write_json(&mut json).unwrap();
            let text = String::from_utf8(json).unwrap();
            if text.contains("poison") {
                return Err(SinkError::permanent("poison refused"));
            }
            texts.push(text);
        }
        self.accepted.lock().unwrap().extend(texts);
        Ok(())
    }
}

fn pipeline(dlq: Option<Arc<Dlq>>) -> SinkPolicy {
    SinkPolicy {
        batch_size: 1,
        flush_interval: Duration::from_millis(10),
        delivery: DeliveryConfig {
            max_retries: 2,
            retry_backoff: Duration::from_millis(1),
            circuit_breaker: BreakerConfig {
                enabled: false,
                ..BreakerConfig::default()
            },
            ..DeliveryConfig::default()
        },
        sink_name: "picky".into(),
        dlq,
    }
}

fn dlq_config(dir: &std::path::Path, max_size: usize, auto_retry: bool) -> DlqConfig {
    DlqConfig {
        dir: dir.to_path_buf(),
        max_size,
        auto_retry,
        retry_interval: Duration::from_millis(50),
        ..DlqConfig::default()
    }
}

async fn run(
    sink: Picky,
    pipeline: SinkPolicy,
    messages: &[&str],
) -> (CountersSnapshot, switchyard_core::BatchOutcome) {
    let (tx, rx) = intake(100);
    let counters = Arc::new(Counters::default());
    let (batch, outcome) = AckBatch::new();
    let events: Vec<Event> = messages
        .iter()
        .map(|m| Event::from(LogRecord::new(*m)).with_ack(batch.token()))
        .collect();
    drop(batch);
    tx.send(events).await.unwrap();
    drop(tx);
    run_sink(
        rx,
        Arc::new(sink),
        pipeline,
        counters.clone(),
        Arc::new(DeliveryStats::default()),
        Stop::default(),
    )
    .await;
    let outcome = outcome.await.unwrap();
    (counters.snapshot(), outcome)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_event_is_dead_lettered_with_its_reason_and_the_rest_flows() {
    let dir = tempfile::tempdir().unwrap();
    let dlq = Arc::new(Dlq::open(dlq_config(dir.path(), 10, false)).unwrap());
    let sink = Picky::default();
    let (c, outcome) = run(
        sink.clone(),
        pipeline(Some(dlq.clone())),
        &["a", "poison", "b"],
    )
    .await;
    assert_eq!(
        (c.received, c.sent, c.dead_lettered, c.dropped),
        (3, 2, 1, 0)
    );
    assert_eq!(
        (outcome.delivered, outcome.dead_lettered, outcome.dropped),
        (2, 1, 0)
    );
    assert!(outcome.is_final(), "a dead-lettered event is settled");
    assert_eq!(sink.accepted.lock().unwrap().len(), 2);

    let records = dlq.list();
    assert_eq!(records.len(), 1);
    let rec = dlq.get(records[0].id).unwrap().unwrap();
    assert_eq!(rec.sink, "picky");
    assert_eq!(rec.error, "poison refused");
    assert_eq!(rec.attempts, 1, "a permanent error is not retried");
    assert_eq!(rec.payload, PayloadKind::Log);
    assert!(rec.event.get().contains("\"poison\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_retries_dead_letter_and_a_full_queue_drops_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let dlq = Arc::new(Dlq::open(dlq_config(dir.path(), 2, false)).unwrap());
    let sink = Picky::default();
    sink.down.store(true, SeqCst);
    let (c, outcome) = run(sink, pipeline(Some(dlq.clone())), &["a", "b", "c"]).await;
    assert_eq!(
        (c.received, c.sent, c.dead_lettered, c.dropped),
        (3, 0, 2, 1)
    );
    assert_eq!((outcome.dead_lettered, outcome.dropped), (2, 1));
    let rec = dlq.get(dlq.list()[0].id).unwrap().unwrap();
    assert_eq!(rec.attempts, 3, "the first attempt and two retries");
    assert_eq!(
        serde_json::to_value(rec.error_kind).unwrap(),
        "retries_exhausted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_queue_failed_events_are_dropped_and_counted() {
    let (c, outcome) = run(Picky::default(), pipeline(None), &["poison", "ok"]).await;
    assert_eq!((c.sent, c.dead_lettered, c.dropped), (1, 0, 1));
    assert_eq!(outcome.dropped, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_retry_delivers_dead_letters_once_the_sink_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let dlq = Arc::new(Dlq::open(dlq_config(dir.path(), 10, true)).unwrap());
    let sink = Picky::default();
    sink.down.store(true, SeqCst);
    let (tx, rx) = intake(100);
    let counters = Arc::new(Counters::default());
    let engine = tokio::spawn(run_sink(
        rx,
        Arc::new(sink.clone()),
        pipeline(Some(dlq.clone())),
        counters.clone(),
        Arc::new(DeliveryStats::default()),
        Stop::default(),
    ));
    tx.send(vec![LogRecord::new("late").into()]).await.unwrap();
    for _ in 0..1000 {
        if counters.snapshot().dead_lettered == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(dlq.len(), 1);
    sink.down.store(false, SeqCst);
    for _ in 0..1000 {
        if dlq.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(dlq.is_empty(), "auto-retry emptied the queue");
    assert!(sink.accepted.lock().unwrap()[0].contains("\"late\""));
    drop(tx);
    engine.await.unwrap();
}

/// Regression: auto-retry sent straight to the sink, so a sink's rate limit
/// did not hold for re-sent dead letters. Two records, re-sent one per
/// request under a limit of one request per second, cannot both arrive
/// within a second. While the sink is down, the retry loop (every 50 ms)
/// and the second record's first send wait for the same bucket; served in
/// order, the second record is dead-lettered within about a second instead
/// of losing every token to the loop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_retry_takes_from_the_sinks_rate_limit() {
    let dir = tempfile::tempdir().unwrap();
    let dlq = Arc::new(Dlq::open(dlq_config(dir.path(), 10, true)).unwrap());
    let sink = Picky::default();
    sink.down.store(true, SeqCst);
    let mut limited = pipeline(Some(dlq.clone()));
    limited.delivery.max_retries = 0;
    limited.delivery.rate_limit = Some(RateLimit {
        per_second: 1,
        unit: RateUnit::Requests,
    });
    let (tx, rx) = intake(100);
    let counters = Arc::new(Counters::default());
    let stats = Arc::new(DeliveryStats::default());
    let engine = tokio::spawn(run_sink(
        rx,
        Arc::new(sink.clone()),
        limited,
        counters.clone(),
        stats.clone(),
        Stop::default(),
    ));
    tx.send(vec![
        LogRecord::new("first").into(),
        LogRecord::new("second").into(),
    ])
    .await
    .unwrap();
    for _ in 0..1000 {
        if counters.snapshot().dead_lettered == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(dlq.len(), 2);
    let waits_before = stats.snapshot().rate_limited_waits;
    sink.down.store(false, SeqCst);
    let recovered = std::time::Instant::now();
    for _ in 0..1000 {
        if dlq.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let took = recovered.elapsed();
    assert!(dlq.is_empty(), "auto-retry emptied the queue");
    assert_eq!(sink.accepted.lock().unwrap().len(), 2);
    assert!(
        took >= Duration::from_millis(800),
        "two re-sends within {took:?} under a limit of 1 request/s"
    );
    assert!(stats.snapshot().rate_limited_waits > waits_before);
    drop(tx);
    engine.await.unwrap();
}
