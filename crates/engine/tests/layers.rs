//! The rate-limit and timeout layers through the whole stack.

use async_trait::async_trait;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;
use switchyard_core::{Event, LogRecord, Sink, SinkError};
use switchyard_engine::delivery::{
    self, BreakerConfig, DeliveryConfig, RateLimit, RateUnit, Settle,
};
use switchyard_engine::{Counters, DeliveryStats};
use tower::{Service, ServiceExt};

/// Counts calls; hangs forever when `hang` is set.
#[derive(Default)]
struct Slow {
    calls: AtomicUsize,
    hang: bool,
}

#[async_trait]
impl Sink for Slow {
    async fn send(&self, _events: &[Event]) -> Result<(), SinkError> {
        self.calls.fetch_add(1, SeqCst);
        if self.hang {
            std::future::pending::<()>().await;
        }
        Ok(())
    }
}

fn no_breaker() -> BreakerConfig {
    BreakerConfig {
        enabled: false,
        ..BreakerConfig::default()
    }
}

async fn deliver(stack: &mut delivery::DeliveryService, n: usize) {
    let events = (0..n)
        .map(|i| LogRecord::new(format!("{i}")).into())
        .collect();
    let Ok(svc) = stack.ready().await;
    let Ok(()) = svc.call(events).await;
}

#[tokio::test]
async fn a_second_request_within_the_second_waits_for_the_rate_limiter() {
    let sink = Arc::new(Slow::default());
    let counters = Arc::new(Counters::default());
    let stats = Arc::new(DeliveryStats::default());
    let settle = Arc::new(Settle::new("slow", counters.clone(), stats.clone(), None));
    let config = DeliveryConfig {
        rate_limit: Some(RateLimit {
            per_second: 1,
            unit: RateUnit::Requests,
        }),
        circuit_breaker: no_breaker(),
        ..DeliveryConfig::default()
    };
    let mut stack = delivery::build(sink.clone(), &config, settle, stats.clone());
    deliver(&mut stack, 5).await;
    assert_eq!(
        stats.snapshot().rate_limited_waits,
        0,
        "the bucket starts full"
    );
    deliver(&mut stack, 5).await;
    assert_eq!(stats.snapshot().rate_limited_waits, 1);
    assert_eq!((sink.calls.load(SeqCst), counters.snapshot().sent), (2, 10));
}

#[tokio::test(start_paused = true)]
async fn every_attempt_gets_its_own_deadline_and_the_last_one_gives_up() {
    let sink = Arc::new(Slow {
        hang: true,
        ..Slow::default()
    });
    let counters = Arc::new(Counters::default());
    let stats = Arc::new(DeliveryStats::default());
    let settle = Arc::new(Settle::new("slow", counters.clone(), stats.clone(), None));
    let config = DeliveryConfig {
        max_retries: 2,
        retry_backoff: Duration::from_millis(10),
        timeout: Some(Duration::from_secs(1)),
        circuit_breaker: no_breaker(),
        ..DeliveryConfig::default()
    };
    let mut stack = delivery::build(sink.clone(), &config, settle, stats.clone());
    deliver(&mut stack, 3).await;
    let s = stats.snapshot();
    assert_eq!((s.timeouts, s.retries), (3, 2));
    assert_eq!(sink.calls.load(SeqCst), 3);
    let c = counters.snapshot();
    assert_eq!((c.sent, c.dropped), (0, 3), "no queue: dropped and counted");
}

/// Measured, not tightly timed: over about two seconds of real time, events
/// beyond the initial bucket go through at no more than the configured rate
/// (+10 %). A slow machine can only make the measured rate lower, so only the
/// upper bound is asserted; the figure is printed for the record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_limit_holds_within_ten_percent_over_seconds() {
    const RATE: u32 = 1000;
    const BATCH: usize = 50;
    const EVENTS: usize = 3000;
    let sink = Arc::new(Slow::default());
    let counters = Arc::new(Counters::default());
    let stats = Arc::new(DeliveryStats::default());
    let settle = Arc::new(Settle::new("slow", counters.clone(), stats.clone(), None));
    let config = DeliveryConfig {
        rate_limit: Some(RateLimit {
            per_second: RATE,
            unit: RateUnit::Events,
        }),
        circuit_breaker: no_breaker(),
        ..DeliveryConfig::default()
    };
    let mut stack = delivery::build(sink.clone(), &config, settle, stats.clone());
    // Empty the bucket (it starts with one second's worth), then measure.
    for _ in 0..(RATE as usize / BATCH) {
        deliver(&mut stack, BATCH).await;
    }
    let started = std::time::Instant::now();
    for _ in 0..(EVENTS / BATCH) {
        deliver(&mut stack, BATCH).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    // The first measured batch may still find up to one batch of tokens.
    let rate = (EVENTS - BATCH) as f64 / elapsed;
    eprintln!("rate limit {RATE}/s: measured {rate:.0} events/s over {elapsed:.2} s");
    assert!(
        rate <= RATE as f64 * 1.10,
        "measured {rate:.0} events/s against a limit of {RATE}"
    );
    assert_eq!(counters.snapshot().sent as usize, EVENTS + RATE as usize);
}

/// Waiters are served in the order they came: a batch that needs the whole
/// bucket is not overtaken by a later one that needs a single token (which,
/// on its own, would be ready fifty times sooner).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_waiters_are_served_first_come_first_served() {
    let stats = Arc::new(DeliveryStats::default());
    let rate = delivery::RateLimitLayer::new(
        Some(RateLimit {
            per_second: 50,
            unit: RateUnit::Events,
        }),
        stats.clone(),
    );
    rate.admit(50).await; // the whole bucket
    let order = Arc::new(std::sync::Mutex::new(Vec::new()));
    let waiter = |events: usize, name: &'static str| {
        let (rate, order) = (rate.clone(), order.clone());
        tokio::spawn(async move {
            rate.admit(events).await;
            order.lock().unwrap().push(name);
        })
    };
    let big = waiter(50, "big");
    while stats.snapshot().rate_limited_waits < 1 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    let small = waiter(1, "small");
    big.await.unwrap();
    small.await.unwrap();
    assert_eq!(*order.lock().unwrap(), ["big", "small"]);
    assert_eq!(stats.snapshot().rate_limited_waits, 2);
}
