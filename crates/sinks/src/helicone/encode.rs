//! One call → the manual logger's request body.

use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::Value;
use std::collections::BTreeMap;
use switchyard_transforms::llm::LlmPayload;
use time::OffsetDateTime;

#[derive(Serialize)]
struct Body<'a> {
    #[serde(rename = "providerRequest")]
    request: ProviderRequest<'a>,
    #[serde(rename = "providerResponse")]
    response: ProviderResponse<'a>,
    timing: Timing,
}

#[derive(Serialize)]
struct ProviderRequest<'a> {
    url: &'a str,
    json: Json<'a>,
    meta: BTreeMap<&'static str, &'a str>,
}

#[derive(Serialize)]
struct ProviderResponse<'a> {
    status: i64,
    headers: BTreeMap<&'a str, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    json: Option<&'a RawValue>,
    #[serde(rename = "textBody", skip_serializing_if = "Option::is_none")]
    text_body: Option<String>,
}

/// The request JSON: the object as sent, or an object wrapping a body that
/// was not one (Helicone expects an object here).
#[derive(Serialize)]
#[serde(untagged)]
enum Json<'a> {
    Object(&'a RawValue),
    Wrapped { body: &'a RawValue },
    Empty {},
}

#[derive(Serialize)]
struct Timing {
    #[serde(rename = "startTime")]
    start: Instant,
    #[serde(rename = "endTime")]
    end: Instant,
}

#[derive(Serialize)]
struct Instant {
    seconds: i64,
    milliseconds: u16,
}

impl From<OffsetDateTime> for Instant {
    fn from(t: OffsetDateTime) -> Self {
        Self {
            seconds: t.unix_timestamp(),
            milliseconds: t.millisecond(),
        }
    }
}

fn is_object(raw: &RawValue) -> bool {
    raw.get().starts_with('{')
}

/// The body for one call.
pub fn call(p: &LlmPayload, provider: &str) -> Vec<u8> {
    let meta_request_id = p.metadata.as_ref().map(|m| m.request_id.as_str());
    let mut meta = BTreeMap::new();
    meta.insert("Helicone-Provider", provider);
    if let Some(user) = p.user_id.as_deref() {
        meta.insert("Helicone-User-Id", user);
    }
    if let Some(id) = meta_request_id.filter(|id| !id.is_empty()) {
        meta.insert("Helicone-Request-Id", id);
    }
    meta.insert("Helicone-Property-Run-Id", &p.run_id);
    let url = p
        .metadata
        .as_ref()
        .map(|m| m.path.as_str())
        .filter(|path| !path.is_empty())
        .unwrap_or("custom-model-nopath");
    let json = match p.input.as_deref() {
        Some(raw) if is_object(raw) => Json::Object(raw),
        Some(raw) => Json::Wrapped { body: raw },
        None => Json::Empty {},
    };
    let (json_out, text_body) = match p.output.as_deref() {
        Some(raw) if is_object(raw) => (Some(raw), None),
        Some(raw) => (
            None,
            Some(match serde_json::from_str::<Value>(raw.get()) {
                Ok(Value::String(s)) => s,
                _ => raw.get().to_owned(),
            }),
        ),
        None => (None, Some(String::new())),
    };
    let headers = p
        .metadata
        .as_ref()
        .and_then(|m| m.response_headers.as_ref())
        .map(|h| h.iter().map(|(k, v)| (k.as_str(), v.joined())).collect())
        .unwrap_or_default();
    let body = Body {
        request: ProviderRequest { url, json, meta },
        response: ProviderResponse {
            status: p.metadata.as_ref().map_or(200, |m| m.status),
            headers,
            json: json_out,
            text_body,
        },
        timing: Timing {
            start: p.start_time().into(),
            end: p.timestamp.into(),
        },
    };
    // Strings, numbers and valid raw JSON always serialize.
    serde_json::to_vec(&body).expect("serializable")
}
