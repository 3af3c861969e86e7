//! The Helicone sink against a local server that checks the manual logger's
//! request shape.

mod common;

use common::*;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use switchyard_core::{Sink, SinkErrorKind};

const KEY: &str = "sk-helicone-test-456";

fn sink(server: &Server, extra: &[(&str, &str)]) -> Box<dyn Sink> {
    let url = server.url("/custom/v1/log");
    let mut pairs = vec![("endpoint", url.as_str()), ("api-key", KEY)];
    pairs.extend_from_slice(extra);
    build("helicone", &pairs).unwrap()
}

fn millis(t: &Value) -> i64 {
    let ms = t["milliseconds"].as_i64().unwrap();
    assert!(
        (0..=999).contains(&ms),
        "milliseconds is the sub-second part"
    );
    t["seconds"].as_i64().unwrap() * 1000 + ms
}

/// The manual logger's rules for one request.
fn check(seen: &Seen) -> Value {
    assert_eq!(seen.path, "/custom/v1/log");
    assert_eq!(seen.header("content-type"), Some("application/json"));
    assert_eq!(
        seen.header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    let b = seen.json();
    assert!(b["providerRequest"]["url"].is_string());
    assert!(b["providerRequest"]["json"].is_object());
    assert!(b["providerRequest"]["meta"].is_object());
    assert!(b["providerResponse"]["status"].is_i64());
    assert!(b["providerResponse"]["headers"].is_object());
    let r = &b["providerResponse"];
    assert!(r["json"].is_object() ^ r["textBody"].is_string());
    assert!(millis(&b["timing"]["startTime"]) < millis(&b["timing"]["endTime"]));
    b
}

#[tokio::test]
async fn one_request_per_call_with_real_timing_and_meta() {
    let server = Server::start(|s, _| {
        check(s);
        Answer::ok()
    })
    .await;
    let event = llm_event(exchange("req-9", 200, OUTPUT), true);
    sink(&server, &[]).send(&[event]).await.unwrap();
    let b = server.seen()[0].json();
    assert_eq!(b["providerRequest"]["url"], "/v1/chat/completions");
    assert_eq!(b["providerRequest"]["json"]["model"], "gpt-4o-mini");
    assert_eq!(
        b["providerRequest"]["meta"],
        json!({
            "Helicone-Property-Run-Id": run_id("req-9"),
            "Helicone-Provider": "openai",
            "Helicone-Request-Id": "req-9",
            "Helicone-User-Id": "user-7",
        })
    );
    assert_eq!(b["providerResponse"]["status"], 200);
    assert_eq!(b["providerResponse"]["json"]["usage"]["prompt_tokens"], 9);
    assert_eq!(
        b["providerResponse"]["headers"],
        json!({"Authorization": "[REDACTED]", "Content-Type": "application/json"})
    );
    // 2024-05-01T12:00:05.500Z, after 1.25 s.
    assert_eq!(
        b["timing"],
        json!({
            "startTime": {"seconds": 1714564804, "milliseconds": 250},
            "endTime": {"seconds": 1714564805, "milliseconds": 500},
        })
    );
}

#[tokio::test]
async fn a_response_that_is_not_a_json_object_goes_in_text_body() {
    let server = Server::start(|s, _| {
        check(s);
        Answer::ok()
    })
    .await;
    let mut x = exchange("req-t", 200, "plain words");
    x.response_headers = None;
    sink(&server, &[])
        .send(&[llm_event(x, false)])
        .await
        .unwrap();
    let b = server.seen()[0].json();
    assert_eq!(b["providerResponse"]["textBody"], "plain words");
    assert!(b["providerResponse"].get("json").is_none());
}

#[tokio::test]
async fn parallel_requests_stay_within_the_concurrency_bound() {
    let server = Server::start(|_, _| Answer::ok().delay(Duration::from_millis(50))).await;
    sink(&server, &[("concurrency", "2")])
        .send(&calls(6))
        .await
        .unwrap();
    assert_eq!(server.seen().len(), 6);
    assert!(server.max_in_flight() <= 2, "{}", server.max_in_flight());
}

#[tokio::test]
async fn each_call_has_its_own_outcome() {
    let server = Server::start(|s, _| {
        match s.json()["providerRequest"]["meta"]["Helicone-Request-Id"]
            .as_str()
            .unwrap()
        {
            "req-1" => Answer::status(500, "upstream broke"),
            "req-2" => Answer::status(400, "{\"error\":\"bad body\"}"),
            "req-3" => Answer::status(429, "").header("Retry-After", "4"),
            _ => Answer::ok(),
        }
    })
    .await;
    let err = sink(&server, &[]).send(&calls(5)).await.unwrap_err();
    assert_eq!(err.kind, SinkErrorKind::Partial);
    let outcome: Vec<(usize, SinkErrorKind)> =
        err.failed.iter().map(|f| (f.index, f.error.kind)).collect();
    assert_eq!(
        outcome,
        [
            (1, SinkErrorKind::Transient),
            (2, SinkErrorKind::Permanent),
            (3, SinkErrorKind::Transient)
        ]
    );
    assert!(err.failed[1].error.message.contains("400"));
    assert!(err.failed[1].error.message.contains("bad body"));
    assert_eq!(err.retry_after, Some(Duration::from_secs(4)));
    assert!(!format!("{err:?}").contains(KEY));
}

#[tokio::test]
async fn the_engine_resends_only_the_failed_calls() {
    let tries: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let t = tries.clone();
    let server = Server::start(move |s, _| {
        let id = s.json()["providerRequest"]["meta"]["Helicone-Request-Id"]
            .as_str()
            .unwrap()
            .to_string();
        let mut tries = t.lock().unwrap();
        let n = tries.entry(id.clone()).or_default();
        *n += 1;
        match (id.as_str(), *n) {
            ("req-1", 1) => Answer::status(503, "busy"),
            ("req-2", _) => Answer::status(401, "unknown key"),
            _ => Answer::ok(),
        }
    })
    .await;
    let c = common::through_engine(sink(&server, &[]), calls(4)).await;
    assert_eq!((c.sent, c.dropped), (3, 1));
    let tries = tries.lock().unwrap().clone();
    assert_eq!(tries["req-0"], 1);
    assert_eq!(tries["req-1"], 2, "the transient failure is retried");
    assert_eq!(tries["req-2"], 1, "the permanent failure is not");
    assert_eq!(tries["req-3"], 1);
}

#[test]
fn missing_api_key_is_a_clear_start_up_error() {
    let err = build("helicone", &[]).err().unwrap().to_string();
    assert!(
        err.contains("helicone") && err.contains("--api-key"),
        "{err}"
    );
}
