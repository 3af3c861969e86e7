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
//! - `json_text`: JSON strings (core's escaper) and integers, as serde writes them.
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
use payload_text::{MetadataText, PayloadText};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::collections::BTreeMap;
use switchyard_core::{Event, HttpExchange, JsonDocument, Payload, Transform, Verdict};
use time::OffsetDateTime;

/// Turns an exchange into a payload; `None` means "not an LLM call" and the
/// event is filtered. Implement it to plug your own shaping into
/// [`LlmTransform`].
pub trait Transformer: Send + Sync + 'static {
    /// Shape one exchange.
    fn transform(&self, exchange: &HttpExchange) -> Option<LlmPayload>;

    /// The payload of one exchange as the JSON document the engine carries:
    /// what serializing [`Transformer::transform`]'s payload gives.
    /// Override it only to produce the same text more cheaply.
    fn document(&self, exchange: &HttpExchange) -> Option<JsonDocument> {
        self.transform(exchange).map(|p| p.to_document())
    }
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

    fn body<'a>(
        &self,
        bytes: &'a [u8],
        encoding: Option<&str>,
        content_type: Option<&str>,
    ) -> JsonBody<'a> {
        let cap = self.config.max_body_bytes;
        match decode::decode(bytes, encoding, cap) {
            Decoded::Plain(Cow::Borrowed(plain)) => body::to_json(plain, content_type),
            Decoded::Plain(Cow::Owned(plain)) => body::to_json(&plain, content_type).into_owned(),
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

/// What the default transformer makes of an exchange, before it becomes an
/// [`LlmPayload`] or is written as one: the bodies stay JSON text, and the
/// exchange's strings are borrowed.
struct Shaped<'a> {
    event: &'static str,
    run_id: String,
    name: Option<Cow<'a, str>>,
    /// `name` needs no escaping (see [`JsonBody::model_plain`]).
    name_plain: bool,
    timestamp: OffsetDateTime,
    user_id: Option<String>,
    input: Option<Cow<'a, str>>,
    output: Option<Cow<'a, str>>,
    tokens_usage: Option<TokensUsage>,
    response_headers: Option<BTreeMap<String, HeaderValues>>,
}

impl DefaultTransformer {
    fn shape<'a>(&self, x: &'a HttpExchange) -> Option<Shaped<'a>> {
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
        fn model<'a>(b: &mut JsonBody<'a>) -> Option<(Cow<'a, str>, bool)> {
            Some((b.model.take()?, b.model_plain))
        }
        let (name, name_plain) = input
            .as_mut()
            .and_then(model)
            .or_else(|| output.as_mut().and_then(model))
            .map_or((None, false), |(m, plain)| (Some(m), plain));
        Some(Shaped {
            event: if x.status >= 400 { "error" } else { "end" },
            run_id: run_id::run_id(&run_key),
            name,
            name_plain,
            timestamp,
            user_id: input.as_mut().and_then(|b| b.user.take()),
            tokens_usage: output.as_ref().and_then(|b| b.tokens),
            input: input.map(|b| b.json),
            output: output.map(|b| b.json),
            response_headers: if self.config.verbose {
                self.headers(x)
            } else {
                None
            },
        })
    }
}

/// The payload's `type`.
const KIND: &str = "llm";

impl Transformer for DefaultTransformer {
    fn transform(&self, x: &HttpExchange) -> Option<LlmPayload> {
        let s = self.shape(x)?;
        // Text the body reader validated: it parses.
        let raw = |json: Cow<str>| {
            RawValue::from_string(json.into_owned()).expect("a body is kept as valid JSON")
        };
        Some(LlmPayload {
            kind: KIND.into(),
            event: s.event.into(),
            run_id: s.run_id,
            parent_run_id: None,
            name: s.name.map(Cow::into_owned),
            timestamp: s.timestamp,
            user_id: s.user_id,
            input: s.input.map(raw),
            output: s.output.map(raw),
            tokens_usage: s.tokens_usage,
            user_props: None,
            extra: None,
            metadata: Some(Metadata {
                method: x.method.clone(),
                path: x.path.clone(),
                status: x.status,
                duration_ms: x.duration_ns / 1_000_000,
                request_id: x.request_id.clone(),
                response_headers: s.response_headers,
            }),
            tags: None,
            log_id: x.log_id,
        })
    }

    /// The same text as `transform(x)?.to_document()`, written straight
    /// from the bodies' JSON text: no `RawValue` (which would parse each
    /// body a second time) and no copies of the exchange's strings.
    fn document(&self, x: &HttpExchange) -> Option<JsonDocument> {
        let s = self.shape(x)?;
        let text = PayloadText {
            kind: KIND,
            event: s.event,
            run_id: &s.run_id,
            parent_run_id: None,
            name: s.name.as_deref(),
            name_plain: s.name_plain,
            timestamp: s.timestamp,
            input: s.input.as_deref(),
            output: s.output.as_deref(),
            user_id: s.user_id.as_deref(),
            tokens_usage: s.tokens_usage,
            user_props: None,
            extra: None,
            metadata: Some(MetadataText {
                method: &x.method,
                path: &x.path,
                status: x.status,
                duration_ms: x.duration_ns / 1_000_000,
                request_id: &x.request_id,
                response_headers: s.response_headers.as_ref(),
            }),
            tags: None,
            log_id: x.log_id,
        }
        .write();
        Some(JsonDocument::from_valid_text(text))
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
        // Written by hand, byte for byte the serde form: the payload holds
        // only strings, numbers and valid raw JSON, so it always is a document.
        let Some(document) = self.transformer.document(exchange) else {
            return Verdict::Filter;
        };
        event.payload = Payload::Json(document);
        Verdict::Keep
    }
}
