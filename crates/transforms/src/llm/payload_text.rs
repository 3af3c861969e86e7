//! An [`LlmPayload`] as JSON text, written by hand: the same bytes as its
//! serde form (the tests compare the two), without a second parse to wrap the
//! result as a document and with strings escaped a word at a time.

use super::json_text::{push_i64, push_str, push_u64};
use super::payload::{rfc3339_millis, HeaderValues, LlmPayload, TokensUsage};
use serde_json::value::RawValue;
use std::collections::BTreeMap;
use switchyard_core::JsonDocument;
use time::OffsetDateTime;

impl LlmPayload {
    /// The payload as a document, byte for byte what serializing it with
    /// serde gives.
    pub fn to_document(&self) -> JsonDocument {
        JsonDocument::from_valid_text(self.to_json_text())
    }

    /// The payload's JSON text (see [`LlmPayload::to_document`]).
    pub fn to_json_text(&self) -> String {
        PayloadText {
            kind: &self.kind,
            event: &self.event,
            run_id: &self.run_id,
            parent_run_id: self.parent_run_id.as_deref(),
            name: self.name.as_deref(),
            name_plain: false,
            timestamp: self.timestamp,
            input: self.input.as_deref().map(RawValue::get),
            output: self.output.as_deref().map(RawValue::get),
            user_id: self.user_id.as_deref(),
            tokens_usage: self.tokens_usage,
            user_props: self.user_props.as_deref().map(RawValue::get),
            extra: self.extra.as_deref().map(RawValue::get),
            metadata: self.metadata.as_ref().map(|m| MetadataText {
                method: &m.method,
                path: &m.path,
                status: m.status,
                duration_ms: m.duration_ms,
                request_id: &m.request_id,
                response_headers: m.response_headers.as_ref(),
            }),
            tags: self.tags.as_deref(),
            log_id: self.log_id,
        }
        .write()
    }
}

/// The parts of an [`LlmPayload`], borrowed, ready to be written: the
/// transformer writes its payload from here without building (and copying
/// its bodies into) an `LlmPayload` first. `input`, `output`, `user_props`
/// and `extra` must be valid JSON text.
pub(crate) struct PayloadText<'a> {
    pub kind: &'a str,
    pub event: &'a str,
    pub run_id: &'a str,
    pub parent_run_id: Option<&'a str>,
    pub name: Option<&'a str>,
    /// `name` holds nothing JSON escapes: it is written between quotes
    /// as it is, without scanning it.
    pub name_plain: bool,
    pub timestamp: OffsetDateTime,
    pub input: Option<&'a str>,
    pub output: Option<&'a str>,
    pub user_id: Option<&'a str>,
    pub tokens_usage: Option<TokensUsage>,
    pub user_props: Option<&'a str>,
    pub extra: Option<&'a str>,
    pub metadata: Option<MetadataText<'a>>,
    pub tags: Option<&'a [String]>,
    pub log_id: i64,
}

/// [`Metadata`](super::Metadata), borrowed.
pub(crate) struct MetadataText<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub status: i64,
    pub duration_ms: i64,
    pub request_id: &'a str,
    pub response_headers: Option<&'a BTreeMap<String, HeaderValues>>,
}

impl PayloadText<'_> {
    /// The JSON text, keys in the payload's order, as serde writes it.
    pub fn write(&self) -> String {
        let mut out = String::with_capacity(self.text_size_hint());
        let mut o = Object::open(&mut out);
        o.key("type").str(self.kind);
        o.key("event").str(self.event);
        o.key("runId").str(self.run_id);
        if let Some(v) = self.parent_run_id {
            o.key("parentRunId").str(v);
        }
        if let Some(v) = self.name {
            let name = o.key("name");
            if self.name_plain {
                name.plain_str(v);
            } else {
                name.str(v);
            }
        }
        // Digits, `-`, `:`, `T`, `.`, `Z`: nothing to escape.
        let ts = o.key("timestamp").out;
        ts.push('"');
        rfc3339_millis::format_into(self.timestamp, ts);
        ts.push('"');
        if let Some(v) = self.input {
            o.key("input").raw(v);
        }
        if let Some(v) = self.output {
            o.key("output").raw(v);
        }
        if let Some(v) = self.user_id {
            o.key("userId").str(v);
        }
        if let Some(t) = &self.tokens_usage {
            let out = o.key("tokensUsage").out;
            let mut t_obj = Object::open(out);
            t_obj.key("completion").u64(t.completion);
            t_obj.key("prompt").u64(t.prompt);
            t_obj.close();
        }
        if let Some(v) = self.user_props {
            o.key("userProps").raw(v);
        }
        if let Some(v) = self.extra {
            o.key("extra").raw(v);
        }
        if let Some(m) = &self.metadata {
            metadata(o.key("metadata").out, m);
        }
        if let Some(tags) = self.tags {
            strings(o.key("tags").out, tags);
        }
        o.key("log_id").i64(self.log_id);
        o.close();
        out
    }

    /// Bytes the text will take, roughly and never far below: the raw
    /// documents and strings plus room for keys, escapes and numbers, so the
    /// buffer is not regrown (and copied) while it is written.
    fn text_size_hint(&self) -> usize {
        let raw = |v: Option<&str>| v.map_or(0, str::len);
        let text = |v: Option<&str>| v.map_or(0, |s| s.len() + 8);
        let meta = self.metadata.as_ref().map_or(0, |m| {
            m.method.len() + m.path.len() + m.request_id.len() + 128
        });
        256 + self.kind.len()
            + self.event.len()
            + self.run_id.len()
            + text(self.parent_run_id)
            + text(self.name)
            + text(self.user_id)
            + raw(self.input)
            + raw(self.output)
            + raw(self.user_props)
            + raw(self.extra)
            + meta
    }
}

fn metadata(out: &mut String, m: &MetadataText<'_>) {
    let mut o = Object::open(out);
    o.key("method").str(m.method);
    o.key("path").str(m.path);
    o.key("status").i64(m.status);
    o.key("duration_ms").i64(m.duration_ms);
    o.key("request_id").str(m.request_id);
    if let Some(headers) = m.response_headers {
        let mut h = Object::open(o.key("response_headers").out);
        for (name, values) in headers {
            let out = h.key_escaped(name).out;
            match values {
                HeaderValues::One(v) => push_str(out, v),
                HeaderValues::Many(vs) => strings(out, vs),
            }
        }
        h.close();
    }
    o.close();
}

fn strings(out: &mut String, items: &[String]) {
    out.push('[');
    for (i, s) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_str(out, s);
    }
    out.push(']');
}

/// An object being written: commas between members, keys escaped.
struct Object<'a> {
    out: &'a mut String,
    first: bool,
}

/// The place for one member's value.
struct Value<'a> {
    out: &'a mut String,
}

impl<'a> Object<'a> {
    fn open(out: &'a mut String) -> Self {
        out.push('{');
        Self { out, first: true }
    }

    /// A key of the payload's own: plain ASCII, which JSON writes as it
    /// is, so it is not scanned for escapes (some twenty per payload).
    fn key(&mut self, key: &'static str) -> Value<'_> {
        debug_assert!(key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
        self.comma();
        self.out.push('"');
        self.out.push_str(key);
        self.out.push_str("\":");
        Value { out: self.out }
    }

    /// A key from the data (a header name), escaped.
    fn key_escaped(&mut self, key: &str) -> Value<'_> {
        self.comma();
        push_str(self.out, key);
        self.out.push(':');
        Value { out: self.out }
    }

    fn comma(&mut self) {
        if !std::mem::replace(&mut self.first, false) {
            self.out.push(',');
        }
    }

    fn close(self) {
        self.out.push('}');
    }
}

impl Value<'_> {
    fn str(self, s: &str) {
        push_str(self.out, s);
    }

    /// A string known to need no escapes, between quotes.
    fn plain_str(self, s: &str) {
        self.out.reserve(s.len() + 2);
        self.out.push('"');
        self.out.push_str(s);
        self.out.push('"');
    }

    /// Valid JSON text, as it is.
    fn raw(self, v: &str) {
        self.out.push_str(v);
    }

    fn i64(self, n: i64) {
        push_i64(self.out, n);
    }

    fn u64(self, n: u64) {
        push_u64(self.out, n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::payload::{Metadata, TokensUsage};
    use proptest::option;
    use proptest::prelude::*;
    use std::collections::BTreeMap;
    use time::OffsetDateTime;

    fn text() -> impl Strategy<Value = String> {
        "(\\PC|[\"\\\\\\x00-\\x1f]|é){0,12}"
    }

    fn raw() -> impl Strategy<Value = Box<RawValue>> {
        prop_oneof![
            Just(r#"{"a":[1,2,{"b":"\u00e9\n"}]}"#),
            Just("null"),
            Just("\"text\""),
            Just("[]"),
            Just("-1.5e3"),
        ]
        .prop_map(|s| RawValue::from_string(s.to_string()).unwrap())
    }

    fn headers() -> impl Strategy<Value = BTreeMap<String, HeaderValues>> {
        let values = prop_oneof![
            text().prop_map(HeaderValues::One),
            proptest::collection::vec(text(), 0..3).prop_map(HeaderValues::Many),
        ];
        proptest::collection::btree_map(text(), values, 0..3)
    }

    fn metadata() -> impl Strategy<Value = Metadata> {
        (
            text(),
            text(),
            any::<i64>(),
            any::<i64>(),
            text(),
            option::of(headers()),
        )
            .prop_map(
                |(method, path, status, duration_ms, request_id, response_headers)| Metadata {
                    method,
                    path,
                    status,
                    duration_ms,
                    request_id,
                    response_headers,
                },
            )
    }

    fn payload() -> impl Strategy<Value = LlmPayload> {
        (
            (
                text(),
                text(),
                text(),
                option::of(text()),
                option::of(text()),
            ),
            -70_000_000_000_000_000_000i128..250_000_000_000_000_000_000i128,
            (option::of(raw()), option::of(raw()), option::of(text())),
            option::of((any::<u64>(), any::<u64>())),
            (option::of(raw()), option::of(raw())),
            option::of(metadata()),
            option::of(proptest::collection::vec(text(), 0..3)),
            any::<i64>(),
        )
            .prop_map(
                |(
                    (kind, event, run_id, parent_run_id, name),
                    nanos,
                    (input, output, user_id),
                    tokens,
                    (user_props, extra),
                    metadata,
                    tags,
                    log_id,
                )| LlmPayload {
                    kind,
                    event,
                    run_id,
                    parent_run_id,
                    name,
                    timestamp: OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap(),
                    input,
                    output,
                    user_id,
                    tokens_usage: tokens
                        .map(|(completion, prompt)| TokensUsage { completion, prompt }),
                    user_props,
                    extra,
                    metadata,
                    tags,
                    log_id,
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        /// Every optional member present or not, strings needing escapes
        /// everywhere (keys of the header map included), extreme numbers.
        #[test]
        fn written_text_is_the_serde_text(p in payload()) {
            let doc = p.to_document();
            prop_assert_eq!(doc.get(), serde_json::to_string(&p).unwrap());
        }
    }
}
