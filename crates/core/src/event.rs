//! The [`Event`] envelope: a stable id, a payload and an acknowledgement token.

use crate::ack::{AckToken, Fate};
use crate::{HttpExchange, LogRecord};
use serde_json::value::RawValue;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// Stable identifier of an event, assigned once when it enters Switchyard and
/// kept through transforms and retries. A per-process random prefix and a
/// counter: unique without coordination, and cheap.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventId(u128);

impl EventId {
    /// A fresh id.
    pub fn new() -> Self {
        static PREFIX: OnceLock<u64> = OnceLock::new();
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let prefix = *PREFIX.get_or_init(|| fastrand::u64(..));
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        Self(((prefix as u128) << 64) | n as u128)
    }

    /// The id a number from [`EventId::as_u128`] stood for: an event read
    /// back from a disk buffer keeps the id it was given on entry.
    pub fn from_u128(n: u128) -> Self {
        Self(n)
    }

    /// The id as a number.
    pub fn as_u128(self) -> u128 {
        self.0
    }
}

impl Default for EventId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl fmt::Debug for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EventId({self})")
    }
}

/// What an event carries.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    /// An HTTP exchange captured by an LLM proxy.
    Http(HttpExchange),
    /// A log record.
    Log(LogRecord),
    /// A document already shaped for its destination by a transform (the LLM
    /// payload transformer writes one per call). Sinks that write JSON write it
    /// as-is; sinks that need its fields read them from the JSON, so a custom
    /// transform only has to produce the same documented shape.
    Json(JsonDocument),
}

/// One valid JSON document, kept as text: it is written far more often than
/// it is inspected, and the text is what every sink sends.
#[derive(Debug, Clone)]
pub struct JsonDocument(Box<str>);

impl JsonDocument {
    /// Wrap a document (already valid JSON by construction of `RawValue`).
    pub fn new(raw: Box<RawValue>) -> Self {
        Self(raw.into())
    }

    /// Serialize `value` into a document.
    pub fn from_value<T: serde::Serialize + ?Sized>(value: &T) -> serde_json::Result<Self> {
        serde_json::value::to_raw_value(value).map(Self::new)
    }

    /// Wrap text that a writer produced as one valid JSON document by
    /// construction, without parsing it again: validating a payload of a few
    /// KB costs about as much as writing it, on every event. The writer's
    /// tests are what vouch for it; debug builds check each document too.
    pub fn from_valid_text(text: String) -> Self {
        debug_assert!(
            serde_json::from_str::<&RawValue>(&text).is_ok(),
            "not one valid JSON document: {text}"
        );
        Self(text.into_boxed_str())
    }

    /// The JSON text.
    pub fn get(&self) -> &str {
        &self.0
    }
}

/// Equal when the JSON text is identical.
impl PartialEq for JsonDocument {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

/// One event on its way through the pipeline.
#[derive(Debug, Clone)]
pub struct Event {
    /// Stable id.
    pub id: EventId,
    /// The content.
    pub payload: Payload,
    ack: AckToken,
}

impl Event {
    /// A new event with a fresh id and no acknowledgement.
    pub fn new(payload: Payload) -> Self {
        Self {
            id: EventId::new(),
            payload,
            ack: AckToken::none(),
        }
    }

    /// Attach the source's acknowledgement token.
    pub fn with_ack(mut self, ack: AckToken) -> Self {
        self.ack = ack;
        self
    }

    /// Record this event's final fate for its source.
    pub fn resolve(&mut self, fate: Fate) {
        self.ack.resolve(fate);
    }

    /// `n` copies of this event for `n` sinks, sharing one acknowledgement:
    /// the source learns the worst fate once every copy is settled.
    pub fn fan_out(self, n: usize) -> Vec<Event> {
        let Event { id, payload, ack } = self;
        let mut tokens = ack.split(n);
        let mut out = Vec::with_capacity(n);
        if let Some(last) = tokens.pop() {
            for token in tokens {
                out.push(Event {
                    id,
                    payload: payload.clone(),
                    ack: token,
                });
            }
            out.push(Event {
                id,
                payload,
                ack: last,
            });
        }
        out
    }

    /// Bytes this event holds, roughly: what buffers count against their
    /// byte bound. Cheap (no encoding); within a small factor of the JSON size.
    pub fn size_hint(&self) -> usize {
        const OVERHEAD: usize = 64;
        OVERHEAD
            + match &self.payload {
                Payload::Http(x) => {
                    x.request_id.len()
                        + x.method.len()
                        + x.path.len()
                        + x.request_body.as_ref().map_or(0, |b| b.len())
                        + x.response_body.as_ref().map_or(0, |b| b.len())
                        + x.response_headers.as_ref().map_or(0, |h| {
                            h.iter()
                                .map(|(k, v)| k.len() + v.iter().map(String::len).sum::<usize>())
                                .sum()
                        })
                }
                Payload::Log(r) => {
                    r.message.as_ref().map_or(0, String::len)
                        + r.level.as_ref().map_or(0, String::len)
                        + r.labels
                            .iter()
                            .map(|(k, v)| k.len() + v.len())
                            .sum::<usize>()
                        + r.fields.as_members().len()
                }
                Payload::Json(doc) => doc.get().len(),
            }
    }

    /// Append the event's wire JSON (no newline) to `out`: the spec's Go form for
    /// an HTTP exchange, the flat object for a log record.
    pub fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        match &self.payload {
            Payload::Http(x) => x.write_json(out),
            Payload::Log(r) => r.write_json(out),
            Payload::Json(doc) => {
                out.extend_from_slice(doc.get().as_bytes());
                Ok(())
            }
        }
    }
}

impl From<HttpExchange> for Event {
    fn from(x: HttpExchange) -> Self {
        Event::new(Payload::Http(x))
    }
}

impl From<LogRecord> for Event {
    fn from(r: LogRecord) -> Self {
        Event::new(Payload::Log(r))
    }
}
