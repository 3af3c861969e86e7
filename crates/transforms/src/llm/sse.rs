//! Merging a streamed chat completion (Server-Sent Events, one
//! `chat.completion.chunk` per `data:` event, ending with `data: [DONE]`)
//! into one completion object, so backends see the same shape for streamed and
//! non-streamed calls.
//!
//! Rules: content is the concatenation of `choices[0].delta.content`; the
//! finish reason is the last non-empty one; `id`, `object`, `created` and
//! `model` come from the first chunk that has them; `usage` from the chunk
//! that carries it (the last one, when several do).

use super::body::JsonBody;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;
use std::borrow::Cow;

/// The merged completion, keys in the order providers send them.
#[derive(Serialize, Default)]
struct Merged {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<Box<RawValue>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    object: Option<Box<RawValue>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    created: Option<Box<RawValue>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<Box<RawValue>>,
    choices: [Choice; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Box<RawValue>>,
}

#[derive(Serialize, Default)]
struct Choice {
    index: u32,
    message: Message,
    finish_reason: Option<String>,
}

#[derive(Serialize, Default)]
struct Message {
    role: String,
    content: String,
}

/// One chunk, read without building a tree: the fast path for well-formed
/// chunks. A chunk whose fields have unexpected types falls back to
/// [`Value`].
#[derive(Deserialize)]
struct Chunk<'a> {
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    object: Option<&'a RawValue>,
    #[serde(borrow, default)]
    created: Option<&'a RawValue>,
    #[serde(borrow, default)]
    model: Option<&'a RawValue>,
    #[serde(borrow, default)]
    choices: Option<First<ChunkChoice<'a>>>,
    #[serde(borrow, default)]
    usage: Option<&'a RawValue>,
}

/// The first element of a JSON array (the rest is skipped): `choices[0]`
/// without a `Vec` per chunk.
struct First<T>(Option<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for First<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for V<T> {
            type Value = First<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an array")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<First<T>, A::Error> {
                let first = seq.next_element()?;
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(First(first))
            }
        }
        d.deserialize_seq(V(std::marker::PhantomData))
    }
}

#[derive(Deserialize)]
struct ChunkChoice<'a> {
    #[serde(borrow, default)]
    delta: Option<Delta<'a>>,
    #[serde(borrow, default)]
    finish_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Delta<'a> {
    #[serde(borrow, default)]
    content: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    role: Option<Cow<'a, str>>,
}

/// What one chunk contributes, whichever way it was read; borrowed from the
/// chunk's text where possible, so a chunk costs one parse and no copies
/// beyond the content it adds.
#[derive(Default)]
struct Piece<'a> {
    ids: [Option<Cow<'a, RawValue>>; 4],
    usage: Option<Cow<'a, RawValue>>,
    content: Option<Cow<'a, str>>,
    role: Option<Cow<'a, str>>,
    finish_reason: Option<Cow<'a, str>>,
}

fn raw(v: Option<&RawValue>) -> Option<Cow<'_, RawValue>> {
    v.filter(|r| r.get() != "null").map(Cow::Borrowed)
}

fn read_typed(data: &str) -> Option<Piece<'_>> {
    let c: Chunk = serde_json::from_str(data).ok()?;
    let first = c.choices.and_then(|cs| cs.0);
    let (delta, finish_reason) = match first {
        Some(ch) => (ch.delta, ch.finish_reason),
        None => (None, None),
    };
    let (content, role) = match delta {
        Some(d) => (d.content, d.role),
        None => (None, None),
    };
    Some(Piece {
        ids: [raw(c.id), raw(c.object), raw(c.created), raw(c.model)],
        usage: raw(c.usage),
        content,
        role,
        finish_reason,
    })
}

fn read_value(data: &str) -> Option<Piece<'static>> {
    let Ok(Value::Object(chunk)) = serde_json::from_str::<Value>(data) else {
        return None;
    };
    let owned = |k: &str| {
        chunk
            .get(k)
            .filter(|v| !v.is_null())
            .and_then(|v| serde_json::value::to_raw_value(v).ok())
            .map(Cow::Owned)
    };
    let choice = chunk.get("choices").and_then(|c| c.get(0));
    let delta = choice.and_then(|c| c.get("delta"));
    let text = |v: Option<&Value>, k: &str| {
        v.and_then(|v| v.get(k))
            .and_then(Value::as_str)
            .map(|s| Cow::Owned(s.to_owned()))
    };
    Some(Piece {
        ids: [
            owned("id"),
            owned("object"),
            owned("created"),
            owned("model"),
        ],
        usage: owned("usage"),
        content: text(delta, "content"),
        role: text(delta, "role"),
        finish_reason: text(choice, "finish_reason"),
    })
}

/// Split an SSE stream into the data of its events (multi-line data joined
/// with `\n`, as the SSE format says). Stops at `[DONE]`.
fn events(text: &str) -> Vec<Cow<'_, str>> {
    let mut out = Vec::new();
    let mut data: Option<Cow<str>> = None;
    // memchr finds line ends and colons several times faster than `str`
    // patterns; both are ASCII, so every cut is on a char boundary.
    let mut rest = text;
    while !rest.is_empty() {
        let (line, next) = match memchr::memchr(b'\n', rest.as_bytes()) {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, ""),
        };
        rest = next;
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            if let Some(d) = data.take() {
                if d == "[DONE]" {
                    return out;
                }
                out.push(d);
            }
            continue;
        }
        let (field, value) = match memchr::memchr(b':', line.as_bytes()) {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(' ').unwrap_or(v))
            }
            None => (line, ""),
        };
        if field == "data" {
            match &mut data {
                Some(d) => {
                    let d = d.to_mut();
                    d.push('\n');
                    d.push_str(value);
                }
                None => data = Some(Cow::Borrowed(value)),
            }
        }
    }
    // A stream cut off without a final blank line still has its last event.
    if let Some(d) = data.filter(|d| d != "[DONE]") {
        out.push(d);
    }
    out
}

/// Merge the stream; `None` when no event carries a JSON object.
pub fn merge(bytes: &[u8]) -> Option<JsonBody> {
    let mut m = Merged::default();
    let mut role: Option<String> = None;
    let mut any = false;
    // Validating is much faster than the lossy conversion; most streams are UTF-8.
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => Cow::Borrowed(t),
        Err(_) => String::from_utf8_lossy(bytes),
    };
    for data in events(&text) {
        let Some(piece) = read_typed(&data).or_else(|| read_value(&data)) else {
            continue;
        };
        any = true;
        let [id, object, created, model] = piece.ids;
        for (slot, value) in [
            (&mut m.id, id),
            (&mut m.object, object),
            (&mut m.created, created),
            (&mut m.model, model),
        ] {
            if slot.is_none() {
                *slot = value.map(Cow::into_owned);
            }
        }
        if let Some(usage) = piece.usage {
            m.usage = Some(usage.into_owned());
        }
        if let Some(text) = piece.content {
            m.choices[0].message.content.push_str(&text);
        }
        if role.is_none() {
            role = piece.role.map(Cow::into_owned);
        }
        if let Some(reason) = piece.finish_reason.filter(|r| !r.is_empty()) {
            m.choices[0].finish_reason = Some(reason.into_owned());
        }
    }
    if !any {
        return None;
    }
    m.choices[0].message.role = role.unwrap_or_else(|| "assistant".into());
    let model = m
        .model
        .as_deref()
        .and_then(|r| serde_json::from_str::<String>(r.get()).ok());
    let usage = m.usage.clone();
    // Raw values that came from a parse, strings and numbers: always serializes.
    let json = serde_json::value::to_raw_value(&m).ok()?;
    Some(JsonBody {
        json,
        model,
        user: None,
        usage,
    })
}

/// The raw value of a merged body (for tests and fuzzing).
pub fn merge_to_string(bytes: &[u8]) -> Option<String> {
    merge(bytes).map(|b| RawValue::get(&b.json).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_follow_the_sse_format() {
        let s = b"event: x\ndata: a\ndata: b\n\n: comment\r\ndata:c\r\n\r\ndata: [DONE]\n\ndata: late\n\n";
        let s = std::str::from_utf8(s).unwrap();
        assert_eq!(events(s), ["a\nb", "c"]);
        assert_eq!(events("data: tail"), ["tail"]);
    }

    #[test]
    fn merge_concatenates_and_takes_first_ids_and_last_finish_reason() {
        let s = concat!(
            "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n",
            "data: {\"id\":\"c2\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"},\"finish_reason\":null}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"},\"finish_reason\":\"stop\"}]}\n\n",
            "data: {\"choices\":[{\"delta\":{\"content\":[\"odd\"]}}],\"x\":1}\n\n",
            "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2}}\n\n",
            "data: [DONE]\n\n"
        );
        assert_eq!(
            merge_to_string(s.as_bytes()).unwrap(),
            r#"{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"Hello"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":2}}"#
        );
    }

    #[test]
    fn no_json_events_is_not_a_merge() {
        assert!(merge(b"data: hello\n\ndata: [DONE]\n\n").is_none());
        assert!(merge(b"").is_none());
    }
}
