//! Pipeline graphs: wiring checks, fan-out and fan-in, per-sink buffers, and
//! one acknowledgement per event whatever the number of sinks.

use async_trait::async_trait;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use switchyard_core::{AckBatch, Event, LogRecord, Payload, Sink, SinkError, Transform, Verdict};
use switchyard_engine::delivery::{BreakerConfig, Concurrency, DeliveryConfig};
use switchyard_engine::topology::{Observers, Pipeline, Shape, SinkNode, TransformNode};
use switchyard_engine::{BufferConfig, SinkPolicy, WhenFull};
use tokio::sync::watch;

/// Keeps the messages it receives; waits while its gate is closed.
#[derive(Clone)]
struct Collect {
    got: Arc<Mutex<Vec<String>>>,
    open: watch::Receiver<bool>,
}

impl Collect {
    fn new(open: bool) -> (Self, watch::Sender<bool>) {
        let (tx, rx) = watch::channel(open);
        (
            Self {
                got: Arc::default(),
                open: rx,
            },
            tx,
        )
    }

    fn messages(&self) -> Vec<String> {
        self.got.lock().unwrap().clone()
    }
}

#[async_trait]
impl Sink for Collect {
    async fn send(&self, events: &[Event]) -> Result<(), SinkError> {
        let mut open = self.open.clone();
        open.wait_for(|o| *o)
            .await
            .map_err(|_| SinkError::transient("gate gone"))?;
        let mut got = self.got.lock().unwrap();
        for e in events {
            if let Payload::Log(r) = &e.payload {
                got.push(r.message.clone().unwrap_or_default());
            }
        }
        Ok(())
    }
}

struct DropContaining(&'static str);

impl Transform for DropContaining {
    fn apply(&self, event: &mut Event) -> Verdict {
        match &event.payload {
            Payload::Log(r) if r.message.as_deref().unwrap_or("").contains(self.0) => {
                Verdict::Filter
            }
            _ => Verdict::Keep,
        }
    }
}

struct Tag(&'static str);

impl Transform for Tag {
    fn apply(&self, event: &mut Event) -> Verdict {
        if let Payload::Log(r) = &mut event.payload {
            let m = r.message.take().unwrap_or_default();
            r.message = Some(format!("{m}+{}", self.0));
        }
        Verdict::Keep
    }
}

/// Small batches, flushed soon; no retries, one batch at a time, no breaker.
fn policy(name: &str) -> SinkPolicy {
    SinkPolicy {
        batch_size: 10,
        flush_interval: Duration::from_millis(10),
        delivery: DeliveryConfig {
            max_retries: 0,
            retry_backoff: Duration::from_millis(1),
            concurrency: Concurrency::Fixed(1),
            circuit_breaker: BreakerConfig {
                enabled: false,
                ..BreakerConfig::default()
            },
            ..DeliveryConfig::default()
        },
        ..SinkPolicy::new(name)
    }
}

fn sink(name: &str, inputs: &[&str], sink: Collect, buffer: BufferConfig) -> SinkNode {
    SinkNode {
        name: name.into(),
        inputs: inputs.iter().map(|s| s.to_string()).collect(),
        sink: Box::new(sink),
        buffer,
        policy: policy(name),
        disk: None,
    }
}

fn transform(name: &str, inputs: &[&str], t: impl Transform) -> TransformNode {
    TransformNode {
        name: name.into(),
        inputs: inputs.iter().map(|s| s.to_string()).collect(),
        transform: Arc::new(t),
    }
}

fn logs(prefix: &str, n: usize) -> Vec<Event> {
    (0..n)
        .map(|i| LogRecord::new(format!("{prefix}{i}")).into())
        .collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[tokio::test]
async fn fan_out_and_fan_in_through_transforms() {
    let (a, _ga) = Collect::new(true);
    let (b, _gb) = Collect::new(true);
    let p = Pipeline::start(
        vec!["app".into(), "web".into()],
        100,
        vec![
            transform("no_debug", &["app", "web"], DropContaining("debug")),
            transform("tag", &["no_debug"], Tag("t")),
        ],
        vec![
            sink("all", &["tag"], a.clone(), BufferConfig::events(100)),
            sink("raw_web", &["web"], b.clone(), BufferConfig::events(100)),
        ],
        Observers::default(),
    )
    .unwrap();
    let app = p.sender("app").unwrap();
    let web = p.sender("web").unwrap();
    app.send(vec![
        LogRecord::new("a1").into(),
        LogRecord::new("debug a2").into(),
    ])
    .await
    .unwrap();
    web.send(vec![LogRecord::new("w1").into()]).await.unwrap();
    drop((app, web));
    let stats: Vec<_> = p.sources.iter().map(|s| s.stats.clone()).collect();
    p.finish().await;
    assert_eq!(sorted(a.messages()), ["a1+t", "w1+t"]);
    assert_eq!(b.messages(), ["w1"]);
    assert_eq!(stats[0].received.load(Relaxed), 2);
    assert_eq!(stats[0].filtered.load(Relaxed), 1);
}

#[tokio::test]
async fn a_fanned_out_event_is_acknowledged_once_after_every_sink() {
    let (a, _ga) = Collect::new(true);
    let (b, gate_b) = Collect::new(false);
    let p = Pipeline::start(
        vec!["in".into()],
        100,
        vec![],
        vec![
            sink("a", &["in"], a.clone(), BufferConfig::events(100)),
            sink("b", &["in"], b.clone(), BufferConfig::events(100)),
        ],
        Observers::default(),
    )
    .unwrap();
    let (batch, mut outcome) = AckBatch::new();
    let events = logs("e", 5)
        .into_iter()
        .map(|e| e.with_ack(batch.token()))
        .collect();
    drop(batch);
    p.sender("in").unwrap().send(events).await.unwrap();
    // Sink a delivers; b is held: the source must not hear back yet.
    while a.messages().len() < 5 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(outcome.try_recv().is_err());
    gate_b.send(true).unwrap();
    let o = outcome.await.unwrap();
    assert_eq!((o.delivered, o.dropped, o.unresolved), (5, 0, 0));
    p.finish().await;
    assert_eq!(b.messages().len(), 5);
}

#[tokio::test]
async fn a_stalled_sink_does_not_stop_the_others_while_its_buffer_absorbs() {
    let (healthy, _g) = Collect::new(true);
    let (stalled, gate) = Collect::new(false);
    let p = Pipeline::start(
        vec!["in".into()],
        100,
        vec![],
        vec![
            sink(
                "healthy",
                &["in"],
                healthy.clone(),
                BufferConfig::events(1000),
            ),
            sink(
                "stalled",
                &["in"],
                stalled.clone(),
                BufferConfig::events(1000),
            ),
        ],
        Observers::default(),
    )
    .unwrap();
    let tx = p.sender("in").unwrap();
    for i in 0..50 {
        tx.send(logs(&format!("c{i}-"), 10)).await.unwrap();
    }
    while healthy.messages().len() < 500 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(stalled.messages().is_empty());
    gate.send(true).unwrap();
    drop(tx);
    p.finish().await;
    assert_eq!(stalled.messages().len(), 500);
}

#[tokio::test]
async fn drop_policies_account_for_every_event() {
    for when_full in [WhenFull::DropNewest, WhenFull::DropOldest] {
        let (slow, gate) = Collect::new(false);
        let p = Pipeline::start(
            vec!["in".into()],
            10_000,
            vec![],
            vec![sink(
                "slow",
                &["in"],
                slow.clone(),
                BufferConfig {
                    when_full,
                    ..BufferConfig::events(50)
                },
            )],
            Observers::default(),
        )
        .unwrap();
        let tx = p.sender("in").unwrap();
        let (batch, outcome) = AckBatch::new();
        for i in 0..100 {
            let chunk = logs(&format!("c{i}-"), 10)
                .into_iter()
                .map(|e| e.with_ack(batch.token()))
                .collect();
            tx.send(chunk).await.unwrap();
        }
        drop(batch);
        // Let the router push everything into the full buffer, then open.
        while p.sources[0].stats.received.load(Relaxed) < 1000 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        gate.send(true).unwrap();
        drop(tx);
        let buffer = p.sinks[0].buffer.clone();
        let counters = p.sinks[0].counters.clone();
        p.finish().await;
        let o = outcome.await.unwrap();
        let delivered = slow.messages().len() as u64;
        let dropped = buffer.dropped();
        assert!(
            dropped > 0,
            "{when_full:?}: the buffer must have overflowed"
        );
        assert_eq!(delivered + dropped, 1000, "{when_full:?}");
        assert_eq!(counters.snapshot().sent, delivered);
        assert_eq!((o.delivered, o.dropped), (delivered, dropped));
    }
}

#[test]
fn wiring_errors_name_the_component_and_key() {
    let shape = Shape {
        sources: vec!["in".into(), "dup".into()],
        transforms: vec![
            ("dup".into(), vec!["in".into()]),
            ("t1".into(), vec!["t2".into()]),
            ("t2".into(), vec!["t1".into()]),
            ("lonely".into(), vec![]),
        ],
        sinks: vec![
            ("out".into(), vec!["nope".into()]),
            ("out2".into(), vec!["out".into()]),
        ],
    };
    assert_eq!(
        shape.check(),
        [
            "transforms.dup: the name `dup` is already used by sources.dup",
            "transforms.lonely.inputs: at least one input is required",
            "sinks.out.inputs: `nope` is not a source or transform",
            "sinks.out2.inputs: `out` is a sink, which has no output",
        ]
    );
    let cycle = Shape {
        sources: vec!["in".into()],
        transforms: vec![
            ("t1".into(), vec!["in".into(), "t2".into()]),
            ("t2".into(), vec!["t1".into()]),
        ],
        sinks: vec![("out".into(), vec!["t2".into()])],
    };
    assert_eq!(
        cycle.check(),
        ["transforms.t1.inputs: the transforms form a cycle through `t1`"]
    );
}

#[test]
fn sinks_fed_by_follows_transforms_and_fan_out() {
    let shape = Shape {
        sources: vec!["a".into(), "b".into()],
        transforms: vec![
            ("f".into(), vec!["a".into()]),
            ("g".into(), vec!["f".into(), "b".into()]),
        ],
        sinks: vec![
            ("direct".into(), vec!["a".into()]),
            ("after_f".into(), vec!["f".into()]),
            ("after_g".into(), vec!["g".into()]),
            ("only_b".into(), vec!["b".into()]),
        ],
    };
    assert!(shape.check().is_empty());
    assert_eq!(shape.sinks_fed_by("a"), ["direct", "after_f", "after_g"]);
    assert_eq!(shape.sinks_fed_by("b"), ["after_g", "only_b"]);
    assert!(shape.sinks_fed_by("nobody").is_empty());
}
