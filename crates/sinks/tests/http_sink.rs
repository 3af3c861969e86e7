//! The generic HTTP sink against a local server.

mod common;

use common::*;
use std::io::Read;
use switchyard_core::{Event, LogRecord, SinkErrorKind};

fn records(n: usize) -> Vec<Event> {
    (0..n)
        .map(|i| LogRecord::new(format!("m{i}")).into())
        .collect()
}

#[tokio::test]
async fn json_array_by_default() {
    let server = Server::start(|_, _| Answer::status(204, "")).await;
    let url = server.url("/ingest");
    let sink = build("http", &[("endpoint", &url)]).unwrap();
    sink.send(&records(3)).await.unwrap();
    let seen = &server.seen()[0];
    assert_eq!(seen.header("content-type"), Some("application/json"));
    let v = seen.json();
    assert_eq!(v.as_array().unwrap().len(), 3);
    assert_eq!(v[2]["message"], "m2");
}

#[tokio::test]
async fn ndjson_gzip_with_custom_headers_and_bearer() {
    let server = Server::start(|_, _| Answer::ok()).await;
    let url = server.url("/ingest");
    let sink = build(
        "http",
        &[
            ("endpoint", &url),
            ("encoding", "ndjson"),
            ("compression", "gzip"),
            ("header.X-Tenant", "acme"),
            ("api-key", "tok-1"),
        ],
    )
    .unwrap();
    let mut events = records(2);
    events.push(llm_event(exchange("req-h", 200, OUTPUT), false));
    sink.send(&events).await.unwrap();
    let seen = &server.seen()[0];
    assert_eq!(seen.header("content-type"), Some("application/x-ndjson"));
    assert_eq!(seen.header("content-encoding"), Some("gzip"));
    assert_eq!(seen.header("x-tenant"), Some("acme"));
    assert_eq!(seen.header("authorization"), Some("Bearer tok-1"));
    let mut text = String::new();
    flate2::read::GzDecoder::new(&seen.body[..])
        .read_to_string(&mut text)
        .unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[1]["message"], "m1");
    assert_eq!(lines[2]["runId"], run_id("req-h"));
}

#[tokio::test]
async fn results_are_classified_for_the_whole_batch() {
    for (status, kind) in [
        (408, SinkErrorKind::Transient),
        (503, SinkErrorKind::Transient),
        (413, SinkErrorKind::Permanent),
        (501, SinkErrorKind::Permanent),
    ] {
        let server = Server::start(move |_, _| Answer::status(status, "nope")).await;
        let url = server.url("/x");
        let sink = build("http", &[("endpoint", &url)]).unwrap();
        let err = sink.send(&records(1)).await.unwrap_err();
        assert_eq!(err.kind, kind, "{status}");
        assert!(err.message.contains(&status.to_string()));
    }
}

#[tokio::test]
async fn a_refused_connection_is_transient() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/x");
    let sink = build("http", &[("endpoint", &url)]).unwrap();
    let err = sink.send(&records(1)).await.unwrap_err();
    assert_eq!(err.kind, SinkErrorKind::Transient);
    assert!(err.message.contains("cannot connect"), "{err}");
}

#[test]
fn bad_options_name_the_key() {
    let e = build("http", &[("endpoint", "http://h"), ("encoding", "xml")])
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.starts_with("--sink-option encoding: unknown variant `xml`"),
        "{e}"
    );
    let e = build("http", &[]).err().unwrap().to_string();
    assert!(e.contains("endpoint"));
}
