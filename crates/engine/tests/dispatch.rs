//! Engine behaviour on paused time: batching triggers, retries, fates, acks.

use async_trait::async_trait;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use switchyard_core::{
    AckBatch, Event, Fate, LogRecord, Payload, Sink, SinkError, Transform, Verdict,
};
use switchyard_engine::{intake, run, Counters, CountersSnapshot, EngineConfig};
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

fn cfg(batch_size: usize) -> EngineConfig {
    EngineConfig {
        batch_size,
        flush_interval: Duration::from_secs(5),
        retry_attempts: 3,
        retry_backoff: Duration::from_secs(1),
        concurrency: 2,
    }
}

async fn run_with(
    sink: Recorder,
    config: EngineConfig,
    transform: Arc<dyn Transform>,
    feed: impl FnOnce(switchyard_engine::IntakeSender) -> tokio::task::JoinHandle<()>,
) -> CountersSnapshot {
    let (tx, rx) = intake(10_000);
    let counters = Arc::new(Counters::default());
    let feeder = feed(tx);
    run(rx, transform, Box::new(sink), config, counters.clone()).await;
    feeder.await.unwrap();
    counters.snapshot()
}

#[tokio::test(start_paused = true)]
async fn flushes_at_batch_size_and_on_shutdown() {
    let sink = Recorder::default();
    let c = run_with(
        sink.clone(),
        cfg(10),
        Arc::new(switchyard_core::Identity),
        |tx| tokio::spawn(async move { tx.send(events(25)).await.unwrap() }),
    )
    .await;
    let sizes: Vec<_> = sink.batches.lock().unwrap().iter().map(|b| b.0).collect();
    assert_eq!(sizes, [10, 10, 5]);
    assert_eq!((c.received, c.sent, c.dropped), (25, 25, 0));
}

#[tokio::test(start_paused = true)]
async fn flushes_after_interval_since_first_event() {
    let sink = Recorder::default();
    let start = Instant::now();
    run_with(
        sink.clone(),
        cfg(100),
        Arc::new(switchyard_core::Identity),
        |tx| {
            tokio::spawn(async move {
                tx.send(events(3)).await.unwrap();
                tokio::time::sleep(Duration::from_secs(2)).await;
                tx.send(events(1)).await.unwrap();
                tokio::time::sleep(Duration::from_secs(10)).await;
            })
        },
    )
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
    let c = run_with(
        sink.clone(),
        cfg(5),
        Arc::new(switchyard_core::Identity),
        |tx| tokio::spawn(async move { tx.send(events(5)).await.unwrap() }),
    )
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
    let c = run_with(
        sink.clone(),
        cfg(5),
        Arc::new(switchyard_core::Identity),
        |tx| tokio::spawn(async move { tx.send(events(5)).await.unwrap() }),
    )
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
    let c = run_with(
        sink.clone(),
        cfg(5),
        Arc::new(switchyard_core::Identity),
        |tx| tokio::spawn(async move { tx.send(events(5)).await.unwrap() }),
    )
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
    let c = run_with(sink.clone(), cfg(3), Arc::new(DropOdd), |tx| {
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
    let (tx, rx) = intake(10_000);
    let counters = Arc::new(Counters::default());
    let config = EngineConfig {
        concurrency: 3,
        ..cfg(10)
    };
    tx.send(events(100)).await.unwrap();
    drop(tx);
    let engine = tokio::spawn(run(
        rx,
        Arc::new(switchyard_core::Identity),
        Box::new(gate.clone()),
        config,
        counters.clone(),
    ));
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
