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
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::Value;

/// The merged completion, keys in the order providers send them.
#[derive(Serialize, Default)]
struct Merged {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    object: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    created: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<Value>,
    choices: [Choice; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Value>,
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
fn events(bytes: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(bytes);
    let mut out = Vec::new();
    let mut data: Option<String> = None;
    for line in text.split('\n') {
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
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        if field == "data" {
            match &mut data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => data = Some(value.to_string()),
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
    for data in events(bytes) {
        let Ok(Value::Object(mut chunk)) = serde_json::from_str::<Value>(&data) else {
            continue;
        };
        any = true;
        for (key, slot) in [
            ("id", &mut m.id),
            ("object", &mut m.object),
            ("created", &mut m.created),
            ("model", &mut m.model),
        ] {
            if slot.is_none() {
                *slot = chunk.remove(key).filter(|v| !v.is_null());
            }
        }
        if let Some(usage) = chunk.remove("usage").filter(|u| !u.is_null()) {
            m.usage = Some(usage);
        }
        let Some(choice) = chunk.get("choices").and_then(|c| c.get(0)) else {
            continue;
        };
        if let Some(delta) = choice.get("delta") {
            if let Some(text) = delta.get("content").and_then(Value::as_str) {
                m.choices[0].message.content.push_str(text);
            }
            if role.is_none() {
                role = delta.get("role").and_then(Value::as_str).map(str::to_owned);
            }
        }
        if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
            if !reason.is_empty() {
                m.choices[0].finish_reason = Some(reason.to_owned());
            }
        }
    }
    if !any {
        return None;
    }
    m.choices[0].message.role = role.unwrap_or_else(|| "assistant".into());
    let model = m.model.as_ref().and_then(Value::as_str).map(str::to_owned);
    let usage = m
        .usage
        .as_ref()
        .and_then(|u| serde_json::value::to_raw_value(u).ok());
    // Serializing values that came from a parse cannot fail.
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
        assert_eq!(events(s), ["a\nb", "c"]);
        assert_eq!(events(b"data: tail"), ["tail"]);
    }

    #[test]
    fn merge_concatenates_and_takes_first_ids_and_last_finish_reason() {
        let s = concat!(
            "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n",
            "data: {\"id\":\"c2\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"},\"finish_reason\":null}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"},\"finish_reason\":\"stop\"}]}\n\n",
            "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2}}\n\n",
            "data: [DONE]\n\n"
        );
        assert_eq!(
            merge_to_string(s.as_bytes()).unwrap(),
            r#"{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"Hello"},"finish_reason":"stop"}],"usage":{"completion_tokens":2,"prompt_tokens":3}}"#
        );
    }

    #[test]
    fn no_json_events_is_not_a_merge() {
        assert!(merge(b"data: hello\n\ndata: [DONE]\n\n").is_none());
        assert!(merge(b"").is_none());
    }
}
