//! The node's admin HTTP API: `/health`, `/metrics` (Prometheus text 0.0.4,
//! or OpenMetrics when the scraper's `Accept` asks for it),
//! `/peers`, and `/namespaces` (GET, or PUT a JSON array to change them at run
//! time; they are re-announced to every peer). When the mesh has a token,
//! PUT needs it too.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use std::sync::Arc;
use switchyard_mesh::security::constant_time_eq;
use switchyard_mesh::Dispatcher;

/// Extra metric families (the pipeline's counters) in OpenMetrics text,
/// without `# EOF`.
pub type ExtraMetrics = Arc<dyn Fn() -> String + Send + Sync>;

#[derive(Clone)]
struct Admin {
    node: Dispatcher,
    /// The whole expected `authorization` value, `Bearer <token>`.
    authorization: Option<Arc<str>>,
    extra: ExtraMetrics,
}

pub fn router(node: Dispatcher, token: Option<String>, extra: ExtraMetrics) -> Router {
    Router::new()
        .route("/health", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .route("/peers", get(peers))
        .route("/namespaces", get(namespaces).put(set_namespaces))
        .with_state(Admin {
            node,
            authorization: token.map(|t| Arc::from(format!("Bearer {t}"))),
            extra,
        })
}

async fn metrics(State(a): State<Admin>, headers: HeaderMap) -> Response {
    let text = a.node.metrics_text();
    // The registry ends with `# EOF`; the extra families go before it.
    let text = match text.strip_suffix("# EOF\n") {
        Some(families) => format!("{families}{}# EOF\n", (a.extra)()),
        None => format!("{text}{}# EOF\n", (a.extra)()),
    };
    crate::pipeline::admin::metrics_response(&headers, text)
}

async fn peers(State(a): State<Admin>) -> Json<Value> {
    let peers: Vec<Value> = a
        .node
        .peers()
        .into_iter()
        .map(|p| {
            json!({
                "id": p.id,
                "address": p.address,
                "shared_namespaces": p.shared_namespaces,
                "healthy": p.healthy,
                "breaker_open": p.breaker_open,
            })
        })
        .collect();
    Json(json!({ "id": a.node.id(), "peers": peers }))
}

async fn namespaces(State(a): State<Admin>) -> Json<Value> {
    Json(json!({ "namespaces": a.node.namespaces() }))
}

async fn set_namespaces(
    State(a): State<Admin>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Some(expected) = &a.authorization {
        let given = headers
            .get(header::AUTHORIZATION)
            .map(|v| v.as_bytes())
            .unwrap_or_default();
        // Constant time: a plain `!=` stops at the first wrong byte, which
        // lets a caller find the token one byte at a time by timing.
        if !constant_time_eq(given, expected.as_bytes()) {
            return (StatusCode::UNAUTHORIZED, "missing or wrong bearer token\n").into_response();
        }
    }
    let namespaces: Vec<String> = match serde_json::from_slice(&body) {
        Ok(n) => n,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("expected a JSON array of namespace names: {e}\n"),
            )
                .into_response()
        }
    };
    if namespaces.iter().any(|n| n.trim().is_empty()) {
        return (
            StatusCode::BAD_REQUEST,
            "namespace names must not be empty\n",
        )
            .into_response();
    }
    let reannounced = a.node.set_namespaces(namespaces).await;
    Json(json!({ "namespaces": a.node.namespaces(), "reannounced": reannounced })).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn put_namespaces_needs_the_token_and_applies_them() {
        let node = Dispatcher::new("a", "127.0.0.1:1", ["x"]);
        let extra: ExtraMetrics = Arc::new(|| "switchyard_node_test 1\n".to_string());
        let app = router(node.clone(), Some("tok".into()), extra);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        let http = reqwest::Client::new();
        let put = |auth: Option<&str>, body: &str| {
            let mut r = http
                .put(format!("{base}/namespaces"))
                .body(body.to_string());
            if let Some(a) = auth {
                r = r.header("authorization", a);
            }
            r.send()
        };
        assert_eq!(put(None, r#"["x","y"]"#).await.unwrap().status(), 401);
        assert_eq!(
            put(Some("Bearer nope"), r#"["x","y"]"#)
                .await
                .unwrap()
                .status(),
            401
        );
        // Near misses: the right prefix, one byte too many, the last byte wrong.
        for wrong in [
            "Bearer to",
            "Bearer tokk",
            "Bearer toK",
            "bearer tok",
            "tok",
        ] {
            assert_eq!(
                put(Some(wrong), r#"["x","y"]"#).await.unwrap().status(),
                401,
                "{wrong}"
            );
        }
        assert_eq!(node.namespaces(), ["x"], "refused calls changed nothing");
        assert_eq!(
            put(Some("Bearer tok"), r#"{"x":1}"#)
                .await
                .unwrap()
                .status(),
            400
        );
        assert_eq!(
            put(Some("Bearer tok"), r#"["x",""]"#)
                .await
                .unwrap()
                .status(),
            400
        );
        let ok = put(Some("Bearer tok"), r#"["x","y"]"#).await.unwrap();
        assert_eq!(ok.status(), 200);
        let body: Value = serde_json::from_str(&ok.text().await.unwrap()).unwrap();
        assert_eq!(body, json!({"namespaces": ["x", "y"], "reannounced": 0}));
        assert_eq!(node.namespaces(), ["x", "y"]);

        let metrics = http
            .get(format!("{base}/metrics"))
            .header("accept", "application/openmetrics-text")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            metrics.ends_with("switchyard_node_test 1\n# EOF\n"),
            "{metrics}"
        );
        let text = http
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(text.ends_with("switchyard_node_test 1\n"), "{text}");
    }
}
