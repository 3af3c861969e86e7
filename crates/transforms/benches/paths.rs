//! Field paths on the hot path: a filter condition and a remap chain (set,
//! rename, delete through paths) applied to 1000 log records.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::fmt::Write as _;
use switchyard_core::{Event, LogRecord, Transform};
use switchyard_transforms::build_chain;

const N: usize = 1000;

fn events() -> Vec<Event> {
    (0..N)
        .map(|seq| {
            let mut json = String::new();
            let _ = write!(
                json,
                r#"{{"timestamp":"2026-11-22T09:00:00Z","level":"{}","message":"GET /api/v1/users/{seq} timeout","labels":{{"env":"prod"}},"user":{{"id":{seq},"name":"u{seq}"}},"password":"x","seq":{seq}}}"#,
                if seq % 3 == 0 { "error" } else { "info" }
            );
            Event::from(serde_json::from_str::<LogRecord>(&json).expect("valid record"))
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let events = events();
    let configs: Vec<serde_json::Value> = serde_json::from_str(
        r#"[
          {"type": "filter", "condition": "level == \"error\" or (labels.env != \"dev\" and message =~ \"timeout\")"},
          {"type": "remap", "ops": [
            {"rename": {"user.id": "user_id"}},
            {"set": {"labels.stage": "prod", "meta.seen": true}},
            {"delete": ["password"]}
          ]}
        ]"#,
    )
    .expect("valid transforms");
    let chain = build_chain(&configs).expect("transforms build");
    let mut group = c.benchmark_group("paths");
    group.throughput(Throughput::Elements(N as u64));
    group.bench_function("filter_remap_1000", |b| {
        b.iter(|| {
            let mut kept = 0;
            for e in &events {
                let mut e = e.clone();
                if chain.apply(&mut e) == switchyard_core::Verdict::Keep {
                    kept += 1;
                }
            }
            kept
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
