//! The circuit breaker as a gate in front of the retry layer, through the
//! whole stack on paused time: an open breaker holds batches (it fails,
//! drops or dead-letters none of them), a retrying batch goes back to the
//! gate when the breaker opens, and half-open lets through at most
//! `half_open_max_calls` batches at once.

use async_trait::async_trait;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;
use switchyard_core::{Event, LogRecord, Sink, SinkError};
use switchyard_engine::delivery::{
    self, BreakerConfig, BreakerState, Concurrency, DeliveryConfig, Settle,
};
use switchyard_engine::{Counters, DeliveryStats};
use tokio::time::Instant;
use tower::{Service, ServiceExt};

/// Fails its first `failures` calls transiently; each later call takes
/// `latency`. Records how many calls were running at once, at most.
#[derive(Default)]
struct Scripted {
    failures: usize,
    latency: Duration,
    calls: AtomicUsize,
    running: AtomicUsize,
    most_running: AtomicUsize,
}

#[async_trait]
impl Sink for Scripted {
    async fn send(&self, _events: &[Event]) -> Result<(), SinkError> {
        let call = self.calls.fetch_add(1, SeqCst);
        if call < self.failures {
            return Err(SinkError::transient("503 from the test sink"));
        }
        let now = self.running.fetch_add(1, SeqCst) + 1;
        self.most_running.fetch_max(now, SeqCst);
        tokio::time::sleep(self.latency).await;
        self.running.fetch_sub(1, SeqCst);
        Ok(())
    }
}

fn config(half_open_max_calls: u32) -> DeliveryConfig {
    DeliveryConfig {
        max_retries: 5,
        retry_backoff: Duration::from_millis(100),
        concurrency: Concurrency::Fixed(8),
        circuit_breaker: BreakerConfig {
            enabled: true,
            failure_threshold: 2,
            success_threshold: 1,
            timeout: Duration::from_secs(10),
            half_open_max_calls,
        },
        ..DeliveryConfig::default()
    }
}

fn events(n: usize) -> Vec<Event> {
    (0..n)
        .map(|i| LogRecord::new(format!("{i}")).into())
        .collect()
}

struct Stack {
    service: delivery::DeliveryService,
    counters: Arc<Counters>,
    stats: Arc<DeliveryStats>,
}

fn stack(sink: Arc<Scripted>, config: &DeliveryConfig) -> Stack {
    let counters = Arc::new(Counters::default());
    let stats = Arc::new(DeliveryStats::default());
    let settle = Arc::new(Settle::new(
        "scripted",
        counters.clone(),
        stats.clone(),
        None,
    ));
    Stack {
        service: delivery::build(sink, config, settle, stats.clone()),
        counters,
        stats,
    }
}

/// Start delivering `n` events; the task ends once they are settled.
fn deliver(stack: &Stack, n: usize) -> tokio::task::JoinHandle<()> {
    let mut service = stack.service.clone();
    tokio::spawn(async move {
        let Ok(svc) = service.ready().await;
        let Ok(()) = svc.call(events(n)).await;
    })
}

#[tokio::test(start_paused = true)]
async fn an_open_breaker_holds_batches_at_the_gate_and_fails_none() {
    let sink = Arc::new(Scripted {
        failures: 2,
        ..Scripted::default()
    });
    let s = stack(sink.clone(), &config(1));
    let started = Instant::now();
    // The first batch's two attempts open the breaker; it goes back to the
    // gate with a retry to spare rather than spending it.
    let first = deliver(&s, 3);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(s.stats.breaker_state(), BreakerState::Open);
    // Batches arriving now wait at the gate: nothing is failed fast.
    let later: Vec<_> = (0..3).map(|_| deliver(&s, 2)).collect();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        sink.calls.load(SeqCst),
        2,
        "nothing reaches an open breaker's sink"
    );
    let c = s.counters.snapshot();
    assert_eq!((c.sent, c.dropped, c.dead_lettered), (0, 0, 0));

    first.await.unwrap();
    for task in later {
        task.await.unwrap();
    }
    assert!(
        started.elapsed() >= Duration::from_secs(10),
        "delivered only after the open timeout"
    );
    let c = s.counters.snapshot();
    assert_eq!((c.sent, c.dropped, c.dead_lettered), (9, 0, 0));
    let st = s.stats.snapshot();
    assert_eq!(st.breaker_state, BreakerState::Closed);
    assert_eq!(
        (st.breaker_opened, st.breaker_half_opened, st.breaker_closed),
        (1, 1, 1)
    );
    assert!(
        st.breaker_rejected >= 4,
        "every batch waited at the gate: {st:?}"
    );
    assert_eq!(
        sink.calls.load(SeqCst),
        6,
        "2 failures, then one call per batch"
    );
    assert_eq!(st.retries, 2, "the first batch's second and third attempts");
}

#[tokio::test(start_paused = true)]
async fn half_open_lets_through_at_most_max_calls_batches_at_once() {
    let sink = Arc::new(Scripted {
        failures: 2,
        latency: Duration::from_secs(1),
        ..Scripted::default()
    });
    let mut cfg = config(2);
    // Several successes keep the breaker half-open for a while.
    cfg.circuit_breaker.success_threshold = 4;
    let s = stack(sink.clone(), &cfg);
    let first = deliver(&s, 1);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(s.stats.breaker_state(), BreakerState::Open);
    let later: Vec<_> = (0..5).map(|_| deliver(&s, 1)).collect();
    first.await.unwrap();
    for task in later {
        task.await.unwrap();
    }
    assert_eq!(
        sink.most_running.load(SeqCst),
        2,
        "two trial calls at once, never more, never serialized"
    );
    assert_eq!(s.counters.snapshot().sent, 6);
    assert_eq!(s.stats.breaker_state(), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_batch_fails_only_by_its_own_attempts_not_by_the_gate() {
    // No retries at all: the batch whose attempt opens the breaker fails for
    // good (its own attempt failed); the ones that waited at the gate are
    // delivered.
    let sink = Arc::new(Scripted {
        failures: 2,
        ..Scripted::default()
    });
    let mut cfg = config(1);
    cfg.max_retries = 0;
    let s = stack(sink.clone(), &cfg);
    deliver(&s, 1).await.unwrap();
    deliver(&s, 1).await.unwrap();
    assert_eq!(s.stats.breaker_state(), BreakerState::Open);
    let waiting: Vec<_> = (0..3).map(|_| deliver(&s, 1)).collect();
    for task in waiting {
        task.await.unwrap();
    }
    let c = s.counters.snapshot();
    assert_eq!((c.sent, c.dropped), (3, 2));
}
