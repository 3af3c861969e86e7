//! The Lunary sink against a local server that checks what Lunary checks.

mod common;

use common::*;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Duration;
use switchyard_core::{Event, LogRecord, Sink, SinkErrorKind};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

const KEY: &str = "lunary-test-key-123";

fn sink(server: &Server, extra: &[(&str, &str)]) -> Box<dyn Sink> {
    let url = server.url("/v1/runs/ingest");
    let mut pairs = vec![("endpoint", url.as_str()), ("api-key", KEY)];
    pairs.extend_from_slice(extra);
    build("lunary", &pairs).unwrap()
}

fn ts(v: &Value) -> OffsetDateTime {
    OffsetDateTime::parse(v.as_str().expect("timestamp string"), &Rfc3339).unwrap()
}

/// Every rule of the ingestion API, checked on one request; answers like
/// Lunary (one result per event).
fn check_and_answer(seen: &Seen) -> Answer {
    assert_eq!(seen.path, "/v1/runs/ingest");
    assert_eq!(seen.header("content-type"), Some("application/json"));
    assert_eq!(
        seen.header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    let body = seen.json();
    let events = body["events"]
        .as_array()
        .expect("an object with an `events` array");
    let mut starts: HashMap<String, Value> = HashMap::new();
    for e in events {
        assert_eq!(e["type"], "llm");
        let run = e["runId"].as_str().expect("runId").to_string();
        match e["event"].as_str().unwrap() {
            "start" => {
                assert!(e["name"].is_string(), "start names the model: {e}");
                assert!(e["input"].is_object(), "start has the input: {e}");
                starts.insert(run, e.clone());
            }
            "end" | "error" => {
                let start = starts.get(&run).expect("start comes before end");
                assert!(
                    ts(&start["timestamp"]) < ts(&e["timestamp"]),
                    "start earlier than end"
                );
                if e["event"] == "end" {
                    assert!(e["output"].is_object());
                    assert!(e["tokensUsage"]["prompt"].is_u64());
                    assert!(e["tokensUsage"]["completion"].is_u64());
                } else {
                    assert!(e["error"]["message"].is_string());
                }
            }
            other => panic!("unexpected event {other}"),
        }
    }
    let results: Vec<Value> = events
        .iter()
        .map(|e| json!({"id": e["runId"], "success": true}))
        .collect();
    Answer::status(200, json!({ "results": results }).to_string())
}

#[tokio::test]
async fn each_call_is_a_start_and_an_end_in_an_events_object() {
    let server = Server::start(|s, _| check_and_answer(s)).await;
    sink(&server, &[]).send(&calls(3)).await.unwrap();
    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    let events = seen[0].json()["events"].as_array().unwrap().clone();
    assert_eq!(events.len(), 6);
    let (start, end) = (&events[0], &events[1]);
    assert_eq!(start["runId"], run_id("req-0"));
    assert_eq!(start["event"], "start");
    assert_eq!(start["name"], "gpt-4o-mini");
    assert_eq!(start["userId"], "user-7");
    assert_eq!(start["timestamp"], "2024-05-01T12:00:04.250Z");
    assert_eq!(start["extra"], json!({"temperature": 0.3}));
    assert_eq!(start["metadata"]["request_id"], "req-0");
    assert_eq!(end["event"], "end");
    assert_eq!(end["timestamp"], "2024-05-01T12:00:05.500Z");
    assert_eq!(end["tokensUsage"], json!({"prompt": 9, "completion": 2}));
    assert_eq!(end["output"]["choices"][0]["message"]["content"], "Hello!");
}

#[tokio::test]
async fn failed_calls_end_with_an_error_event() {
    let server = Server::start(|s, _| check_and_answer(s)).await;
    let failed = llm_event(
        exchange(
            "req-e",
            429,
            r#"{"error":{"message":"Rate limit reached"}}"#,
        ),
        false,
    );
    sink(&server, &[]).send(&[failed]).await.unwrap();
    let events = server.seen()[0].json()["events"].clone();
    assert_eq!(events[1]["event"], "error");
    assert_eq!(
        events[1]["error"]["message"],
        "HTTP 429: Rate limit reached"
    );
}

#[tokio::test]
async fn requests_are_bounded_by_events_and_by_bytes() {
    let server = Server::start(|s, _| check_and_answer(s)).await;
    sink(&server, &[("batch-max-events", "4")])
        .send(&calls(5))
        .await
        .unwrap();
    let sizes: Vec<usize> = server
        .seen()
        .iter()
        .map(|s| s.json()["events"].as_array().unwrap().len())
        .collect();
    assert_eq!(sizes, [4, 4, 2]);

    let server = Server::start(|s, _| check_and_answer(s)).await;
    sink(&server, &[("batch-max-bytes", "1500")])
        .send(&calls(3))
        .await
        .unwrap();
    let seen = server.seen();
    assert_eq!(
        seen.len(),
        3,
        "one call per request under a small byte bound"
    );
    assert!(seen
        .iter()
        .all(|s| s.json()["events"].as_array().unwrap().len() == 2));
}

#[tokio::test]
async fn per_event_results_duplicates_count_as_delivered() {
    let dup = run_id("req-1");
    let bad = run_id("req-2");
    let server = Server::start(move |s, _| {
        let results: Vec<Value> = s.json()["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                let id = e["runId"].as_str().unwrap();
                if id == dup {
                    json!({"id": id, "success": false, "error": format!("Run {id} already exists")})
                } else if id == bad && e["event"] == "end" {
                    json!({"id": id, "success": false, "error": "Invalid tokensUsage"})
                } else {
                    json!({"id": id, "success": true})
                }
            })
            .collect();
        Answer::status(200, json!({ "results": results }).to_string())
    })
    .await;
    let err = sink(&server, &[]).send(&calls(4)).await.unwrap_err();
    assert_eq!(err.kind, SinkErrorKind::Partial);
    assert_eq!(err.failed.len(), 1);
    assert_eq!(err.failed[0].index, 2);
    assert_eq!(err.failed[0].error.kind, SinkErrorKind::Permanent);
    assert!(err.failed[0].error.message.contains("Invalid tokensUsage"));
}

#[tokio::test]
async fn unauthorized_and_malformed_keys_are_permanent_and_never_echo_the_key() {
    for status in [401, 402] {
        let server =
            Server::start(move |_, _| Answer::status(status, "{\"error\":\"Project not found\"}"))
                .await;
        let err = sink(&server, &[]).send(&calls(2)).await.unwrap_err();
        assert_eq!(err.failed.len(), 2);
        for f in &err.failed {
            assert_eq!(f.error.kind, SinkErrorKind::Permanent);
            assert!(f.error.message.contains(&status.to_string()));
            assert!(f.error.message.contains("Project not found"));
        }
        assert!(!format!("{err} {err:?}").contains(KEY));
    }
}

/// Lunary's SDKs take the base URL; given one, the sink used to POST to `/`
/// and Lunary answered `401 This route requires a private API key`.
#[tokio::test]
async fn a_base_url_endpoint_posts_to_the_ingestion_route() {
    let server = Server::start(|seen, _| check_and_answer(seen)).await;
    for base in [server.url(""), server.url("/")] {
        let pairs = [("endpoint", base.as_str()), ("api-key", KEY)];
        let sink = build("lunary", &pairs).unwrap();
        sink.send(&calls(1)).await.unwrap();
    }
    assert!(server.seen().iter().all(|s| s.path == "/v1/runs/ingest"));
}

/// Lunary's key and payload answers end as permanent errors whose message
/// says what to fix; `500 Missing events payload.` is not retried.
#[tokio::test]
async fn lunarys_key_and_payload_answers_are_permanent_with_a_fix() {
    let table: [(u16, &str, &str); 4] = [
        (401, "Invalid access token", "UUID"),
        (401, "Invalid API key", "private key"),
        (402, "", "no API key reached Lunary"),
        (500, "Missing events payload.", "not Lunary's"),
    ];
    for (status, body, hint) in table {
        let server = Server::start(move |_, _| Answer::status(status, body)).await;
        let err = sink(&server, &[]).send(&calls(1)).await.unwrap_err();
        let e = &err.failed[0].error;
        assert_eq!(e.kind, SinkErrorKind::Permanent, "{status} {body}");
        assert!(e.message.contains(hint), "{status}: {}", e.message);
        assert!(!format!("{err:?}").contains(KEY));
    }
}

#[tokio::test]
async fn rate_limits_and_server_errors_are_transient() {
    let server =
        Server::start(|_, _| Answer::status(429, "slow down").header("Retry-After", "7")).await;
    let err = sink(&server, &[]).send(&calls(1)).await.unwrap_err();
    assert_eq!(err.failed[0].error.kind, SinkErrorKind::Transient);
    assert_eq!(err.retry_after, Some(Duration::from_secs(7)));

    let server = Server::start(|_, _| Answer::status(500, "oops")).await;
    let err = sink(&server, &[]).send(&calls(1)).await.unwrap_err();
    assert_eq!(err.failed[0].error.kind, SinkErrorKind::Transient);

    let server = Server::start(|_, _| Answer::status(501, "no")).await;
    let err = sink(&server, &[]).send(&calls(1)).await.unwrap_err();
    assert_eq!(err.failed[0].error.kind, SinkErrorKind::Permanent);
}

#[tokio::test]
async fn a_slow_server_times_out_as_transient() {
    let server = Server::start(|_, _| Answer::ok().delay(Duration::from_secs(30))).await;
    let err = sink(&server, &[("timeout", "300ms")])
        .send(&calls(1))
        .await
        .unwrap_err();
    assert_eq!(err.failed[0].error.kind, SinkErrorKind::Transient);
    assert!(err.failed[0].error.message.contains("timed out"), "{err}");
}

#[tokio::test]
async fn a_log_record_fails_alone_and_the_calls_go_through() {
    let server = Server::start(|s, _| check_and_answer(s)).await;
    let mut events = calls(2);
    events.insert(1, Event::from(LogRecord::new("not an llm call")));
    let err = sink(&server, &[]).send(&events).await.unwrap_err();
    assert_eq!(err.failed.len(), 1);
    assert_eq!(err.failed[0].index, 1);
    assert!(err.failed[0].error.message.contains("log record"));
    assert_eq!(
        server.seen()[0].json()["events"].as_array().unwrap().len(),
        4
    );
}

#[test]
fn missing_api_key_is_a_clear_start_up_error() {
    let err = build("lunary", &[("endpoint", "http://127.0.0.1:9/x")])
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("lunary") && err.contains("--api-key"), "{err}");
}

#[tokio::test]
async fn the_engine_retries_a_server_error_until_delivered() {
    let server = Server::start(|s, n| {
        if n == 0 {
            Answer::status(503, "warming up")
        } else {
            check_and_answer(s)
        }
    })
    .await;
    let c = common::through_engine(sink(&server, &[]), calls(3)).await;
    assert_eq!((c.sent, c.dropped), (3, 0));
    assert_eq!(server.seen().len(), 2);
}
