//! Transformer throughput per core, in CPU time rather than wall time: on a
//! shared machine other processes steal wall time, not this thread's CPU
//! time, so events per CPU-second is the number that says what one core does.
//! Reads the thread's on-CPU nanoseconds from `/proc/thread-self/schedstat`
//! (Linux only).
//!
//! cargo bench -p switchyard-transforms --bench llm_cpu

mod common;

use common::exchange;
use std::time::Instant;
use switchyard_core::HttpExchange;
use switchyard_transforms::llm::{DefaultTransformer, LlmConfig, Transformer};

fn cpu_ns() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing
    // and should stay quick.
    let rounds = if std::env::args().any(|a| a == "--bench") {
        300
    } else {
        1
    };
    // `LLM_CPU_PART=json` or `=sse` measures one half of the mix alone.
    let part = std::env::var("LLM_CPU_PART").unwrap_or_default();
    let exchanges: Vec<HttpExchange> = (0..1000)
        .filter(|i: &usize| match part.as_str() {
            "json" => !i.is_multiple_of(5),
            "sse" => i.is_multiple_of(5),
            _ => true,
        })
        .map(exchange)
        .collect();
    let t = DefaultTransformer::new(LlmConfig::default());
    let run = |n: usize| {
        for _ in 0..n {
            for x in &exchanges {
                // The engine's path: the payload written as its document.
                std::hint::black_box(t.document(x).expect("POST is kept"));
            }
        }
    };
    run(rounds.min(20)); // warm up
    let (Some(cpu0), wall0) = (cpu_ns(), Instant::now()) else {
        eprintln!("no /proc/thread-self/schedstat: cannot measure CPU time here");
        return;
    };
    run(rounds);
    let cpu = cpu_ns().unwrap_or(cpu0) - cpu0;
    let wall = wall0.elapsed();
    let events = (rounds * exchanges.len()) as f64;
    let bytes: usize = exchanges
        .iter()
        .map(|x| {
            x.request_body.as_ref().map_or(0, |b| b.len())
                + x.response_body.as_ref().map_or(0, |b| b.len())
        })
        .sum();
    println!(
        "llm_transform {} ({} exchanges, {:.0} B bodies on average): {events} events, {:.0} events per CPU-second, {:.0} events per wall-second",
        if part.is_empty() { "mix 20% streamed" } else { &part },
        exchanges.len(),
        bytes as f64 / exchanges.len() as f64,
        events / (cpu as f64 / 1e9),
        events / wall.as_secs_f64(),
    );
}
