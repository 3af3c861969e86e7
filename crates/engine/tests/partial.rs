//! Per-event outcomes: after a partial failure the engine settles the delivered
//! events, gives up the permanent failures and re-sends only the transient ones.

use async_trait::async_trait;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use switchyard_core::{
    AckBatch, Event, EventFailure, LogRecord, Payload, Sink, SinkError, SinkErrorKind,
};
use switchyard_engine::delivery::{BreakerConfig, Concurrency, DeliveryConfig};
use switchyard_engine::topology::{Observers, Pipeline, SinkNode};
use switchyard_engine::{BufferConfig, SinkPolicy};
use tokio::time::Instant;

/// What each attempt carried (messages) and when.
type Attempts = Arc<Mutex<Vec<(Vec<String>, Instant)>>>;
/// Per attempt: the failing positions and their errors.
type Script = Arc<Mutex<VecDeque<Vec<(usize, SinkError)>>>>;

/// Answers each attempt from a script of per-position errors; records what
/// each attempt carried and when.
#[derive(Clone, Default)]
struct PerEvent {
    attempts: Attempts,
    script: Script,
}

#[async_trait]
impl Sink for PerEvent {
    async fn send(&self, events: &[Event]) -> Result<(), SinkError> {
        let messages = events
            .iter()
            .map(|e| match &e.payload {
                Payload::Log(r) => r.message.clone().unwrap_or_default(),
                _ => unreachable!("the test sends log records only"),
            })
            .collect();
        self.attempts
            .lock()
            .unwrap()
            .push((messages, Instant::now()));
        let failures = self.script.lock().unwrap().pop_front().unwrap_or_default();
        SinkError::from_failures(
            failures
                .into_iter()
                .map(|(index, error)| EventFailure { index, error })
                .collect(),
        )
    }
}

fn config(max_retries: u32) -> SinkPolicy {
    SinkPolicy {
        batch_size: 5,
        flush_interval: Duration::from_secs(5),
        delivery: DeliveryConfig {
            max_retries,
            retry_backoff: Duration::from_millis(100),
            concurrency: Concurrency::Fixed(1),
            circuit_breaker: BreakerConfig {
                enabled: false,
                ..BreakerConfig::default()
            },
            ..DeliveryConfig::default()
        },
        ..SinkPolicy::new("sink")
    }
}

/// Five acknowledged events through a one-source, one-sink topology.
async fn deliver_five(sink: PerEvent, policy: SinkPolicy) -> (u64, u64, u64, u64) {
    let node = SinkNode {
        name: "sink".into(),
        inputs: vec!["in".into()],
        sink: Box::new(sink),
        buffer: BufferConfig::events(100),
        policy,
        disk: None,
    };
    let pipeline = Pipeline::start(
        vec!["in".into()],
        100,
        vec![],
        vec![node],
        Observers::default(),
    )
    .unwrap();
    let tx = pipeline.sender("in").unwrap();
    let counters = pipeline.sinks[0].counters.clone();
    let feeder = tokio::spawn(async move {
        let (batch, outcome) = AckBatch::new();
        let events = (0..5)
            .map(|i| Event::from(LogRecord::new(format!("m{i}"))).with_ack(batch.token()))
            .collect();
        drop(batch);
        tx.send(events).await.unwrap();
        outcome.await.unwrap()
    });
    pipeline.finish().await;
    let outcome = feeder.await.unwrap();
    let c = counters.snapshot();
    assert_eq!(c.sent, outcome.delivered);
    assert_eq!(c.dropped, outcome.dropped);
    assert!(outcome.is_final());
    (c.received, c.sent, c.dropped, outcome.unresolved)
}

#[tokio::test(start_paused = true)]
async fn retry_resends_only_the_transiently_failed_events_after_retry_after() {
    let sink = PerEvent::default();
    let busy = SinkError::transient("429").with_retry_after(Some(Duration::from_secs(10)));
    sink.script.lock().unwrap().extend([
        vec![(1, busy), (3, SinkError::permanent("400 bad request"))],
        vec![],
    ]);
    let counts = deliver_five(sink.clone(), config(3)).await;
    assert_eq!(counts, (5, 4, 1, 0));
    let attempts = sink.attempts.lock().unwrap().clone();
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0].0, ["m0", "m1", "m2", "m3", "m4"]);
    assert_eq!(
        attempts[1].0,
        ["m1"],
        "only the transient failure is re-sent"
    );
    assert!(attempts[1].1 - attempts[0].1 >= Duration::from_secs(10));
}

#[tokio::test(start_paused = true)]
async fn transient_event_failures_are_dropped_once_retries_run_out() {
    let sink = PerEvent::default();
    let down = || SinkError::transient("500");
    sink.script.lock().unwrap().extend([
        vec![(0, down()), (4, down())],
        vec![(1, down())], // the batch is now [m0, m4]
    ]);
    let counts = deliver_five(sink.clone(), config(1)).await;
    assert_eq!(counts, (5, 4, 1, 0));
    let attempts = sink.attempts.lock().unwrap().clone();
    assert_eq!(attempts[1].0, ["m0", "m4"]);
}

#[test]
fn partial_is_its_own_kind() {
    let e = SinkError::from_failures(vec![EventFailure {
        index: 0,
        error: SinkError::permanent("x"),
    }])
    .unwrap_err();
    assert_eq!(e.kind, SinkErrorKind::Partial);
}
