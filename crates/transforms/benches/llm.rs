//! Transformer throughput on a realistic mix: chat completions of 1–2 KB
//! (request + response), one in five streamed as Server-Sent Events.
//!
//! cargo bench -p switchyard-transforms --bench llm

mod common;

use common::exchange;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use switchyard_core::HttpExchange;
use switchyard_transforms::llm::{DefaultTransformer, LlmConfig, Transformer};

fn transform_mix(c: &mut Criterion) {
    let exchanges: Vec<HttpExchange> = (0..1000).map(exchange).collect();
    let t = DefaultTransformer::new(LlmConfig::default());
    let mut group = c.benchmark_group("llm_transform");
    group.throughput(Throughput::Elements(exchanges.len() as u64));
    group.bench_function("mix_1000_20pct_streamed", |b| {
        b.iter(|| {
            for x in &exchanges {
                // The engine's path: the payload written as its document.
                std::hint::black_box(t.document(x).expect("POST is kept"));
            }
        })
    });
    group.finish();

    // The two halves of the mix on their own, to see where time goes.
    let mut group = c.benchmark_group("llm_transform_parts");
    for (name, streamed) in [("json_only", false), ("sse_only", true)] {
        let part: Vec<&HttpExchange> = exchanges
            .iter()
            .enumerate()
            .filter(|(i, _)| i.is_multiple_of(5) == streamed)
            .map(|(_, x)| x)
            .collect();
        group.throughput(Throughput::Elements(part.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| {
                for x in &part {
                    std::hint::black_box(t.document(x));
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, transform_mix);
criterion_main!(benches);
