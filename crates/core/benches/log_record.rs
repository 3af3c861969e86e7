//! Log-record hot path: parse a 1000-record JSON array (as HTTP ingest does)
//! and encode the records back to JSON lines (as the file sink does).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::fmt::Write as _;
use switchyard_core::{Event, LogRecord, Payload};

/// The same ~170-byte record shape `switchyard bench ingest` posts.
fn body(records: usize) -> Vec<u8> {
    let mut s = String::from("[");
    for seq in 0..records {
        if seq > 0 {
            s.push(',');
        }
        let _ = write!(
            s,
            r#"{{"timestamp":"2026-11-22T09:00:00.{:06}Z","level":"info","message":"GET /api/v1/users/{} completed in {}ms","service":"api-gateway","host":"web-01","seq":{seq}}}"#,
            seq % 1_000_000,
            seq % 100_000,
            seq % 997
        );
    }
    s.push(']');
    s.into_bytes()
}

fn bench(c: &mut Criterion) {
    const N: usize = 1000;
    let input = body(N);
    let mut group = c.benchmark_group("log_record");
    group.throughput(Throughput::Elements(N as u64));
    group.bench_function("parse_1000", |b| {
        b.iter(|| {
            let recs: Vec<LogRecord> = serde_json::from_slice(&input).unwrap();
            recs
        })
    });
    let events: Vec<Event> = serde_json::from_slice::<Vec<LogRecord>>(&input)
        .unwrap()
        .into_iter()
        .map(|r| Event::new(Payload::Log(r)))
        .collect();
    let mut out = Vec::with_capacity(input.len() * 2);
    group.bench_function("encode_1000", |b| {
        b.iter(|| {
            out.clear();
            for e in &events {
                e.write_json(&mut out).unwrap();
                out.push(b'\n');
            }
            out.len()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
