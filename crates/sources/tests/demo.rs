//! The demo source: how many events, what they look like, how fast.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchyard_core::{Event, Payload, Transform, Verdict};
use switchyard_engine::{intake, IntakeReceiver};
use switchyard_sources::demo::{run, DemoConfig, DemoCounters, DemoKind};
use switchyard_transforms::llm::{LlmConfig, LlmTransform};
use tokio::sync::watch;

/// Everything the source writes until the queue is empty and closed.
async fn drain(mut rx: IntakeReceiver) -> Vec<Event> {
    tokio::time::timeout(Duration::from_secs(30), async {
        let mut all = Vec::new();
        while let Some(chunk) = rx.recv().await {
            all.extend(chunk);
        }
        all
    })
    .await
    .expect("the demo source finishes")
}

async fn generate(kind: DemoKind, rate: u64, count: u64) -> (Vec<Event>, Duration) {
    let (tx, rx) = intake(500);
    let counters = Arc::new(DemoCounters::default());
    let (_stop_tx, stop) = watch::channel(false);
    let config = DemoConfig {
        kind,
        rate,
        count: Some(count),
        seed: 42,
    };
    let started = Instant::now();
    let task = tokio::spawn(run(config, tx, counters.clone(), stop));
    let events = drain(rx).await;
    task.await.unwrap();
    assert_eq!(counters.events.load(Relaxed), count);
    (events, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_stop_at_the_count_with_levels_services_and_trace_ids() {
    let (events, _) = generate(DemoKind::Logs, 0, 2500).await;
    assert_eq!(events.len(), 2500);
    let mut levels = std::collections::BTreeSet::new();
    for e in &events {
        let Payload::Log(r) = &e.payload else {
            panic!("a log record")
        };
        levels.insert(r.level.clone().unwrap());
        assert!(r.labels.contains_key("service"));
        assert!(r.fields.get("trace_id").is_some());
        assert!(r.fields.get("latency_ms").is_some());
    }
    // 2500 draws of the level mix see every level.
    assert_eq!(levels.len(), 4, "{levels:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn llm_exchanges_become_llm_calls() {
    let (events, _) = generate(DemoKind::Llm, 0, 300).await;
    assert_eq!(events.len(), 300);
    let transform = LlmTransform::default_with(LlmConfig::default());
    for mut e in events {
        assert!(matches!(e.payload, Payload::Http(_)));
        assert_eq!(transform.apply(&mut e), Verdict::Keep);
        let Payload::Json(doc) = &e.payload else {
            panic!("the transformer writes a payload")
        };
        let v: serde_json::Value = serde_json::from_str(doc.get()).unwrap();
        assert_eq!(v["type"], "llm", "{v}");
        assert!(v["input"].is_array() || v["input"].is_object(), "{v}");
        assert!(!v["output"].is_null(), "{v}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_is_roughly_respected() {
    // 200 events at 400/s is due after 0.5 s. Measured and printed; only a
    // source ignoring its rate entirely (finishing near-instantly) fails.
    let (events, took) = generate(DemoKind::Logs, 400, 200).await;
    assert_eq!(events.len(), 200);
    println!("200 events at 400/s took {took:?}");
    assert!(took >= Duration::from_millis(400), "{took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_ends_an_endless_source() {
    let (tx, mut rx) = intake(100);
    let counters = Arc::new(DemoCounters::default());
    let (stop_tx, stop) = watch::channel(false);
    let config = DemoConfig {
        kind: DemoKind::Logs,
        rate: 0,
        count: None,
        seed: 1,
    };
    let task = tokio::spawn(run(config, tx, counters.clone(), stop));
    // The queue fills and the source waits on it; stop must still end it.
    let first = rx.recv().await.unwrap();
    assert!(!first.is_empty());
    stop_tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("stopped")
        .unwrap();
}
