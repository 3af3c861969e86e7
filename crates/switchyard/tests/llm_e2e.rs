//! End to end for the LLM services: the real binary, exchanges posted to its
//! ingest API, a local server standing in for Lunary or Helicone.

use axum::body::Bytes;
use axum::http::HeaderMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};

mod common;

use common::{
    dispatcher_command, final_counters_line, free_port, spawn_listening, stop_with_output,
};

type Seen = Arc<Mutex<Vec<(HeaderMap, serde_json::Value)>>>;

/// A backend on a free port, in its own thread and runtime, answering 200
/// `{"results":[]}` and recording each request.
fn backend() -> (u16, Seen) {
    let seen: Seen = Arc::default();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let record = seen.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let app = axum::Router::new().fallback(move |headers: HeaderMap, body: Bytes| {
                let record = record.clone();
                async move {
                    let json = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
                    record.lock().unwrap().push((headers, json));
                    r#"{"results":[]}"#
                }
            });
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    (port, seen)
}

fn start(args: &[&str], port: u16) -> Child {
    let mut cmd = dispatcher_command(port);
    cmd.args(["--flush-interval", "100ms"])
        .args(args)
        .env("RUST_LOG", "debug")
        .env_remove("LLM_PROXY_API_KEY");
    spawn_listening(&mut cmd, port)
}

fn post_events(port: u16, body: &str) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 202"), "{out}");
}

fn stop(child: Child) -> (String, String) {
    stop_with_output(child)
}

/// Two chat calls (base64 bodies as the proxy sends them) and one GET.
fn exchanges() -> String {
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let request =
        b64(r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hi"}],"user":"u-1"}"#);
    let response = b64(
        r#"{"id":"c","object":"chat.completion","model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Hello"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":1,"total_tokens":6}}"#,
    );
    let call = |id: &str| {
        format!(
            r#"{{"LogID":0,"RequestID":"{id}","Method":"POST","Path":"/v1/chat/completions","Status":200,"Duration":800000000,"ResponseHeaders":{{"Content-Type":["application/json"]}},"ResponseBody":"{response}","RequestBody":"{request}","Timestamp":"2024-05-01T12:00:00Z"}}"#
        )
    };
    let get = r#"{"RequestID":"g","Method":"GET","Path":"/v1/models","Status":200}"#;
    format!("[{},{},{get}]", call("e2e-1"), call("e2e-2"))
}

fn counters(stdout: &str) -> String {
    final_counters_line(stdout).to_string()
}

const KEY: &str = "e2e-secret-key-789";

#[test]
fn lunary_receives_start_and_end_for_each_posted_call() {
    let (backend_port, seen) = backend();
    let port = free_port();
    let endpoint = format!("http://127.0.0.1:{backend_port}/v1/runs/ingest");
    let child = start(
        &[
            "--service",
            "lunary",
            "--endpoint",
            &endpoint,
            "--api-key",
            KEY,
        ],
        port,
    );
    post_events(port, &exchanges());
    let (stdout, stderr) = stop(child);
    assert!(
        counters(&stdout).contains("received=3 sent=2 filtered=1 dropped=0"),
        "{stdout}"
    );
    assert!(!stderr.contains(KEY), "the API key leaked into the log");
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    let (headers, body) = &seen[0];
    assert_eq!(headers["authorization"], format!("Bearer {KEY}").as_str());
    let kinds: Vec<&str> = body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["start", "end", "start", "end"]);
    assert_eq!(body["events"][0]["name"], "gpt-4o-mini");
    assert_eq!(body["events"][0]["timestamp"], "2024-05-01T11:59:59.200Z");
    assert_eq!(body["events"][1]["tokensUsage"]["prompt"], 5);
}

#[test]
fn helicone_receives_one_request_per_posted_call() {
    let (backend_port, seen) = backend();
    let port = free_port();
    let endpoint = format!("http://127.0.0.1:{backend_port}/custom/v1/log");
    let child = start(
        &[
            "--service",
            "helicone",
            "--endpoint",
            &endpoint,
            "--api-key",
            KEY,
        ],
        port,
    );
    post_events(port, &exchanges());
    let (stdout, stderr) = stop(child);
    assert!(
        counters(&stdout).contains("received=3 sent=2 filtered=1 dropped=0"),
        "{stdout}"
    );
    assert!(!stderr.contains(KEY));
    let seen = seen.lock().unwrap();
    let mut ids: Vec<&str> = seen
        .iter()
        .map(|(_, b)| {
            b["providerRequest"]["meta"]["Helicone-Request-Id"]
                .as_str()
                .unwrap()
        })
        .collect();
    ids.sort();
    assert_eq!(ids, ["e2e-1", "e2e-2"]);
    let timing = &seen[0].1["timing"];
    assert_eq!(timing["endTime"]["seconds"], 1714564800);
    assert_eq!(timing["startTime"]["milliseconds"], 200);
}

#[test]
fn lunary_without_an_api_key_does_not_start() {
    let out = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args([
            "dispatcher",
            "--service",
            "lunary",
            "--endpoint",
            "http://127.0.0.1:9/x",
        ])
        .env_remove("LLM_PROXY_API_KEY")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("needs an API key"), "{stderr}");
}

#[test]
fn help_never_shows_the_api_key() {
    let out = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["dispatcher", "--help"])
        .env("LLM_PROXY_API_KEY", KEY)
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("--api-key"));
    assert!(!help.contains(KEY));
}

#[test]
fn http_service_posts_payload_batches_as_a_json_array() {
    let (backend_port, seen) = backend();
    let port = free_port();
    let endpoint = format!("http://127.0.0.1:{backend_port}/ingest");
    let child = start(
        &[
            "--service",
            "http",
            "--endpoint",
            &endpoint,
            "--sink-option",
            "header.X-Tenant=acme",
        ],
        port,
    );
    post_events(port, &exchanges());
    let (stdout, _) = stop(child);
    assert!(
        counters(&stdout).contains("sent=2 filtered=1 dropped=0"),
        "{stdout}"
    );
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].0["x-tenant"], "acme");
    let batch = seen[0].1.as_array().unwrap();
    assert_eq!(batch.len(), 2);
    assert_eq!(batch[0]["type"], "llm");
    assert_eq!(batch[0]["metadata"]["request_id"], "e2e-1");
}
