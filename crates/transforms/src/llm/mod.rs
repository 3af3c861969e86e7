//! The LLM payload transformer: an HTTP exchange captured by an LLM proxy
//! becomes the [`LlmPayload`] observability backends read.
//!
//! Only POST requests describe model calls; other methods are filtered. Log
//! records and documents already transformed pass through unchanged. The
//! output is valid JSON whatever bytes the exchange carried: bodies that are
//! not JSON become JSON strings or placeholders, never errors.
//!
//! # Layout
//! - [`payload`]: the payload shape (the contract with the LLM sinks).
//! - `payload_text`: the payload written as JSON text by hand (serde's bytes).
//! - `json_text`: JSON strings and integers, as serde writes them, faster.
//! - [`decode`]: gzip / brotli / deflate, capped against decompression bombs.
//! - [`body`]: a decoded body as JSON, by content type.
//! - [`sse`]: a streamed completion merged into one object.
//! - `chunk`: what one chunk of a stream contributes, read fast.
//! - `scan`: a JSON walker that validates and picks fields without building.
//! - [`usage`]: token counts from `usage`.
//! - [`run_id`]: deterministic run ids (UUIDv5 of the request id).
//! - [`redact`]: credential headers hidden.

pub mod body;
mod chunk;
pub mod decode;
mod json_text;
pub mod payload;
mod payload_text;
pub mod redact;
pub mod run_id;
mod scan;
pub mod sse;
pub mod usage;

pub use payload::{HeaderValues, LlmPayload, Metadata, TokensUsage};
pub use redact::Redactor;

use body::JsonBody;
use decode::Decoded;
use std::collections::BTreeMap;
use switchyard_core::{Event, HttpExchange, Payload, Transform, Verdict};
use time::OffsetDateTime;

/// Turns an exchange into a payload; `None` means "not an LLM call" and the
/// event is filtered. Implement it to plug your own shaping into
/// [`LlmTransform`].
pub trait Transformer: Send + Sync + 'static {
    /// Shape one exchange.
    fn transform(&self, exchange: &HttpExchange) -> Option<LlmPayload>;
}

/// Settings of the default transformer.
#[derive(Debug, Clone)]
pub struct LlmConfig {
    /// Add the response headers to `metadata`.
    pub verbose: bool,
    /// Headers whose values are hidden.
    pub redact: Redactor,
    /// Largest decoded body, bytes; larger bodies become a placeholder.
    pub max_body_bytes: usize,
}

impl Default for LlmConfig {
    fn default() -> Self {
        Self {
            verbose: false,
            redact: Redactor::default(),
            max_body_bytes: 16 * 1024 * 1024,
        }
    }
}

/// The transformation the spec describes.
#[derive(Debug, Clone, Default)]
pub struct DefaultTransformer {
    config: LlmConfig,
}

impl DefaultTransformer {
    /// With these settings.
    pub fn new(config: LlmConfig) -> Self {
        Self { config }
    }

    fn body(&self, bytes: &[u8], encoding: Option<&str>, content_type: Option<&str>) -> JsonBody {
        let cap = self.config.max_body_bytes;
        match decode::decode(bytes, encoding, cap) {
            Decoded::Plain(plain) => body::to_json(&plain, content_type),
            Decoded::TooLarge => JsonBody::string(&format!("<body omitted: over {cap} bytes>")),
            // The capturing proxy may have stored the body already decoded
            // under its original header: read the bytes as they are.
            Decoded::Corrupt(_) => body::to_json(bytes, content_type),
            Decoded::Unsupported(coding) => {
                JsonBody::string(&format!("<{coding}-encoded body omitted>"))
            }
        }
    }

    fn headers(&self, x: &HttpExchange) -> Option<BTreeMap<String, HeaderValues>> {
        let headers = x.response_headers.as_ref()?;
        let redact = &self.config.redact;
        Some(
            headers
                .iter()
                .map(|(name, values)| {
                    let mut values: Vec<String> = values
                        .iter()
                        .map(|v| redact.value(name, v).to_owned())
                        .collect();
                    let v = if values.len() == 1 {
                        HeaderValues::One(values.remove(0))
                    } else {
                        HeaderValues::Many(values)
                    };
                    (name.clone(), v)
                })
                .collect(),
        )
    }
}

fn header<'a>(x: &'a HttpExchange, name: &str) -> Option<&'a str> {
    x.response_headers
        .as_ref()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| v.first())
        .map(String::as_str)
}

impl Transformer for DefaultTransformer {
    fn transform(&self, x: &HttpExchange) -> Option<LlmPayload> {
        if !x.method.eq_ignore_ascii_case("POST") {
            return None;
        }
        let mut input = x
            .request_body
            .as_deref()
            .filter(|b| !b.is_empty())
            .map(|b| self.body(b, None, None));
        let mut output = x
            .response_body
            .as_deref()
            .filter(|b| !b.is_empty())
            .map(|b| self.body(b, header(x, "Content-Encoding"), header(x, "Content-Type")));
        let timestamp = x.timestamp.unwrap_or_else(OffsetDateTime::now_utc);
        let run_key: std::borrow::Cow<str> = if x.request_id.is_empty() {
            // No request id: name the exchange by its stable fields.
            format!(
                "log:{}:{}:{}",
                x.log_id,
                payload::rfc3339_millis::format(timestamp),
                x.path
            )
            .into()
        } else {
            x.request_id.as_str().into()
        };
        let name = input
            .as_mut()
            .and_then(|b| b.model.take())
            .or_else(|| output.as_mut().and_then(|b| b.model.take()));
        let tokens_usage = output.as_ref().and_then(|b| b.tokens);
        Some(LlmPayload {
            kind: "llm".into(),
            event: if x.status >= 400 { "error" } else { "end" }.into(),
            run_id: run_id::run_id(&run_key),
            parent_run_id: None,
            name,
            timestamp,
            user_id: input.as_mut().and_then(|b| b.user.take()),
            input: input.map(|b| b.json),
            output: output.map(|b| b.json),
            tokens_usage,
            user_props: None,
            extra: None,
            metadata: Some(Metadata {
                method: x.method.clone(),
                path: x.path.clone(),
                status: x.status,
                duration_ms: x.duration_ns / 1_000_000,
                request_id: x.request_id.clone(),
                response_headers: if self.config.verbose {
                    self.headers(x)
                } else {
                    None
                },
            }),
            tags: None,
            log_id: x.log_id,
        })
    }
}

/// The engine-facing transform: applies a [`Transformer`] to HTTP exchanges,
/// filters what it rejects, and passes every other payload through.
#[derive(Debug, Clone, Default)]
pub struct LlmTransform<T = DefaultTransformer> {
    transformer: T,
}

impl LlmTransform<DefaultTransformer> {
    /// The default transformer with these settings.
    pub fn default_with(config: LlmConfig) -> Self {
        Self::new(DefaultTransformer::new(config))
    }
}

impl<T: Transformer> LlmTransform<T> {
    /// Wrap a transformer.
    pub fn new(transformer: T) -> Self {
        Self { transformer }
    }
}

impl<T: Transformer> Transform for LlmTransform<T> {
    fn apply(&self, event: &mut Event) -> Verdict {
        let Payload::Http(exchange) = &event.payload else {
            return Verdict::Keep;
        };
        let Some(payload) = self.transformer.transform(exchange) else {
            return Verdict::Filter;
        };
        // Written by hand, byte for byte the serde form: the payload holds
        // only strings, numbers and valid raw JSON, so it always is a document.
        event.payload = Payload::Json(payload.to_document());
        Verdict::Keep
    }
}
