//! The admin server of a pipeline: `/metrics` (Prometheus text 0.0.4, or
//! OpenMetrics when the scraper's `Accept` asks for it), `/health`
//! (liveness, always 200 while the process serves) and `/ready` (readiness:
//! `503` with the reasons when no sink can take events or a buffer is over
//! its high watermark). Both JSON documents list every component's state.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use switchyard_engine::exposition::Format;
use switchyard_engine::metrics::Metrics;
use switchyard_engine::supervise::Health;
use switchyard_engine::topology::{SinkHandle, SourceStats};
use switchyard_engine::BufferStats;

/// What the admin server reads.
pub struct AdminState {
    /// The pipeline's metrics.
    pub metrics: Arc<Metrics>,
    /// Sources: name and router figures.
    pub sources: Vec<(String, Arc<SourceStats>)>,
    /// Sinks: name, buffer and ledger.
    pub sinks: Vec<SinkView>,
    /// Supervised source tasks: up, or down and waiting to be restarted.
    pub health: Arc<Health>,
}

/// One sink as the admin server sees it.
pub struct SinkView {
    /// Name.
    pub name: String,
    /// Buffer figures.
    pub buffer: Arc<BufferStats>,
    /// Ledger.
    pub counters: Arc<switchyard_engine::Counters>,
    /// Delivery stack figures.
    pub delivery: Arc<switchyard_engine::DeliveryStats>,
}

impl From<&SinkHandle> for SinkView {
    fn from(h: &SinkHandle) -> Self {
        Self {
            name: h.name.clone(),
            buffer: h.buffer.clone(),
            counters: h.counters.clone(),
            delivery: h.delivery.clone(),
        }
    }
}

/// The routes.
pub fn router(state: Arc<AdminState>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .with_state(state)
}

/// `/metrics` and `/ready` only, for a server that has its own `/health`
/// (`switchyard dispatcher`).
pub fn metrics_and_ready(state: Arc<AdminState>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/ready", get(ready))
        .with_state(state)
}

async fn metrics(State(s): State<Arc<AdminState>>, headers: HeaderMap) -> Response {
    metrics_response(&headers, s.metrics.render())
}

/// The answer of every `/metrics` endpoint: `openmetrics` (a whole
/// OpenMetrics page) in the format the request's `Accept` header asks for.
pub fn metrics_response(headers: &HeaderMap, openmetrics: String) -> Response {
    let accept: Vec<&str> = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let format = Format::negotiate(Some(&accept.join(",")));
    (
        [
            (header::CONTENT_TYPE, format.content_type()),
            // Caches must key the page on what was asked for.
            (header::VARY, "accept"),
        ],
        format.encode(openmetrics),
    )
        .into_response()
}

fn components(s: &AdminState) -> (Value, Vec<String>) {
    let mut reasons = Vec::new();
    let mut open = 0;
    let sinks: serde_json::Map<String, Value> = s
        .sinks
        .iter()
        .map(|v| {
            let b = &v.buffer;
            let pressure = b.under_pressure.load(Relaxed);
            if pressure {
                reasons.push(format!(
                    "sink `{}`: buffer over its high watermark ({:.0}% full)",
                    v.name,
                    b.utilization() * 100.0
                ));
            }
            let c = v.counters.snapshot();
            let (busy, slots) = v.counters.workers();
            let d = v.delivery.snapshot();
            let breaker = match d.breaker_state {
                switchyard_engine::delivery::BreakerState::Closed => "closed",
                switchyard_engine::delivery::BreakerState::Open => {
                    open += 1;
                    "open"
                }
                switchyard_engine::delivery::BreakerState::HalfOpen => "half_open",
            };
            (
                v.name.clone(),
                json!({
                    "state": if breaker == "open" { "down" } else if pressure { "backpressure" } else { "ok" },
                    "circuit_breaker": breaker,
                    "retries": d.retries,
                    "dead_lettered": c.dead_lettered,
                    "buffer": {
                        "events": b.events.load(Relaxed),
                        "bytes": b.bytes.load(Relaxed),
                        "utilization": b.utilization(),
                        "dropped": b.dropped(),
                    },
                    "workers": {"active": busy, "total": slots},
                    "delivered": c.sent,
                    "failed": c.dropped,
                }),
            )
        })
        .collect();
    let mut sources: serde_json::Map<String, Value> = s
        .sources
        .iter()
        .map(|(name, st)| {
            (
                name.clone(),
                json!({
                    "state": "ok",
                    "received": st.received.load(Relaxed),
                    "filtered": st.filtered.load(Relaxed),
                }),
            )
        })
        .collect();
    // Supervised tasks: under their source's entry when they share its name,
    // else an entry of their own (the dispatcher's listeners).
    for task in s.health.tasks() {
        let down = task.is_down();
        if down {
            reasons.push(format!(
                "source `{}` is down ({}); restarting it",
                task.name,
                task.last_error().unwrap_or_default()
            ));
        }
        let entry = sources
            .entry(task.name.clone())
            .or_insert_with(|| json!({}));
        entry["state"] = json!(if down { "failed" } else { "ok" });
        entry["failures"] = json!(task.failures.load(Relaxed));
        if let Some(e) = task.last_error() {
            entry["last_error"] = json!(e);
        }
    }
    if open > 0 && open == s.sinks.len() {
        reasons.push("no sink can deliver: every circuit breaker is open".to_string());
    }
    (json!({"sources": sources, "sinks": sinks}), reasons)
}

async fn health(State(s): State<Arc<AdminState>>) -> impl IntoResponse {
    let (components, _) = components(&s);
    Json(json!({"status": "ok", "components": components}))
}

async fn ready(State(s): State<Arc<AdminState>>) -> impl IntoResponse {
    let (components, reasons) = components(&s);
    let status = if reasons.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if reasons.is_empty() { "ready" } else { "not_ready" },
        "reasons": reasons,
        "components": components,
    });
    (status, Json(body))
}
