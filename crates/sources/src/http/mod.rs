//! HTTP ingest. Events answered with `202` are in the engine's queue: ingest
//! waits (bounded) for room instead of dropping, and answers `503` with
//! `Retry-After` — accepting nothing — when the queue stays full.
//!
//! With acknowledgements on ([`IngestConfig::acknowledge`]) a `202` means
//! more: every event of the request is settled — written to a sink's disk
//! buffer, delivered, filtered or dead-lettered — so a crash after the answer
//! loses nothing. The request carries one [`AckBatch`] and waits (bounded)
//! for its outcome; an event dropped by a buffer's policy or not settled in
//! time turns the answer into a `503`, and a client that retries may then
//! send some events twice (at-least-once, never at-most-once).
//!
//! What the server holds at once is bounded across all clients
//! ([`IngestLimits`]): open connections, requests in progress, body bytes,
//! and the time a client may take to send a request head or body or to
//! leave a connection idle. [`serve`] runs the router within those bounds.

mod limits;
mod parse;
mod server;
pub mod source;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use switchyard_core::{AckBatch, BatchOutcome, Event, HttpExchange, LogRecord, Payload};
use switchyard_engine::intake::SendError;
use switchyard_engine::IntakeSender;

pub use limits::IngestLimits;
use limits::{BodyError, Gates};
pub use parse::{parse_batch, ParseError};
pub use server::serve;

/// Ingest settings.
#[derive(Clone)]
pub struct IngestConfig {
    /// Largest accepted body, bytes.
    pub max_body: usize,
    /// Required bearer token, if any.
    pub token: Option<String>,
    /// How long a request may wait for queue room before `503`.
    pub queue_wait: Duration,
    /// Answer `202` only once every event is settled by the pipeline,
    /// waiting at most this long (then `503`). `None`: answer as soon as the
    /// events are queued.
    pub acknowledge: Option<Duration>,
    /// Bounds across all requests (in progress, body bytes, body timeout).
    /// [`serve`] takes the same value for its connection bounds.
    pub limits: IngestLimits,
}

/// What ingest has done, for `/stats`. Counters only grow; the fields
/// documented as gauges go up and down. The field names are the names to
/// export them under.
#[derive(Debug, Default)]
pub struct IngestCounters {
    /// Events answered with 202.
    pub accepted: AtomicU64,
    /// Requests refused (400/401/413/503).
    pub rejected_requests: AtomicU64,
    /// With acknowledgements: events queued but answered `503` because they
    /// were dropped, lost, or not settled in time (a retry may duplicate
    /// those of them that were kept).
    pub unconfirmed: AtomicU64,
    /// Gauge: connections open now.
    pub connections_open: AtomicU64,
    /// Connections closed as soon as accepted, because
    /// [`IngestLimits::max_connections`] were open.
    pub connections_refused: AtomicU64,
    /// Gauge: ingest requests in progress now.
    pub requests_in_progress: AtomicU64,
    /// Requests answered `503` because
    /// [`IngestLimits::max_concurrent_requests`] were in progress.
    pub requests_refused_busy: AtomicU64,
    /// Gauge: body bytes held now, across all requests.
    pub body_bytes_held: AtomicU64,
    /// Requests answered `503` because their body would have taken the
    /// bytes held over [`IngestLimits::max_body_memory`].
    pub requests_refused_memory: AtomicU64,
    /// Requests answered `408` because their body was not complete within
    /// [`IngestLimits::body_timeout`].
    pub body_timeouts: AtomicU64,
    /// Connections closed because a request head was not complete within
    /// [`IngestLimits::header_timeout`].
    pub header_timeouts: AtomicU64,
    /// Connections closed after [`IngestLimits::idle_timeout`] without a
    /// request.
    pub idle_closed: AtomicU64,
}

impl IngestCounters {
    /// Every field by its name, for `/stats`.
    pub fn snapshot(&self) -> Value {
        json!({
            "accepted": self.accepted.load(Relaxed),
            "rejected_requests": self.rejected_requests.load(Relaxed),
            "unconfirmed": self.unconfirmed.load(Relaxed),
            "connections_open": self.connections_open.load(Relaxed),
            "connections_refused": self.connections_refused.load(Relaxed),
            "requests_in_progress": self.requests_in_progress.load(Relaxed),
            "requests_refused_busy": self.requests_refused_busy.load(Relaxed),
            "body_bytes_held": self.body_bytes_held.load(Relaxed),
            "requests_refused_memory": self.requests_refused_memory.load(Relaxed),
            "body_timeouts": self.body_timeouts.load(Relaxed),
            "header_timeouts": self.header_timeouts.load(Relaxed),
            "idle_closed": self.idle_closed.load(Relaxed),
        })
    }
}

/// Produces the JSON for `/health` and `/stats`.
pub type StatsFn = Arc<dyn Fn() -> Value + Send + Sync>;

#[derive(Clone)]
struct AppState {
    intake: IntakeSender,
    config: Arc<IngestConfig>,
    counters: Arc<IngestCounters>,
    stats: StatsFn,
    gates: Arc<Gates>,
}

/// The ingest router.
pub fn router(
    intake: IntakeSender,
    config: IngestConfig,
    counters: Arc<IngestCounters>,
    stats: StatsFn,
) -> Router {
    let state = AppState {
        intake,
        gates: Arc::new(Gates::new(&config.limits, counters.clone())),
        config: Arc::new(config),
        counters,
        stats,
    };
    Router::new()
        .route("/v1/events", post(ingest_events))
        .route("/v1/logs", post(ingest_logs))
        .route("/health", get(health))
        .route("/stats", get(stats_handler))
        .with_state(state)
}

async fn health(State(s): State<AppState>) -> Json<Value> {
    Json(json!({"status": "ok", "stats": (s.stats)()}))
}

async fn stats_handler(State(s): State<AppState>) -> Json<Value> {
    Json((s.stats)())
}

async fn ingest_events(State(s): State<AppState>, req: Request) -> Response {
    ingest::<HttpExchange>(s, req, Payload::Http).await
}

async fn ingest_logs(State(s): State<AppState>, req: Request) -> Response {
    ingest::<LogRecord>(s, req, |mut r| {
        r.source_type = Some("http");
        Payload::Log(r)
    })
    .await
}

fn error(status: StatusCode, body: Value) -> Response {
    (status, Json(body)).into_response()
}

/// `503` with `Retry-After: 1`.
fn unavailable(body: Value) -> Response {
    let mut r = error(StatusCode::SERVICE_UNAVAILABLE, body);
    r.headers_mut()
        .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    r
}

/// Ask the client to close: sent when the body was not read to its end, so
/// the connection cannot carry another request.
fn closing(mut r: Response) -> Response {
    r.headers_mut().insert(
        header::CONNECTION,
        header::HeaderValue::from_static("close"),
    );
    r
}

fn authorized(headers: &HeaderMap, token: &str) -> bool {
    let Some(given) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    // Compare without an early exit so timing does not reveal the prefix.
    given.len() == token.len()
        && given
            .bytes()
            .zip(token.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

async fn ingest<T>(s: AppState, req: Request, wrap: impl Fn(T) -> Payload) -> Response
where
    T: for<'de> serde::Deserialize<'de>,
{
    let reject = |status, body| {
        s.counters.rejected_requests.fetch_add(1, Relaxed);
        error(status, body)
    };
    if let Some(token) = &s.config.token {
        if !authorized(req.headers(), token) {
            let mut r = reject(
                StatusCode::UNAUTHORIZED,
                json!({"error": "missing or wrong bearer token"}),
            );
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
            return r;
        }
    }
    let Some(_in_progress) = s.gates.enter() else {
        s.counters.requests_refused_busy.fetch_add(1, Relaxed);
        s.counters.rejected_requests.fetch_add(1, Relaxed);
        return closing(unavailable(json!({
            "error": "too many requests in progress; nothing from this request was accepted",
            "accepted": 0,
        })));
    };
    let ndjson = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.contains("ndjson") || ct.contains("jsonl"));
    let announced = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let limit = s.config.max_body;
    let body: Body = req.into_body();
    // `held` keeps the body's bytes counted until the events are queued:
    // the parsed events take about as much memory as the body did.
    let (bytes, held) = match s.gates.read_body(body, announced, limit).await {
        Ok(read) => read,
        Err(BodyError::TooLarge) => {
            return closing(reject(
                StatusCode::PAYLOAD_TOO_LARGE,
                json!({"error": format!("body larger than {limit} bytes")}),
            ))
        }
        Err(BodyError::NoMemory) => {
            s.counters.requests_refused_memory.fetch_add(1, Relaxed);
            s.counters.rejected_requests.fetch_add(1, Relaxed);
            return closing(unavailable(json!({
                "error": "the server holds too many request bodies; nothing from this request was accepted",
                "accepted": 0,
            })));
        }
        Err(BodyError::TimedOut) => {
            s.counters.body_timeouts.fetch_add(1, Relaxed);
            return closing(reject(
                StatusCode::REQUEST_TIMEOUT,
                json!({"error": "the body was not received in time; nothing from this request was accepted", "accepted": 0}),
            ));
        }
        Err(BodyError::Broken) => {
            return closing(reject(
                StatusCode::BAD_REQUEST,
                json!({"error": "the body could not be read (connection closed or malformed chunking)"}),
            ))
        }
    };
    let items: Vec<T> = match parse_batch(&bytes, ndjson) {
        Ok(items) => items,
        Err(e) => return reject(StatusCode::BAD_REQUEST, e.to_json()),
    };
    let n = items.len();
    let (events, outcome): (Vec<Event>, _) = match s.config.acknowledge {
        None => (
            items.into_iter().map(|x| Event::new(wrap(x))).collect(),
            None,
        ),
        Some(wait) => {
            let (batch, outcome) = AckBatch::new();
            let events = items
                .into_iter()
                .map(|x| Event::new(wrap(x)).with_ack(batch.token()))
                .collect();
            (events, Some((outcome, wait)))
        }
    };
    drop(bytes);
    let sent = s.intake.send_timeout(events, s.config.queue_wait).await;
    drop(held);
    match sent {
        Ok(()) => {
            if let Some((outcome, wait)) = outcome {
                if let Err(r) = confirmed(outcome, wait, n).await {
                    s.counters.unconfirmed.fetch_add(n as u64, Relaxed);
                    s.counters.rejected_requests.fetch_add(1, Relaxed);
                    return r;
                }
            }
            s.counters.accepted.fetch_add(n as u64, Relaxed);
            (StatusCode::ACCEPTED, Json(json!({"accepted": n}))).into_response()
        }
        Err(SendError::Full(_)) => {
            s.counters.rejected_requests.fetch_add(1, Relaxed);
            unavailable(
                json!({"error": "pipeline is full; nothing from this request was accepted", "accepted": 0}),
            )
        }
        Err(SendError::Closed(_)) => reject(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"error": "shutting down; nothing from this request was accepted", "accepted": 0}),
        ),
    }
}

/// Wait for a request's acknowledgement outcome; `Err` is the `503` to send
/// when some event is not settled for good.
async fn confirmed(
    outcome: tokio::sync::oneshot::Receiver<BatchOutcome>,
    wait: Duration,
    n: usize,
) -> Result<(), Response> {
    let outcome = match tokio::time::timeout(wait, outcome).await {
        Ok(Ok(outcome)) => outcome,
        // The sender is only dropped after sending; treat a lost one as lost.
        Ok(Err(_)) => BatchOutcome {
            unresolved: n as u64,
            ..BatchOutcome::default()
        },
        Err(_) => {
            return Err(unavailable(json!({
                "error": format!("the events were queued but not confirmed within {wait:?}; they may still be delivered, so a retry may duplicate some"),
                "accepted": 0,
            })))
        }
    };
    if outcome.dropped == 0 && outcome.unresolved == 0 {
        return Ok(());
    }
    let kept = outcome.delivered + outcome.filtered + outcome.dead_lettered;
    Err(unavailable(json!({
        "error": format!(
            "{} of {n} events were dropped by the pipeline (a full buffer's policy or a failed sink); a retry resends the {kept} that were kept",
            outcome.dropped + outcome.unresolved
        ),
        "accepted": 0,
        "kept": kept,
        "dropped": outcome.dropped + outcome.unresolved,
    })))
}
