//! A sink's loop on paused time, through a one-source topology: batching
//! triggers, retries, fates, acks.

use async_trait::async_trait;
use std::collections::VecDeque;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use switchyard_core::{
    AckBatch, Event, Fate, LogRecord, Payload, Sink, SinkError, Transform, Verdict,
};
use switchyard_engine::delivery::{BreakerConfig, Concurrency, DeliveryConfig};
use switchyard_engine::topology::{Observers, Pipeline, SinkNode, TransformNode};
use switchyard_engine::{BufferConfig, CountersSnapshot, SinkPolicy};
use tokio::time::Instant;

/// Records batch sizes and their times; fails according to a script first.
#[derive(Clone, Default)]
struct Recorder {
    batches: Arc<Mutex<Vec<(usize, Instant)>>>,
    script: Arc<Mutex<VecDeque<SinkError>>>,
    attempts: Arc<Mutex<u32>>,
}

#[async_trait]
impl Sink for Recorder {
    async fn send(&self, events: &[Event]) -> Result<(), SinkError> {
        *self.attempts.lock().unwrap() += 1;
        if let Some(e) = self.script.lock().unwrap().pop_front() {
            return Err(e);
        }
        self.batches
            .lock()
            .unwrap()
            .push((events.len(), Instant::now()));
        Ok(())
    }
}

fn events(n: usize) -> Vec<Event> {
    (0..n)
        .map(|i| LogRecord::new(format!("m{i}")).into())
        .collect()
}

/// Three retries from 1 s, two batches in flight, no breaker.
fn cfg(batch_size: usize) -> SinkPolicy {
    SinkPolicy {
        batch_size,
        flush_interval: Duration::from_secs(5),
        delivery: DeliveryConfig {
            max_retries: 3,
            retry_backoff: Duration::from_secs(1),
            concurrency: Concurrency::Fixed(2),
            circuit_breaker: BreakerConfig {
                enabled: false,
                ..BreakerConfig::default()
            },
            ..DeliveryConfig::default()
        },
        ..SinkPolicy::new("sink")
    }
}

/// `in` → (`transform`, if any) → `sink`.
fn start(sink: impl Sink, policy: SinkPolicy, transform: Option<Arc<dyn Transform>>) -> Pipeline {
    let mut transforms = Vec::new();
    let mut inputs = vec!["in".to_string()];
    if let Some(transform) = transform {
        transforms.push(TransformNode {
            name: "t".into(),
            inputs,
            transform,
        });
        inputs = vec!["t".to_string()];
    }
    let node = SinkNode {
        name: "sink".into(),
        inputs,
        sink: Box::new(sink),
        buffer: BufferConfig::events(10_000),
        policy,
        disk: None,
    };
    Pipeline::start(
        vec!["in".into()],
        10_000,
        transforms,
        vec![node],
        Observers::default(),
    )
    .unwrap()
}

/// Run the pipeline until `feed` is done and everything is settled. The
/// ledger: `received` and `filtered` from the source's router, the fates
/// from the sink's loop.
async fn run_with(
    sink: Recorder,
    config: SinkPolicy,
    transform: Option<Arc<dyn Transform>>,
    feed: impl FnOnce(switchyard_engine::IntakeSender) -> tokio::task::JoinHandle<()>,
) -> CountersSnapshot {
    let pipeline = start(sink, config, transform);
    let feeder = feed(pipeline.sender("in").unwrap());
    let source = pipeline.sources[0].stats.clone();
    let counters = pipeline.sinks[0].counters.clone();
    pipeline.finish().await;
    feeder.await.unwrap();
    CountersSnapshot {
        received: source.received.load(Relaxed),
        filtered: source.filtered.load(Relaxed),
        ..counters.snapshot()
    }
}

#[tokio::test(start_paused = true)]
async fn flushes_at_batch_size_and_on_shutdown() {
    let sink = Recorder::default();
    let c = run_with(sink.clone(), cfg(10), None, |tx| {
        tokio::spawn(async move { tx.send(events(25)).await.unwrap() })
    })
    .await;
    let sizes: Vec<_> = sink.batches.lock().unwrap().iter().map(|b| b.0).collect();
    assert_eq!(sizes, [10, 10, 5]);
    assert_eq!((c.received, c.sent, c.dropped), (25, 25, 0));
}

#[tokio::test(start_paused = true)]
async fn flushes_after_interval_since_first_event() {
    let sink = Recorder::default();
    let start = Instant::now();
    run_with(sink.clone(), cfg(100), None, |tx| {
        tokio::spawn(async move {
            tx.send(events(3)).await.unwrap();
            tokio::time::sleep(Duration::from_secs(2)).await;
            tx.send(events(1)).await.unwrap();
            tokio::time::sleep(Duration::from_secs(10)).await;
        })
    })
    .await;
    let batches = sink.batches.lock().unwrap().clone();
    assert_eq!(batches.len(), 1);
    assert_eq!(batches[0].0, 4);
    assert_eq!(batches[0].1 - start, Duration::from_secs(5));
}

#[tokio::test(start_paused = true)]
async fn transient_then_success_is_retried_and_delivered() {
    let sink = Recorder::default();
    sink.script
        .lock()
        .unwrap()
        .extend([SinkError::transient("503"), SinkError::transient("timeout")]);
    let c = run_with(sink.clone(), cfg(5), None, |tx| {
        tokio::spawn(async move { tx.send(events(5)).await.unwrap() })
    })
    .await;
    assert_eq!(*sink.attempts.lock().unwrap(), 3);
    assert_eq!((c.sent, c.dropped), (5, 0));
}

#[tokio::test(start_paused = true)]
async fn permanent_error_is_not_retried() {
    let sink = Recorder::default();
    sink.script
        .lock()
        .unwrap()
        .push_back(SinkError::permanent("400"));
    let c = run_with(sink.clone(), cfg(5), None, |tx| {
        tokio::spawn(async move { tx.send(events(5)).await.unwrap() })
    })
    .await;
    assert_eq!(*sink.attempts.lock().unwrap(), 1);
    assert_eq!((c.received, c.sent, c.dropped), (5, 0, 5));
}

#[tokio::test(start_paused = true)]
async fn exhausted_retries_drop_and_count() {
    let sink = Recorder::default();
    sink.script
        .lock()
        .unwrap()
        .extend((0..4).map(|_| SinkError::transient("down")));
    let c = run_with(sink.clone(), cfg(5), None, |tx| {
        tokio::spawn(async move { tx.send(events(5)).await.unwrap() })
    })
    .await;
    assert_eq!(*sink.attempts.lock().unwrap(), 4, "1 attempt + 3 retries");
    assert_eq!((c.received, c.sent, c.dropped), (5, 0, 5));
}

/// Filters records whose message ends in an odd digit.
struct DropOdd;
impl Transform for DropOdd {
    fn apply(&self, e: &mut Event) -> Verdict {
        match &e.payload {
            Payload::Log(r)
                if r.message
                    .as_deref()
                    .is_some_and(|m| m.ends_with(['1', '3', '5', '7', '9'])) =>
            {
                Verdict::Filter
            }
            _ => Verdict::Keep,
        }
    }
}

#[tokio::test(start_paused = true)]
async fn test_source_receives_acks_with_every_fate_and_counters_add_up() {
    let sink = Recorder::default();
    sink.script
        .lock()
        .unwrap()
        .push_back(SinkError::permanent("bad"));
    let (ack_tx, ack_rx) = tokio::sync::oneshot::channel();
    let c = run_with(sink.clone(), cfg(3), Some(Arc::new(DropOdd)), |tx| {
        tokio::spawn(async move {
            // A test source: one acknowledged batch of 10 events.
            let (batch, outcome) = AckBatch::new();
            let evs = events(10)
                .into_iter()
                .map(|e| e.with_ack(batch.token()))
                .collect();
            drop(batch);
            tx.send(evs).await.unwrap();
            ack_tx.send(outcome.await.unwrap()).unwrap();
        })
    })
    .await;
    let outcome = ack_rx.await.unwrap();
    // 5 odd filtered; 5 kept → batches of 3 (permanent failure) and 2 (ok).
    assert_eq!(outcome.filtered, 5);
    assert_eq!(outcome.dropped, 3);
    assert_eq!(outcome.delivered, 2);
    assert!(outcome.is_final());
    assert_eq!(c.received, c.sent + c.filtered + c.dropped);
    assert_eq!(Fate::Delivered as u8, 0);
}

/// Holds every send until released; records how many ran at once.
#[derive(Clone)]
struct Gate {
    open: Arc<tokio::sync::Semaphore>,
    running: Arc<Mutex<(usize, usize)>>,
    delivered: Arc<Mutex<usize>>,
}

#[async_trait]
impl Sink for Gate {
    async fn send(&self, events: &[Event]) -> Result<(), SinkError> {
        {
            let mut r = self.running.lock().unwrap();
            r.0 += 1;
            r.1 = r.1.max(r.0);
        }
        self.open.acquire().await.unwrap().forget();
        self.running.lock().unwrap().0 -= 1;
        *self.delivered.lock().unwrap() += events.len();
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn at_most_concurrency_batches_are_in_flight() {
    let gate = Gate {
        open: Arc::new(tokio::sync::Semaphore::new(0)),
        running: Arc::default(),
        delivered: Arc::default(),
    };
    let mut config = cfg(10);
    config.delivery.concurrency = Concurrency::Fixed(3);
    let pipeline = start(gate.clone(), config, None);
    pipeline
        .sender("in")
        .unwrap()
        .send(events(100))
        .await
        .unwrap();
    let counters = pipeline.sinks[0].counters.clone();
    let engine = tokio::spawn(pipeline.finish());
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(
        *gate.running.lock().unwrap(),
        (3, 3),
        "three sends wait at the gate"
    );
    assert_eq!(counters.snapshot().sent, 0);
    gate.open.add_permits(1000);
    engine.await.unwrap();
    assert_eq!(
        gate.running.lock().unwrap().1,
        3,
        "never more than three at once"
    );
    assert_eq!(*gate.delivered.lock().unwrap(), 100);
    assert_eq!(counters.snapshot().sent, 100);
}
