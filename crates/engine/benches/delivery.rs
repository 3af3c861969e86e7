//! The cost of the delivery stack: the same workload (100-event batches of
//! log records into the blackhole sink) through a bare `Sink::send` and
//! through the full stack — rate limit (high enough never to wait),
//! concurrency (adaptive, or fixed at 4), circuit breaker, retry, timeout.
//! Both sides settle the events as the dispatch loop does (`Settle::delivered`:
//! every event resolved, the `sent` counter added to), so the comparison is
//! of the stack alone.
//!
//! Besides criterion (the default), two modes for load-independent or
//! load-paired measurements, chosen by `DELIVERY_BENCH`:
//!
//! - `count:<variant>:<iterations>` runs one variant (`bare`, `adaptive`,
//!   `fixed`) a fixed number of times and exits: run it under
//!   `valgrind --tool=callgrind` with two iteration counts, and the difference
//!   of the totals divided by the difference of the counts is the instruction
//!   count of one batch, setup excluded.
//! - `alternate:<rounds>:<iterations>` times the variants in turn, round after
//!   round, so that each round's ratio compares runs made under the same load.

use criterion::{BatchSize, Criterion, Throughput};
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchyard_core::{Event, LogRecord, Sink};
use switchyard_engine::delivery::{self, Concurrency, DeliveryConfig, RateLimit, RateUnit, Settle};
use switchyard_engine::{Counters, DeliveryStats};
use switchyard_sinks::blackhole::Blackhole;
use tokio::runtime::Runtime;
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

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime")
}

/// One way of delivering a batch.
#[derive(Clone)]
enum Variant {
    /// `Sink::send`, then the events settled as delivered.
    Bare(Arc<dyn Sink>, Arc<Settle>),
    /// The whole stack.
    Stack(delivery::DeliveryService),
}

impl Variant {
    async fn deliver(&mut self, events: Vec<Event>) {
        match self {
            Variant::Bare(sink, settle) => {
                sink.send(&events).await.expect("blackhole accepts");
                settle.delivered(events);
            }
            Variant::Stack(stack) => {
                let Ok(svc) = stack.ready().await;
                let Ok(()) = svc.call(events).await;
            }
        }
    }
}

fn settle(counters: &Arc<Counters>) -> Arc<Settle> {
    let stats = Arc::new(DeliveryStats::default());
    Arc::new(Settle::new("blackhole", counters.clone(), stats, None))
}

/// The three variants, by name, counting into `counters`.
fn variants(counters: &Arc<Counters>) -> Vec<(&'static str, Variant)> {
    let sink: Arc<dyn Sink> = Arc::new(Blackhole);
    let mut out = vec![("bare_sink", Variant::Bare(sink.clone(), settle(counters)))];
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
        out.push((name, Variant::Stack(stack)));
    }
    out
}

fn bench(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("delivery");
    group.throughput(Throughput::Elements(BATCH as u64));
    let counters = Arc::new(Counters::default());
    for (name, variant) in variants(&counters) {
        group.bench_function(name, |b| {
            b.to_async(&rt).iter_batched(
                batch,
                |events| {
                    let mut variant = variant.clone();
                    async move { variant.deliver(events).await }
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
    assert!(counters.snapshot().sent > 0);
}

/// Polls the delivery of one batch through a function that is never
/// inlined, so that `callgrind --toggle-collect='*Measured*poll*'` counts the
/// delivery (send, settling, dropping the events) and nothing else.
struct Measured<'a, F>(std::pin::Pin<&'a mut F>);

impl<F: std::future::Future> std::future::Future for Measured<'_, F> {
    type Output = F::Output;

    #[inline(never)]
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<F::Output> {
        self.0.as_mut().poll(cx)
    }
}

/// `count:<variant>:<iterations>`: the batches are built before the loop;
/// under callgrind, collect only inside [`Measured`] (see there).
fn count(variant: &str, iterations: u64) {
    let counters = Arc::new(Counters::default());
    let name = match variant {
        "bare" => "bare_sink",
        "adaptive" => "full_stack_adaptive",
        "fixed" => "full_stack_fixed",
        other => panic!("unknown variant {other:?}: bare, adaptive or fixed"),
    };
    let (_, mut v) = variants(&counters)
        .into_iter()
        .find(|(n, _)| *n == name)
        .expect("a known variant");
    let batches: Vec<Vec<Event>> = (0..iterations).map(|_| batch()).collect();
    runtime().block_on(async {
        for events in batches {
            let delivery = std::pin::pin!(v.deliver(events));
            Measured(delivery).await;
        }
    });
    assert_eq!(counters.snapshot().sent, iterations * BATCH as u64);
    println!("{name}: {iterations} batches delivered");
}

/// `alternate:<rounds>:<iterations>`: each round times every variant over
/// `iterations` batches (batch building excluded), one after the other.
fn alternate(rounds: u32, iterations: usize) {
    let counters = Arc::new(Counters::default());
    let rt = runtime();
    let mut variants = variants(&counters);
    println!(
        "round  {:>22} {:>22} {:>22}  full/bare",
        "bare_sink", "full_stack_adaptive", "full_stack_fixed"
    );
    for round in 1..=rounds {
        let mut rates = Vec::new();
        for (_, v) in variants.iter_mut() {
            let batches: Vec<Vec<Event>> = (0..iterations).map(|_| batch()).collect();
            let elapsed = rt.block_on(async {
                let started = Instant::now();
                for events in batches {
                    v.deliver(events).await;
                }
                started.elapsed()
            });
            rates.push((iterations * BATCH) as f64 / elapsed.as_secs_f64());
        }
        println!(
            "{round:>5}  {:>16.2} M ev/s {:>16.2} M ev/s {:>16.2} M ev/s  {:.2}× {:.2}×",
            rates[0] / 1e6,
            rates[1] / 1e6,
            rates[2] / 1e6,
            rates[1] / rates[0],
            rates[2] / rates[0]
        );
    }
}

fn main() {
    match std::env::var("DELIVERY_BENCH") {
        Ok(mode) => {
            let parts: Vec<&str> = mode.split(':').collect();
            match parts.as_slice() {
                ["count", variant, n] => count(variant, n.parse().expect("an iteration count")),
                ["alternate", rounds, n] => alternate(
                    rounds.parse().expect("a round count"),
                    n.parse().expect("an iteration count"),
                ),
                _ => panic!("DELIVERY_BENCH: count:<variant>:<n> or alternate:<rounds>:<n>"),
            }
        }
        Err(_) => {
            let mut c = Criterion::default().configure_from_args();
            bench(&mut c);
            c.final_summary();
        }
    }
}
