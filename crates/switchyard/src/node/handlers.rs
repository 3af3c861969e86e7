//! The built-in handlers a node config can bind without writing Rust:
//! `echo`, `publish` (into this node's event pipeline) and `http` (forward the
//! payload's bytes to a URL).

use serde_json::json;
use std::sync::RwLock;
use std::time::Duration;
use switchyard_core::{Event, LogRecord};
use switchyard_engine::intake::SendError;
use switchyard_engine::IntakeSender;
use switchyard_mesh::any::{self, BYTES_TYPE_URL, JSON_TYPE_URL};
use switchyard_mesh::{CallContext, HandlerError};

/// `echo`: the input, unchanged.
pub async fn echo(input: prost_types::Any) -> Result<prost_types::Any, HandlerError> {
    Ok(input)
}

/// `publish`: the payload becomes one event in this node's pipeline. A JSON
/// object is read as a log record (its keys kept); other UTF-8 text becomes
/// the record's message; anything else is refused.
pub struct Publisher {
    /// `None` once the node is stopping, so the engine can drain and end.
    tx: RwLock<Option<IntakeSender>>,
    /// Longest a call waits for queue room before answering "full".
    wait: Duration,
}

impl Publisher {
    pub fn new(tx: IntakeSender, wait: Duration) -> Self {
        Self {
            tx: RwLock::new(Some(tx)),
            wait,
        }
    }

    /// Refuse further events and release the intake sender.
    pub fn close(&self) {
        self.tx.write().unwrap_or_else(|e| e.into_inner()).take();
    }

    pub async fn publish(
        &self,
        ctx: CallContext,
        input: prost_types::Any,
    ) -> Result<prost_types::Any, HandlerError> {
        let mut record = to_record(&input)?;
        record.source_type = Some("mesh");
        record.source_id = Some(format!("{}/{}", ctx.namespace, ctx.method));
        let event: Event = record.into();
        let id = event.id.to_string();
        let tx = self
            .tx
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| HandlerError::new("the node's pipeline is shutting down"))?;
        tx.send_timeout(vec![event], self.wait)
            .await
            .map_err(|e| match e {
                SendError::Full(_) => HandlerError::new(format!(
                    "the node's pipeline queue is full (waited {} ms); retry later",
                    self.wait.as_millis()
                )),
                SendError::Closed(_) => HandlerError::new("the node's pipeline has stopped"),
            })?;
        Ok(any::json(
            &json!({"accepted": 1, "event_id": id}).to_string(),
        ))
    }
}

fn to_record(input: &prost_types::Any) -> Result<LogRecord, HandlerError> {
    let value = input.value.as_slice();
    let first = value.iter().find(|b| !b.is_ascii_whitespace());
    if first == Some(&b'{') {
        return serde_json::from_slice(value).map_err(|e| {
            HandlerError::new(format!(
                "publish: the payload is not a valid JSON object: {e}"
            ))
        });
    }
    let text = std::str::from_utf8(value).map_err(|_| {
        HandlerError::new(format!(
            "publish: the payload of type `{}` is neither a JSON object nor UTF-8 text",
            input.type_url
        ))
    })?;
    if text.trim().is_empty() {
        return Err(HandlerError::new("publish: the payload is empty"));
    }
    Ok(LogRecord::new(text))
}

/// `http`: POST the payload's bytes to `url`; a 2xx response body becomes the
/// output (`Any` of JSON type when the response says JSON, else bytes). The
/// response body is read up to `limit` bytes.
pub struct HttpForward {
    pub client: reqwest::Client,
    pub url: String,
    pub timeout: Duration,
    pub limit: usize,
}

impl HttpForward {
    pub async fn call(
        &self,
        ctx: CallContext,
        input: prost_types::Any,
    ) -> Result<prost_types::Any, HandlerError> {
        let content_type = if input.type_url == JSON_TYPE_URL {
            "application/json"
        } else {
            "application/octet-stream"
        };
        // The caller's deadline, if sooner, bounds the request too.
        let timeout = ctx
            .remaining()
            .map_or(self.timeout, |r| r.min(self.timeout));
        let mut request = self
            .client
            .post(&self.url)
            .timeout(timeout)
            .header("content-type", content_type)
            .header("x-switchyard-type-url", input.type_url.as_str())
            .body(input.value);
        if let Some(trace) = &ctx.traceparent {
            request = request.header("traceparent", trace.as_str());
        }
        let mut response = request
            .send()
            .await
            .map_err(|e| HandlerError::new(format!("http: POST {} failed: {e}", self.url)))?;
        let status = response.status();
        let is_json = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| HandlerError::new(format!("http: reading the response failed: {e}")))?
        {
            if body.len() + chunk.len() > self.limit {
                return Err(HandlerError::new(format!(
                    "http: the response is larger than {} bytes",
                    self.limit
                )));
            }
            body.extend_from_slice(&chunk);
        }
        if !status.is_success() {
            let snippet = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
            return Err(HandlerError::new(format!(
                "http: POST {} answered {status}: {snippet}",
                self.url
            )));
        }
        Ok(prost_types::Any {
            type_url: if is_json {
                JSON_TYPE_URL
            } else {
                BYTES_TYPE_URL
            }
            .to_string(),
            value: body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn any_of(bytes: &[u8]) -> prost_types::Any {
        prost_types::Any {
            type_url: "t".into(),
            value: bytes.to_vec(),
        }
    }

    #[test]
    fn publish_payloads() {
        let r = to_record(&any_of(br#"{"message":"hi","tenant":"t1"}"#)).unwrap();
        assert_eq!(r.message.as_deref(), Some("hi"));
        assert_eq!(r.fields.get("tenant").unwrap().get(), "\"t1\"");
        assert_eq!(
            to_record(&any_of(b"plain text"))
                .unwrap()
                .message
                .as_deref(),
            Some("plain text")
        );
        assert!(to_record(&any_of(b"{broken"))
            .unwrap_err()
            .0
            .contains("not a valid JSON object"));
        assert!(to_record(&any_of(&[0xff, 0xfe]))
            .unwrap_err()
            .0
            .contains("neither"));
        assert!(to_record(&any_of(b"  ")).is_err());
    }

    /// A local HTTP server: `/upper` answers the body upper-cased as JSON
    /// (echoing the type-url header), `/fail` answers 502, `/big` 10 KiB.
    async fn server() -> String {
        use axum::http::HeaderMap;
        use axum::routing::post;
        let app = axum::Router::new()
            .route(
                "/upper",
                post(|h: HeaderMap, body: String| async move {
                    let t = h["x-switchyard-type-url"].to_str().unwrap().to_string();
                    axum::Json(json!({"upper": body.to_uppercase(), "type": t}))
                }),
            )
            .route(
                "/fail",
                post(|| async { (axum::http::StatusCode::BAD_GATEWAY, "upstream down") }),
            )
            .route("/big", post(|| async { "x".repeat(10 * 1024) }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}")
    }

    fn forward(base: &str, path: &str) -> HttpForward {
        HttpForward {
            client: reqwest::Client::new(),
            url: format!("{base}{path}"),
            timeout: Duration::from_secs(5),
            limit: 4096,
        }
    }

    #[tokio::test]
    async fn http_forwards_bytes_and_returns_the_response_as_any() {
        let base = server().await;
        let out = forward(&base, "/upper")
            .call(CallContext::default(), any::json(r#"{"a":"b"}"#))
            .await
            .unwrap();
        assert_eq!(out.type_url, JSON_TYPE_URL);
        let v: serde_json::Value = serde_json::from_slice(&out.value).unwrap();
        assert_eq!(v["upper"], r#"{"A":"B"}"#);
        assert_eq!(v["type"], JSON_TYPE_URL);

        let err = forward(&base, "/fail")
            .call(CallContext::default(), any::json("{}"))
            .await
            .unwrap_err();
        assert!(
            err.0.contains("502") && err.0.contains("upstream down"),
            "{err}"
        );
        let err = forward(&base, "/big")
            .call(CallContext::default(), any::json("{}"))
            .await
            .unwrap_err();
        assert!(err.0.contains("larger than 4096 bytes"), "{err}");
        let err = forward("http://127.0.0.1:9", "/x")
            .call(CallContext::default(), any::json("{}"))
            .await
            .unwrap_err();
        assert!(
            err.0.starts_with("http: POST http://127.0.0.1:9/x failed"),
            "{err}"
        );
    }
}
