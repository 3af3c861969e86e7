//! Acknowledgement hot path: one batch of 1000 events, each with a token
//! that is resolved and dropped, then the outcome received — what every
//! acknowledging source pays per read. Counting batches (file tail, HTTP
//! ingest, Docker, LIST) against indexed ones (Redis Streams).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use switchyard_core::{AckBatch, Fate};

const N: usize = 1000;

fn counting() -> u64 {
    let (batch, mut rx) = AckBatch::new();
    let mut tokens: Vec<_> = (0..N).map(|_| batch.token()).collect();
    drop(batch);
    for t in &mut tokens {
        t.resolve(Fate::Delivered);
    }
    drop(black_box(tokens));
    rx.try_recv().expect("sent on the last drop").delivered
}

fn indexed() -> u64 {
    let (batch, mut rx) = switchyard_core::IndexedAckBatch::new(N);
    let mut tokens: Vec<_> = (0..N).map(|i| batch.token(i)).collect();
    drop(batch);
    for t in &mut tokens {
        t.resolve(Fate::Delivered);
    }
    drop(black_box(tokens));
    rx.try_recv()
        .expect("sent on the last drop")
        .outcome
        .delivered
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("ack");
    group.throughput(Throughput::Elements(N as u64));
    group.bench_function("counting batch of 1000", |b| b.iter(counting));
    group.bench_function("indexed batch of 1000", |b| b.iter(indexed));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
