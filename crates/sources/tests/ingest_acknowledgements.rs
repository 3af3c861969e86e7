//! With acknowledgements on, ingest answers `202` only once every event of the
//! request is settled, and `503` when one is dropped or not settled in time.

use serde_json::{json, Value};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use switchyard_core::Fate;
use switchyard_engine::{intake, IntakeReceiver};
use switchyard_sources::http::{router, IngestConfig, IngestCounters};

async fn serve(wait: Duration) -> (String, IntakeReceiver, Arc<IngestCounters>) {
    let (tx, rx) = intake(100);
    let counters = Arc::new(IngestCounters::default());
    let app = router(
        tx,
        IngestConfig {
            max_body: 1 << 20,
            token: None,
            queue_wait: Duration::from_millis(100),
            acknowledge: Some(wait),
            limits: Default::default(),
        },
        counters.clone(),
        Arc::new(|| json!({})),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/v1/logs"), rx, counters)
}

async fn post(url: &str) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(url)
        .body(r#"[{"msg":"x"},{"msg":"y"},{"msg":"z"}]"#)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (
        status,
        serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap(),
    )
}

#[tokio::test]
async fn answer_waits_until_every_event_is_settled() {
    let (url, mut rx, counters) = serve(Duration::from_secs(10)).await;
    let answer = tokio::spawn(async move { post(&url).await });
    let mut events = rx.recv().await.unwrap();
    assert_eq!(events.len(), 3);
    // Two settled, one still open: no answer yet.
    let last = events.pop().unwrap();
    for mut e in events {
        e.resolve(Fate::Delivered);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!answer.is_finished(), "answered before every event settled");
    let mut last = last;
    last.resolve(Fate::DeadLettered);
    drop(last);
    let (status, body) = answer.await.unwrap();
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["accepted"], 3);
    assert_eq!(counters.accepted.load(Relaxed), 3);
}

#[tokio::test]
async fn a_dropped_event_turns_the_answer_into_503() {
    let (url, mut rx, counters) = serve(Duration::from_secs(10)).await;
    let answer = tokio::spawn(async move { post(&url).await });
    let events = rx.recv().await.unwrap();
    for (i, mut e) in events.into_iter().enumerate() {
        e.resolve(if i == 1 {
            Fate::Dropped
        } else {
            Fate::Delivered
        });
    }
    let (status, body) = answer.await.unwrap();
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["kept"], 2, "{body}");
    assert_eq!(body["dropped"], 1, "{body}");
    assert_eq!(counters.accepted.load(Relaxed), 0);
    assert_eq!(counters.unconfirmed.load(Relaxed), 3);
}

#[tokio::test]
async fn an_event_lost_in_flight_is_not_acknowledged() {
    let (url, mut rx, _) = serve(Duration::from_secs(10)).await;
    let answer = tokio::spawn(async move { post(&url).await });
    // Dropped without a fate, as by a task that died.
    drop(rx.recv().await.unwrap());
    let (status, body) = answer.await.unwrap();
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["dropped"], 3, "{body}");
}

#[tokio::test]
async fn no_outcome_in_time_is_503_with_retry_after() {
    let (url, mut rx, counters) = serve(Duration::from_millis(300)).await;
    let answer = tokio::spawn(async move { post(&url).await });
    let held = rx.recv().await.unwrap();
    let (status, body) = answer.await.unwrap();
    assert_eq!(status, 503, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("not confirmed"),
        "{body}"
    );
    assert_eq!(counters.unconfirmed.load(Relaxed), 3);
    drop(held);
}
