//! A local HTTP server standing in for a backend: it records every request
//! and answers through a test-supplied function, so each test checks the
//! wire exactly as the real service would see it.
#![allow(dead_code)] // each test file uses a different part

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use switchyard_core::{Event, HttpExchange, Payload, Transform};
use switchyard_transforms::llm::{LlmConfig, LlmTransform};

/// One request as the server saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Seen {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("request body is JSON")
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// How the server answers one request.
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
    pub delay: Duration,
}

impl Answer {
    pub fn status(status: u16, body: impl Into<String>) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: body.into(),
            delay: Duration::ZERO,
        }
    }
    pub fn ok() -> Self {
        Self::status(200, "{}")
    }
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
    pub fn delay(mut self, d: Duration) -> Self {
        self.delay = d;
        self
    }
}

type Responder = dyn Fn(&Seen, usize) -> Answer + Send + Sync;

#[derive(Clone)]
struct State {
    seen: Arc<Mutex<Vec<Seen>>>,
    respond: Arc<Responder>,
    in_flight: Arc<AtomicUsize>,
    max_in_flight: Arc<AtomicUsize>,
}

/// A running server.
pub struct Server {
    pub addr: SocketAddr,
    state: State,
}

impl Server {
    /// Start on 127.0.0.1:0; `respond(request, n)` answers the n-th request (0-based).
    pub async fn start(respond: impl Fn(&Seen, usize) -> Answer + Send + Sync + 'static) -> Self {
        let state = State {
            seen: Arc::default(),
            respond: Arc::new(respond),
            in_flight: Arc::default(),
            max_in_flight: Arc::default(),
        };
        let app = Router::new().fallback(handle).with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { addr, state }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }

    pub fn max_in_flight(&self) -> usize {
        self.state.max_in_flight.load(Ordering::SeqCst)
    }
}

async fn handle(
    axum::extract::State(state): axum::extract::State<State>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let now = state.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    state.max_in_flight.fetch_max(now, Ordering::SeqCst);
    let seen = Seen {
        path: uri.path().to_string(),
        headers,
        body,
    };
    let n = {
        let mut all = state.seen.lock().unwrap();
        all.push(seen.clone());
        all.len() - 1
    };
    let answer = (state.respond)(&seen, n);
    if !answer.delay.is_zero() {
        tokio::time::sleep(answer.delay).await;
    }
    state.in_flight.fetch_sub(1, Ordering::SeqCst);
    let mut resp = (StatusCode::from_u16(answer.status).unwrap(), answer.body).into_response();
    for (k, v) in answer.headers {
        resp.headers_mut().insert(k, v.parse().unwrap());
    }
    resp
}

/// A chat-completion exchange, as the LLM proxy captures it.
pub fn exchange(request_id: &str, status: i64, output: &str) -> HttpExchange {
    let mut headers = std::collections::BTreeMap::new();
    headers.insert(
        "Content-Type".to_string(),
        vec!["application/json".to_string()],
    );
    headers.insert(
        "Authorization".to_string(),
        vec!["Bearer upstream-secret".to_string()],
    );
    HttpExchange {
        log_id: 0,
        request_id: request_id.into(),
        method: "POST".into(),
        path: "/v1/chat/completions".into(),
        status,
        duration_ns: 1_250_000_000,
        response_headers: Some(headers),
        response_body: Some(output.to_string().into()),
        request_body: Some(
            r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hi"}],"temperature":0.3,"user":"user-7"}"#.into(),
        ),
        timestamp: Some(time::macros::datetime!(2024-05-01 12:00:05.5 UTC)),
    }
}

pub const OUTPUT: &str = r#"{"id":"chatcmpl-1","object":"chat.completion","model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Hello!"},"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":2,"total_tokens":11}}"#;

/// Exchanges through the LLM transformer, as the dispatcher would give them to a sink.
pub fn llm_event(x: HttpExchange, verbose: bool) -> Event {
    let mut e = Event::from(x);
    LlmTransform::default_with(LlmConfig {
        verbose,
        ..LlmConfig::default()
    })
    .apply(&mut e);
    assert!(matches!(e.payload, Payload::Json(_)));
    e
}

pub fn calls(n: usize) -> Vec<Event> {
    (0..n)
        .map(|i| llm_event(exchange(&format!("req-{i}"), 200, OUTPUT), false))
        .collect()
}

pub fn run_id(request_id: &str) -> String {
    switchyard_transforms::llm::run_id::run_id(request_id)
}

/// Options as `--sink-option KEY=VALUE` flags give them.
pub fn config(pairs: &[(&str, &str)]) -> switchyard_core::SinkConfig {
    pairs.iter().copied().collect()
}

/// The built-in sink `name`, built from `pairs` as the registry builds it.
pub fn build(
    name: &str,
    pairs: &[(&str, &str)],
) -> Result<Box<dyn switchyard_core::Sink>, switchyard_core::BuildError> {
    switchyard_sinks::builtin().build(name, &config(pairs))
}

/// Deliver `events` to `sink` through the engine (a one-source topology:
/// batches of 10, three retries from 10 ms, one batch at a time) and return
/// the sink's ledger once everything is settled.
pub async fn through_engine(
    sink: Box<dyn switchyard_core::Sink>,
    events: Vec<Event>,
) -> switchyard_engine::CountersSnapshot {
    use switchyard_engine::delivery::{Concurrency, DeliveryConfig};
    use switchyard_engine::topology::{Observers, Pipeline, SinkNode};
    let policy = switchyard_engine::SinkPolicy {
        batch_size: 10,
        flush_interval: Duration::from_millis(50),
        delivery: DeliveryConfig {
            max_retries: 3,
            retry_backoff: Duration::from_millis(10),
            concurrency: Concurrency::Fixed(1),
            ..DeliveryConfig::default()
        },
        ..switchyard_engine::SinkPolicy::new("sink")
    };
    let node = SinkNode {
        name: "sink".into(),
        inputs: vec!["in".into()],
        sink,
        buffer: switchyard_engine::BufferConfig::events(100),
        policy,
        disk: None,
    };
    let pipeline = Pipeline::start(
        vec!["in".into()],
        100,
        vec![],
        vec![node],
        Observers::default(),
    )
    .expect("one source feeding one sink is a valid graph");
    let counters = pipeline.sinks[0].counters.clone();
    pipeline
        .sender("in")
        .expect("the source exists")
        .send(events)
        .await
        .expect("the pipeline is running");
    pipeline.finish().await;
    counters.snapshot()
}
