//! The Lunary sink against a local server that answers at once, compared with
//! the most that server and client do with the same request body posted raw:
//! the difference is what reading payloads and encoding calls costs. Also the
//! server's own maximum request rate (empty requests), to compare the sink's
//! calls per second with.
//!
//! cargo bench -p switchyard-sinks --bench lunary

use axum::body::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::sync::{Arc, Mutex};
use switchyard_core::{Event, HttpExchange, SinkConfig, Transform};
use switchyard_transforms::llm::{LlmConfig, LlmTransform};

const CALLS: usize = 100;

fn calls() -> Vec<Event> {
    let t = LlmTransform::default_with(LlmConfig::default());
    (0..CALLS)
        .map(|i| {
            let content = "lorem ipsum dolor sit amet ".repeat(20);
            let x = HttpExchange {
                request_id: format!("bench-{i}"),
                method: "POST".into(),
                path: "/v1/chat/completions".into(),
                status: 200,
                duration_ns: 900_000_000,
                request_body: Some(format!(r#"{{"model":"gpt-4o-mini","messages":[{{"role":"user","content":"{content}"}}],"temperature":0.5,"user":"u-{i}"}}"#).into()),
                response_body: Some(format!(r#"{{"id":"c{i}","object":"chat.completion","model":"gpt-4o-mini","choices":[{{"index":0,"message":{{"role":"assistant","content":"{content}"}},"finish_reason":"stop"}}],"usage":{{"prompt_tokens":120,"completion_tokens":120,"total_tokens":240}}}}"#).into()),
                timestamp: Some(time::OffsetDateTime::UNIX_EPOCH),
                ..Default::default()
            };
            let mut e = Event::from(x);
            t.apply(&mut e);
            e
        })
        .collect()
}

fn lunary(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let last: Arc<Mutex<Bytes>> = Arc::default();
    let record = last.clone();
    let addr = rt.block_on(async move {
        let app = axum::Router::new().fallback(move |body: Bytes| {
            *record.lock().unwrap() = body;
            async { r#"{"results":[]}"# }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        addr
    });
    let url = format!("http://{addr}/v1/runs/ingest");
    let cfg: SinkConfig = [("endpoint", url.as_str()), ("api-key", "bench")]
        .into_iter()
        .collect();
    let sink = switchyard_sinks::builtin().build("lunary", &cfg).unwrap();
    let events = calls();
    rt.block_on(sink.send(&events)).unwrap();
    let body = last.lock().unwrap().clone();
    let raw = reqwest::Client::new();

    // The server's own maximum request rate: empty events, nothing to read.
    let mut group = c.benchmark_group("lunary_server_max");
    group.throughput(Throughput::Elements(1));
    group.bench_function("raw_post_empty_events", |b| {
        b.iter(|| {
            rt.block_on(async {
                let r = raw
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(r#"{"events":[]}"#)
                    .send()
                    .await
                    .unwrap();
                r.bytes().await.unwrap();
            })
        })
    });
    group.finish();

    let mut group = c.benchmark_group("lunary_100_calls_per_request");
    group.throughput(Throughput::Elements(CALLS as u64));
    group.bench_function("raw_post_same_body", |b| {
        b.iter(|| {
            rt.block_on(async {
                let r = raw
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await
                    .unwrap();
                r.bytes().await.unwrap();
            })
        })
    });
    group.bench_function("lunary_sink", |b| {
        b.iter(|| rt.block_on(sink.send(&events)).unwrap())
    });
    group.finish();
}

criterion_group!(benches, lunary);
criterion_main!(benches);
