//! The ingest server's bounds across clients: each test pins one bound with
//! raw sockets that behave like a slow or stalled client, and checks what an
//! honest client gets meanwhile. Time bounds are generous: they only catch a
//! bound that is not enforced at all.

use serde_json::json;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use switchyard_engine::{intake, IntakeReceiver};
use switchyard_sources::http::{router, serve, IngestConfig, IngestCounters, IngestLimits};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Server {
    addr: std::net::SocketAddr,
    counters: Arc<IngestCounters>,
    _rx: IntakeReceiver,
}

async fn start(limits: IngestLimits) -> Server {
    let (tx, rx) = intake(10_000);
    let counters = Arc::new(IngestCounters::default());
    let app = router(
        tx,
        IngestConfig {
            max_body: 1 << 20,
            token: None,
            queue_wait: Duration::from_millis(100),
            acknowledge: None,
            limits: limits.clone(),
        },
        counters.clone(),
        Arc::new(|| json!({})),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let c = counters.clone();
    tokio::spawn(async move { serve(listener, app, &limits, c, std::future::pending()).await });
    Server {
        addr,
        counters,
        _rx: rx,
    }
}

/// A client that sends a request head announcing `length` body bytes and
/// then only `sent` of them, and stalls.
async fn stalled_upload(addr: std::net::SocketAddr, length: usize, sent: usize) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /v1/logs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(&vec![b' '; sent]).await.unwrap();
    s
}

/// Everything the server sends until it closes (bounded wait).
async fn read_until_closed(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut out))
        .await
        .expect("the server did not close the connection")
        .ok();
    String::from_utf8_lossy(&out).into_owned()
}

async fn until(what: &str, f: impl Fn() -> bool) {
    for _ in 0..3000 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

fn post(addr: std::net::SocketAddr, body: &str) -> reqwest::RequestBuilder {
    reqwest::Client::new()
        .post(format!("http://{addr}/v1/logs"))
        .body(body.to_string())
}

#[tokio::test]
async fn requests_over_the_in_progress_bound_get_503_with_retry_after() {
    let s = start(IngestLimits {
        max_concurrent_requests: 1,
        ..IngestLimits::default()
    })
    .await;
    let _slow = stalled_upload(s.addr, 100, 5).await;
    until("the stalled upload to be in progress", || {
        s.counters.requests_in_progress.load(Relaxed) == 1
    })
    .await;
    let resp = post(s.addr, r#"{"msg":"x"}"#).send().await.unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["retry-after"], "1");
    assert_eq!(s.counters.requests_refused_busy.load(Relaxed), 1);
    assert_eq!(s.counters.accepted.load(Relaxed), 0);
}

#[tokio::test]
async fn bodies_over_the_shared_byte_budget_get_503_and_smaller_ones_still_pass() {
    let s = start(IngestLimits {
        max_body_memory: 1000,
        ..IngestLimits::default()
    })
    .await;
    // 800 of the 1000 bytes held by a stalled upload.
    let _slow = stalled_upload(s.addr, 900, 800).await;
    until("800 body bytes held", || {
        s.counters.body_bytes_held.load(Relaxed) == 800
    })
    .await;
    let big = format!(r#"{{"msg":"{}"}}"#, "x".repeat(300));
    let resp = post(s.addr, &big).send().await.unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["retry-after"], "1");
    assert_eq!(s.counters.requests_refused_memory.load(Relaxed), 1);
    // What fits in the rest of the budget is served.
    let resp = post(s.addr, r#"{"msg":"small"}"#).send().await.unwrap();
    assert_eq!(resp.status(), 202);
    // The refused and the served request gave their bytes back.
    assert_eq!(s.counters.body_bytes_held.load(Relaxed), 800);
}

#[tokio::test]
async fn a_body_that_stalls_is_cut_with_408_and_the_connection_closed() {
    let s = start(IngestLimits {
        body_timeout: Duration::from_millis(500),
        ..IngestLimits::default()
    })
    .await;
    let mut slow = stalled_upload(s.addr, 100, 10).await;
    let answer = read_until_closed(&mut slow).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert_eq!(s.counters.body_timeouts.load(Relaxed), 1);
    assert_eq!(s.counters.body_bytes_held.load(Relaxed), 0);
    until("the connection to be gone", || {
        s.counters.connections_open.load(Relaxed) == 0
    })
    .await;
}

#[tokio::test]
async fn a_request_head_that_stalls_closes_the_connection_but_an_idle_wait_does_not_count() {
    let s = start(IngestLimits {
        header_timeout: Duration::from_millis(500),
        idle_timeout: Duration::from_secs(60),
        ..IngestLimits::default()
    })
    .await;
    // Idle for longer than the header timeout, then a whole request: served.
    let mut patient = TcpStream::connect(s.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let body = r#"{"msg":"late but whole"}"#;
    let req = format!(
        "POST /v1/logs HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    patient.write_all(req.as_bytes()).await.unwrap();
    let answer = read_until_closed(&mut patient).await;
    assert!(answer.starts_with("HTTP/1.1 202"), "{answer}");

    // Half a head, then nothing: closed.
    let mut slow = TcpStream::connect(s.addr).await.unwrap();
    slow.write_all(b"POST /v1/logs HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let answer = read_until_closed(&mut slow).await;
    assert!(answer.is_empty(), "{answer}");
    assert_eq!(s.counters.header_timeouts.load(Relaxed), 1);
}

#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed_after_the_idle_timeout() {
    let s = start(IngestLimits {
        idle_timeout: Duration::from_millis(500),
        ..IngestLimits::default()
    })
    .await;
    let mut c = TcpStream::connect(s.addr).await.unwrap();
    let body = r#"{"msg":"a"}"#;
    let req = format!(
        "POST /v1/logs HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    c.write_all(req.as_bytes()).await.unwrap();
    // The answer, then the close once the connection has been idle.
    let answer = read_until_closed(&mut c).await;
    assert!(answer.starts_with("HTTP/1.1 202"), "{answer}");
    assert_eq!(s.counters.idle_closed.load(Relaxed), 1);
}

#[tokio::test]
async fn connections_over_the_bound_are_closed_at_once_and_counted() {
    let s = start(IngestLimits {
        max_connections: 2,
        ..IngestLimits::default()
    })
    .await;
    let a = TcpStream::connect(s.addr).await.unwrap();
    let _b = TcpStream::connect(s.addr).await.unwrap();
    until("two open connections", || {
        s.counters.connections_open.load(Relaxed) == 2
    })
    .await;
    let mut third = TcpStream::connect(s.addr).await.unwrap();
    let answer = read_until_closed(&mut third).await;
    assert!(answer.is_empty(), "{answer}");
    assert_eq!(s.counters.connections_refused.load(Relaxed), 1);
    // Once one leaves, a new client is served again.
    drop(a);
    until("one connection to go", || {
        s.counters.connections_open.load(Relaxed) == 1
    })
    .await;
    let resp = post(s.addr, r#"{"msg":"x"}"#).send().await.unwrap();
    assert_eq!(resp.status(), 202);
}
