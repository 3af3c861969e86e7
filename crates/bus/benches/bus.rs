//! In-memory bus vs a raw tokio channel: 1 publisher → 1 and → 4 subscribers.
//! Each iteration publishes N events and ends when every subscriber has
//! received all of them (buffers sized so nothing is dropped: this measures
//! the cost of the bus itself, not of losing events).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::time::{Duration, Instant};
use switchyard_bus::MemoryBus;
use switchyard_core::{Event, EventBus, LogRecord};
use tokio::sync::mpsc;

const N: usize = 10_000;

fn events() -> Vec<Event> {
    (0..N)
        .map(|i| LogRecord::new(format!("event {i}")).into())
        .collect()
}

fn drain(mut rx: mpsc::Receiver<Event>) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        let mut n = 0;
        while rx.blocking_recv().is_some() {
            n += 1;
        }
        n
    })
}

fn raw_channel(subscribers: usize, iters: u64) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let evs = events();
        let (txs, handles): (Vec<_>, Vec<_>) = (0..subscribers)
            .map(|_| {
                let (tx, rx) = mpsc::channel(N);
                (tx, drain(rx))
            })
            .unzip();
        let start = Instant::now();
        for e in evs {
            let (last, rest) = txs.split_last().expect("at least one subscriber");
            for tx in rest {
                let _ = tx.try_send(e.clone());
            }
            let _ = last.try_send(e);
        }
        drop(txs);
        for h in handles {
            assert_eq!(h.join().expect("drain thread"), N);
        }
        total += start.elapsed();
    }
    total
}

fn memory_bus(subscribers: usize, iters: u64) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let evs = events();
        let bus = MemoryBus::new(N);
        let handles: Vec<_> = (0..subscribers)
            .map(|_| {
                let mut sub = bus.subscribe();
                std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .build()
                        .expect("runtime");
                    rt.block_on(async {
                        let mut n = 0;
                        while sub.recv().await.is_some() {
                            n += 1;
                        }
                        n
                    })
                })
            })
            .collect();
        let start = Instant::now();
        for e in evs {
            bus.publish(e);
        }
        bus.stop();
        for h in handles {
            assert_eq!(h.join().expect("subscriber thread"), N);
        }
        total += start.elapsed();
    }
    total
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("fanout");
    g.throughput(Throughput::Elements(N as u64));
    g.sample_size(20);
    g.measurement_time(Duration::from_secs(3));
    for subs in [1, 4] {
        g.bench_with_input(BenchmarkId::new("tokio_mpsc", subs), &subs, |b, &s| {
            b.iter_custom(|iters| raw_channel(s, iters))
        });
        g.bench_with_input(BenchmarkId::new("memory_bus", subs), &subs, |b, &s| {
            b.iter_custom(|iters| memory_bus(s, iters))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
