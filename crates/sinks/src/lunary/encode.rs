//! One call → Lunary's `start` and `end`/`error` events, as JSON text.

use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::Value;
use std::borrow::Cow;
use switchyard_transforms::llm::payload::rfc3339_millis;
use switchyard_transforms::llm::{LlmPayload, Metadata};

#[derive(Serialize)]
struct Start<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    event: &'static str,
    #[serde(rename = "runId")]
    run_id: &'a str,
    #[serde(rename = "parentRunId", skip_serializing_if = "Option::is_none")]
    parent_run_id: Option<&'a str>,
    timestamp: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    input: Option<&'a RawValue>,
    #[serde(rename = "userId", skip_serializing_if = "Option::is_none")]
    user_id: Option<&'a str>,
    #[serde(rename = "userProps", skip_serializing_if = "Option::is_none")]
    user_props: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tags: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<&'a Metadata>,
    #[serde(skip_serializing_if = "Option::is_none")]
    extra: Option<Box<RawValue>>,
}

#[derive(Serialize)]
struct End<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    event: &'static str,
    #[serde(rename = "runId")]
    run_id: &'a str,
    timestamp: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    output: Option<&'a RawValue>,
    #[serde(rename = "tokensUsage", skip_serializing_if = "Option::is_none")]
    tokens_usage: Option<Usage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorInfo>,
}

#[derive(Serialize)]
struct Usage {
    prompt: u64,
    completion: u64,
}

#[derive(Serialize)]
struct ErrorInfo {
    message: String,
}

/// The two events of one call, each a JSON object, comma-joined (ready to go
/// inside an `events` array).
pub fn call(p: &LlmPayload) -> Vec<u8> {
    let end = p.timestamp;
    let mut start = p.start_time();
    // Lunary orders a batch by timestamp: a start that is not strictly
    // earlier than its end (a 0 ms duration) could sort after it.
    if start >= end {
        start = end - time::Duration::milliseconds(1);
    }
    let kind = if p.kind.is_empty() { "llm" } else { &p.kind };
    let s = Start {
        kind,
        event: "start",
        run_id: &p.run_id,
        parent_run_id: p.parent_run_id.as_deref(),
        timestamp: rfc3339_millis::format(start),
        name: p.name.as_deref(),
        input: p.input.as_deref(),
        user_id: p.user_id.as_deref(),
        user_props: p.user_props.as_deref(),
        tags: p.tags.as_deref(),
        metadata: p.metadata.as_ref(),
        extra: p.extra.clone().or_else(|| parameters(p.input.as_deref())),
    };
    let failed = p.event == "error" || p.metadata.as_ref().is_some_and(|m| m.status >= 400);
    let e = End {
        kind,
        event: if failed { "error" } else { "end" },
        run_id: &p.run_id,
        timestamp: rfc3339_millis::format(end),
        output: p.output.as_deref(),
        tokens_usage: p.tokens_usage.map(|u| Usage {
            prompt: u.prompt,
            completion: u.completion,
        }),
        error: failed.then(|| ErrorInfo {
            message: error_message(p),
        }),
    };
    // Plain structs of strings, numbers and valid raw JSON always serialize.
    let mut out = serde_json::to_vec(&s).expect("serializable");
    out.push(b',');
    serde_json::to_writer(&mut out, &e).expect("serializable");
    out
}

/// The request's sampling parameters (scalar top-level fields other than the
/// prompt, model and user), which Lunary shows as the run's parameters. Read
/// as borrowed raw values: the messages are skipped, not built into a tree.
fn parameters(input: Option<&RawValue>) -> Option<Box<RawValue>> {
    let fields: Vec<(Cow<str>, &RawValue)> =
        serde_json::from_str::<KeyValues>(input?.get()).ok()?.0;
    let mut out = String::from("{");
    for (key, value) in fields {
        let scalar = !value.get().starts_with(['{', '[', 'n']);
        if !scalar
            || matches!(
                key.as_ref(),
                "model" | "user" | "messages" | "input" | "prompt"
            )
        {
            continue;
        }
        if out.len() > 1 {
            out.push(',');
        }
        // A key is a string: always serializes.
        out.push_str(&serde_json::to_string(key.as_ref()).expect("a string serializes"));
        out.push(':');
        out.push_str(value.get());
    }
    out.push('}');
    (out.len() > 2)
        .then(|| RawValue::from_string(out).ok())
        .flatten()
}

/// A JSON object's members in order, values left raw.
struct KeyValues<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de: 'a, 'a> serde::Deserialize<'de> for KeyValues<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Members;
        impl<'de> serde::de::Visitor<'de> for Members {
            type Value = KeyValues<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                    out.push((key, map.next_value::<&'de RawValue>()?));
                }
                Ok(KeyValues(out))
            }
        }
        d.deserialize_map(Members)
    }
}

/// What went wrong, as the provider said it.
fn error_message(p: &LlmPayload) -> String {
    let status = p.metadata.as_ref().map_or(0, |m| m.status);
    let said = p.output.as_deref().and_then(|o| {
        let v: Value = serde_json::from_str(o.get()).ok()?;
        match &v {
            Value::String(s) => Some(s.clone()),
            _ => v
                .pointer("/error/message")
                .or_else(|| v.get("message"))
                .and_then(Value::as_str)
                .map(str::to_owned),
        }
    });
    match said {
        Some(s) if !s.is_empty() => format!("HTTP {status}: {s}"),
        _ => format!("HTTP {status}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(duration_ms: i64) -> LlmPayload {
        let doc = format!(
            r#"{{"type":"llm","event":"end","runId":"r","name":"m","timestamp":"2024-05-01T12:00:00.000Z","input":{{"model":"m","temperature":0.5,"stream":false,"messages":[]}},"metadata":{{"method":"POST","path":"/","status":200,"duration_ms":{duration_ms},"request_id":"x"}},"log_id":0}}"#
        );
        serde_json::from_str(&doc).unwrap()
    }

    fn events(p: &LlmPayload) -> Vec<Value> {
        let text = format!("[{}]", String::from_utf8(call(p)).unwrap());
        serde_json::from_str(&text).unwrap()
    }

    #[test]
    fn zero_duration_still_starts_before_it_ends() {
        let e = events(&payload(0));
        assert_eq!(e[0]["timestamp"], "2024-05-01T11:59:59.999Z");
        assert_eq!(e[1]["timestamp"], "2024-05-01T12:00:00.000Z");
    }

    #[test]
    fn parameters_are_the_scalar_request_fields() {
        let e = events(&payload(1500));
        assert_eq!(e[0]["timestamp"], "2024-05-01T11:59:58.500Z");
        assert_eq!(
            e[0]["extra"],
            serde_json::json!({"temperature": 0.5, "stream": false})
        );
        assert!(
            e[1].get("tokensUsage").is_none(),
            "no usage, no made-up counts"
        );
    }
}
