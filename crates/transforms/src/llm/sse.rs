//! Merging a streamed chat completion (Server-Sent Events, one
//! `chat.completion.chunk` per `data:` event, ending with `data: [DONE]`)
//! into one completion object, so backends see the same shape for streamed and
//! non-streamed calls.
//!
//! Rules: content is the concatenation of `choices[0].delta.content`; the
//! finish reason is the last non-empty one; `id`, `object`, `created` and
//! `model` come from the first chunk that has them, `chat.completion.chunk`
//! becoming `chat.completion`; `usage` from the chunk that carries it (the
//! last one, when several do).

use super::body::JsonBody;
use super::chunk;
use super::usage::tokens;
use serde::Serialize;
use serde_json::value::RawValue;
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

/// Split an SSE stream into the data of its events (multi-line data joined
/// with `\n`, as the SSE format says). Stops at `[DONE]`.
fn events(text: &str) -> Vec<Cow<'_, str>> {
    // Events are rarely shorter than 100 bytes: room for all of them, at
    // the cost of a few unused slots.
    let mut out = Vec::with_capacity(text.len() / 100);
    let mut data: Option<Cow<str>> = None;
    // memchr finds line ends and colons several times faster than `str`
    // patterns; both are ASCII, so every cut is on a char boundary. The
    // blank line after each event and the `data:` prefix are checked first,
    // without a search.
    let mut rest = text;
    while let Some(&first) = rest.as_bytes().first() {
        let (line, next) = if first == b'\n' {
            ("", &rest[1..])
        } else {
            match memchr::memchr(b'\n', rest.as_bytes()) {
                Some(i) => (&rest[..i], &rest[i + 1..]),
                None => (rest, ""),
            }
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
        let (field, value) = match line.strip_prefix("data:") {
            Some(v) => ("data", v),
            None => match memchr::memchr(b':', line.as_bytes()) {
                Some(i) => (&line[..i], &line[i + 1..]),
                None => (line, ""),
            },
        };
        let value = value.strip_prefix(' ').unwrap_or(value);
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
pub fn merge(bytes: &[u8]) -> Option<JsonBody<'static>> {
    merge_with(bytes, true)
}

/// `fast: false` reads every chunk with serde: the reference for tests.
fn merge_with(bytes: &[u8], fast: bool) -> Option<JsonBody<'static>> {
    // Validating is much faster than the lossy conversion; most streams are UTF-8.
    let text = match simdutf8::basic::from_utf8(bytes) {
        Ok(t) => Cow::Borrowed(t),
        Err(_) => String::from_utf8_lossy(bytes),
    };
    let events = events(&text);
    let mut reader = chunk::Reader::new(fast);
    // Everything but the content stays borrowed from the stream until the end.
    let mut ids: [Option<Cow<str>>; 4] = Default::default();
    let mut usage = None;
    let mut role = None;
    let mut finish_reason = None;
    // Streams spend tens of bytes of JSON per word of content: this is
    // usually enough for the whole content, and never much too large.
    let mut content = String::with_capacity(text.len() / 16);
    let mut any = false;
    for data in &events {
        let piece = match reader.read(data) {
            None => continue,
            // Only ever after a piece: `any` is already set.
            Some(chunk::Read::Content(text)) => {
                content.push_str(text.as_deref().unwrap_or(""));
                continue;
            }
            Some(chunk::Read::Piece(piece)) => piece,
        };
        any = true;
        for (slot, value) in ids.iter_mut().zip(piece.ids) {
            if slot.is_none() {
                *slot = value;
            }
        }
        if piece.usage.is_some() {
            usage = piece.usage;
        }
        if let Some(text) = piece.content {
            content.push_str(&text);
        }
        if role.is_none() {
            role = piece.role;
        }
        if let Some(reason) = piece.finish_reason.filter(|r| !r.is_empty()) {
            finish_reason = Some(reason);
        }
    }
    if !any {
        return None;
    }
    // The chunk readers only hand out text that parsed as JSON, so the
    // conversion cannot fail; were it to, the field would be left out.
    let raw = |v: Option<Cow<str>>| v.and_then(|t| RawValue::from_string(t.into_owned()).ok());
    let [id, object, created, model] = ids;
    // The merge reads as the completion the same call made without
    // streaming would have returned.
    let object = object.map(|o| match o.as_ref() {
        "\"chat.completion.chunk\"" => Cow::Borrowed("\"chat.completion\""),
        _ => o,
    });
    let m = Merged {
        id: raw(id),
        object: raw(object),
        created: raw(created),
        model: raw(model),
        choices: [Choice {
            index: 0,
            message: Message {
                role: role.map_or_else(|| "assistant".into(), Cow::into_owned),
                content,
            },
            finish_reason: finish_reason.map(Cow::into_owned),
        }],
        usage: raw(usage),
    };
    let model = m
        .model
        .as_deref()
        .and_then(|r| serde_json::from_str::<String>(r.get()).ok())
        .map(Cow::Owned);
    let counts = m.usage.as_deref().and_then(tokens);
    // Raw values that came from a parse, strings and numbers: always serializes.
    let json = serde_json::to_string(&m).ok()?.into();
    Some(JsonBody {
        json,
        model,
        model_plain: false,
        user: None,
        tokens: counts,
    })
}

/// The raw value of a merged body (for tests and fuzzing).
pub fn merge_to_string(bytes: &[u8]) -> Option<String> {
    merge(bytes).map(|b| b.json.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Streams whose chunks mostly repeat one another but for the content,
    /// with the ways a chunk can differ: another prefix, a content that is
    /// not a plain string, a finish reason, usage, a duplicate field, junk.
    fn streams() -> impl Strategy<Value = String> {
        let prefix = prop_oneof![
            Just(
                r#"{"id":"c1","object":"chat.completion.chunk","model":"m","choices":[{"index":0,"delta":{"content":"#
            ),
            Just(r#"{"id":"c2","choices":[{"index":0,"delta":{"role":"assistant","content":"#),
            Just(r#"{"choices":[{"delta":{"content":"#),
            Just(r#"{"id":null,"choices":[{"delta":{"content":"#),
        ];
        let content = prop_oneof![
            Just(r#""w""#),
            Just(r#"" x""#),
            Just(r#""a\"b""#),
            Just(r#""\u00e9\n""#),
            Just(r#""\ud800""#),
            Just(r#""""#),
            Just("null"),
            Just("1"),
            Just(r#""a"b""#),
        ];
        let suffix = prop_oneof![
            Just(r#"},"finish_reason":null}]}"#),
            Just(r#"},"finish_reason":"stop"}]}"#),
            Just(r#"},"finish_reason":""}]}"#),
            Just(r#"}}],"usage":{"prompt_tokens":1}}"#),
            Just(r#"}}],"usage":{"prompt_tokens":2}}"#),
            Just(r#","content":"dup"}}]}"#),
            Just(r#"}}]} x"#),
            Just(r#"}}]}"#),
            Just(r#"}},{"delta":{"content":"second"}}]}"#),
        ];
        let chunk = (prefix, content, suffix).prop_map(|(p, c, s)| format!("data: {p}{c}{s}\n\n"));
        proptest::collection::vec(chunk, 0..12).prop_map(|c| c.concat())
    }

    /// The fast readers and serde alone merge `stream` into the same body.
    fn same_merge(stream: &str) -> Result<(), TestCaseError> {
        let text = |b: Option<JsonBody<'static>>| {
            b.map(|b| (b.json.into_owned(), b.model.map(Cow::into_owned), b.tokens))
        };
        prop_assert_eq!(
            text(merge_with(stream.as_bytes(), true)),
            text(merge_with(stream.as_bytes(), false)),
            "{}",
            stream
        );
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        /// Also on text that is barely a stream at all.
        #[test]
        fn fast_merge_is_the_serde_merge_on_noise(
            stream in "(data: ?[{}\\[\\]a-z:\" ,0-9\\\\\n]{0,40}\n\n?){0,8}"
        ) {
            same_merge(&stream)?;
        }

        /// The fast readers merge every stream exactly as serde alone does.
        #[test]
        fn fast_merge_is_the_serde_merge(stream in streams()) {
            same_merge(&stream)?;
        }
    }

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
            r#"{"id":"c1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"Hello"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":2}}"#
        );
    }

    #[test]
    fn no_json_events_is_not_a_merge() {
        assert!(merge(b"data: hello\n\ndata: [DONE]\n\n").is_none());
        assert!(merge(b"").is_none());
    }
}
