//! The cost of the delivery stack: the same workload (100-event batches of
//! log records into the blackhole sink) through a bare `Sink::send` and
//! through the full stack — rate limit (high enough never to wait),
//! concurrency (adaptive, or fixed at 4), retry, circuit breaker, timeout —
//! with events settled and counted as in the dispatch loop.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use std::sync::Arc;
use std::time::Duration;
use switchyard_core::{Event, LogRecord, Sink};
use switchyard_engine::delivery::{self, Concurrency, DeliveryConfig, RateLimit, RateUnit, Settle};
use switchyard_engine::{Counters, DeliveryStats};
use switchyard_sinks::blackhole::Blackhole;
use tower::{Service, ServiceExt};

const BATCH: usize = 100;

fn batch() -> Vec<Event> {
    (0..BATCH)
        .map(|i| LogRecord::new(format!("event {i}")).into())
        .collect()
}

fn full_stack(concurrency: Concurrency) -> DeliveryConfig {
    DeliveryConfig {
        timeout: Some(Duration::from_secs(30)),
        rate_limit: Some(RateLimit {
            per_second: u32::MAX,
            unit: RateUnit::Events,
        }),
        concurrency,
        ..DeliveryConfig::default()
    }
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime");
    let mut group = c.benchmark_group("delivery");
    group.throughput(Throughput::Elements(BATCH as u64));

    let sink: Arc<dyn Sink> = Arc::new(Blackhole);
    group.bench_function("bare_sink", |b| {
        b.to_async(&rt).iter_batched(
            batch,
            |events| {
                let sink = sink.clone();
                async move { sink.send(&events).await.expect("blackhole accepts") }
            },
            BatchSize::SmallInput,
        )
    });

    let counters = Arc::new(Counters::default());
    for (name, concurrency) in [
        ("full_stack_adaptive", Concurrency::Adaptive),
        ("full_stack_fixed", Concurrency::Fixed(4)),
    ] {
        let stats = Arc::new(DeliveryStats::default());
        let settle = Arc::new(Settle::new(
            "blackhole",
            counters.clone(),
            stats.clone(),
            None,
        ));
        let stack = delivery::build(sink.clone(), &full_stack(concurrency), settle, stats);
        group.bench_function(name, |b| {
            b.to_async(&rt).iter_batched(
                batch,
                |events| {
                    let mut stack = stack.clone();
                    async move {
                        let Ok(svc) = stack.ready().await;
                        let Ok(()) = svc.call(events).await;
                    }
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
    assert!(counters.snapshot().sent > 0);
}

criterion_group!(benches, bench);
criterion_main!(benches);
