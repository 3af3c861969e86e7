//! A full intake queue answers 503 + Retry-After and accepts nothing; once the
//! engine makes room, the same request is accepted.

use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use switchyard_core::LogRecord;
use switchyard_engine::intake;
use switchyard_sources::http::{router, IngestConfig, IngestCounters};

#[tokio::test]
async fn full_queue_is_503_with_retry_after_and_nothing_accepted() {
    let (tx, mut rx) = intake(2);
    // Fill the queue; nobody reads it yet.
    tx.send(vec![LogRecord::new("a").into(), LogRecord::new("b").into()])
        .await
        .unwrap();
    let counters = Arc::new(IngestCounters::default());
    let app = router(
        tx,
        IngestConfig {
            max_body: 1 << 20,
            token: None,
            queue_wait: Duration::from_millis(100),
            acknowledge: None,
            limits: Default::default(),
        },
        counters.clone(),
        Arc::new(|| json!({})),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let client = reqwest::Client::new();
    let url = format!("http://{addr}/v1/logs");
    let body = r#"[{"msg":"x"},{"msg":"y"}]"#;
    let resp = client.post(&url).body(body).send().await.unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["retry-after"], "1");
    let v: serde_json::Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
    assert_eq!(v["accepted"], 0);
    assert_eq!(
        counters.accepted.load(std::sync::atomic::Ordering::Relaxed),
        0
    );

    // The engine takes the queued chunk: room again, and only the first
    // chunk was ever queued (the refused request left nothing behind).
    assert_eq!(rx.recv().await.unwrap().len(), 2);
    let resp = client.post(&url).body(body).send().await.unwrap();
    assert_eq!(resp.status(), 202);
    assert_eq!(rx.recv().await.unwrap().len(), 2);
    assert_eq!(
        counters.accepted.load(std::sync::atomic::Ordering::Relaxed),
        2
    );
}
