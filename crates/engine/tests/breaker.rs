//! The delivery stack against real HTTP servers on loopback: a sink whose
//! server answers 503 for a window and then 200 loses nothing, its breaker
//! goes closed → open → half-open → closed, and a second, healthy sink keeps
//! receiving meanwhile.

use axum::body::Bytes;
use axum::http::StatusCode;
use axum::Router;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use switchyard_core::{Event, LogRecord, SinkConfig};
use switchyard_engine::delivery::{BreakerConfig, BreakerState, Concurrency, DeliveryConfig};
use switchyard_engine::{intake, run_sink, Counters, DeliveryStats, SinkPolicy, Stop};

/// A server that records the `message` of every event it accepts, and answers
/// 503 while `failing` is set.
#[derive(Clone, Default)]
struct Server {
    failing: Arc<AtomicBool>,
    accepted: Arc<Mutex<BTreeSet<String>>>,
}

impl Server {
    async fn start(failing: bool) -> (Self, String) {
        let server = Server::default();
        server.failing.store(failing, SeqCst);
        let state = server.clone();
        let app = Router::new().fallback(move |body: Bytes| {
            let state = state.clone();
            async move {
                if state.failing.load(SeqCst) {
                    return StatusCode::SERVICE_UNAVAILABLE;
                }
                let events: Vec<serde_json::Value> =
                    serde_json::from_slice(&body).expect("a JSON array of events");
                let mut accepted = state.accepted.lock().unwrap();
                for e in events {
                    accepted.insert(e["message"].as_str().expect("a message").to_string());
                }
                StatusCode::OK
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/ingest", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (server, url)
    }

    fn accepted(&self) -> usize {
        self.accepted.lock().unwrap().len()
    }
}

fn pipeline(name: &str) -> SinkPolicy {
    SinkPolicy {
        batch_size: 10,
        flush_interval: Duration::from_millis(20),
        delivery: DeliveryConfig {
            // Enough retries to outlive the window: zero loss is the point.
            max_retries: 1000,
            retry_backoff: Duration::from_millis(20),
            timeout: Some(Duration::from_secs(5)),
            concurrency: Concurrency::Fixed(2),
            circuit_breaker: BreakerConfig {
                enabled: true,
                failure_threshold: 3,
                success_threshold: 2,
                timeout: Duration::from_millis(200),
                half_open_max_calls: 1,
            },
            ..DeliveryConfig::default()
        },
        sink_name: name.into(),
        dlq: None,
    }
}

fn events(prefix: &str, n: usize) -> Vec<Event> {
    (0..n)
        .map(|i| LogRecord::new(format!("{prefix}-{i}")).into())
        .collect()
}

async fn wait_for(what: &str, cond: impl Fn() -> bool) {
    for _ in 0..2000 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("gave up waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_503_window_loses_nothing_and_the_breaker_cycles_while_a_healthy_sink_keeps_receiving() {
    let (flaky, flaky_url) = Server::start(true).await;
    let (healthy, healthy_url) = Server::start(false).await;
    let registry = switchyard_sinks::builtin();
    let sink = |url: &str| {
        let cfg: SinkConfig = [("endpoint", url)].into_iter().collect();
        Arc::from(registry.build("http", &cfg).expect("http sink"))
    };

    let (flaky_tx, flaky_rx) = intake(1000);
    let (healthy_tx, healthy_rx) = intake(1000);
    let flaky_counters = Arc::new(Counters::default());
    let healthy_counters = Arc::new(Counters::default());
    let flaky_stats = Arc::new(DeliveryStats::default());
    let flaky_engine = tokio::spawn(run_sink(
        flaky_rx,
        sink(&flaky_url),
        pipeline("flaky"),
        flaky_counters.clone(),
        flaky_stats.clone(),
        Stop::default(),
    ));
    let healthy_engine = tokio::spawn(run_sink(
        healthy_rx,
        sink(&healthy_url),
        pipeline("healthy"),
        healthy_counters.clone(),
        Arc::new(DeliveryStats::default()),
        Stop::default(),
    ));

    flaky_tx.send(events("f", 50)).await.unwrap();
    healthy_tx.send(events("h", 50)).await.unwrap();
    wait_for("the flaky sink's breaker to open", || {
        flaky_stats.snapshot().breaker_opened >= 1
    })
    .await;
    wait_for("the healthy sink to receive everything", || {
        healthy.accepted() == 50
    })
    .await;
    assert_eq!(flaky.accepted(), 0, "the flaky sink is still failing");

    flaky.failing.store(false, SeqCst);
    drop((flaky_tx, healthy_tx));
    tokio::time::timeout(Duration::from_secs(60), flaky_engine)
        .await
        .expect("the flaky engine drains")
        .unwrap();
    healthy_engine.await.unwrap();

    assert_eq!(
        flaky.accepted(),
        50,
        "every event arrived once the window closed"
    );
    let c = flaky_counters.snapshot();
    assert_eq!(
        (c.received, c.sent, c.dropped, c.dead_lettered),
        (50, 50, 0, 0)
    );
    let s = flaky_stats.snapshot();
    assert_eq!(s.breaker_state, BreakerState::Closed);
    assert!(s.breaker_opened >= 1, "{s:?}");
    assert!(s.breaker_half_opened >= 1, "{s:?}");
    assert!(s.breaker_closed >= 1, "{s:?}");
    assert!(
        s.breaker_rejected >= 1,
        "calls waited at the gate while open: {s:?}"
    );
    assert!(s.retries >= 3, "{s:?}");
    assert_eq!(healthy_counters.snapshot().sent, 50);
}
