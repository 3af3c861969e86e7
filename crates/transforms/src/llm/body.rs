//! Turning a decoded body into JSON by what it is: JSON stays JSON (on one
//! line), a Server-Sent-Event stream becomes one merged completion, multipart
//! and binary bodies become placeholders, other text becomes a JSON string.
//! Whatever the bytes, the result is valid JSON.

use super::payload::TokensUsage;
use super::scan::Scanner;
use super::{sse, usage};
use serde::Deserialize;
use serde_json::value::RawValue;

/// Placeholder for multipart bodies (file uploads, audio).
pub const MULTIPART: &str = "<multipart omitted>";
/// Placeholder for bodies that are not text.
pub const BINARY: &str = "<binary omitted>";

/// A body as JSON, with the few fields the payload needs from it.
#[derive(Debug)]
pub struct JsonBody {
    /// The body as one line of JSON.
    pub json: Box<RawValue>,
    /// Top-level `model`, when a string.
    pub model: Option<String>,
    /// Top-level `user`, when a string.
    pub user: Option<String>,
    /// Token counts from the top-level `usage`.
    pub tokens: Option<TokensUsage>,
}

impl JsonBody {
    /// A body that is a plain JSON string.
    pub fn string(text: &str) -> Self {
        Self {
            // A string always serializes.
            json: serde_json::value::to_raw_value(text).expect("a string is valid JSON"),
            model: None,
            user: None,
            tokens: None,
        }
    }
}

/// Top-level fields read while the body is validated.
#[derive(Deserialize)]
struct Probe<'a> {
    #[serde(borrow, default)]
    model: Option<&'a RawValue>,
    #[serde(borrow, default)]
    user: Option<&'a RawValue>,
    #[serde(borrow, default)]
    usage: Option<&'a RawValue>,
}

/// A raw JSON value as a non-empty string, when it is a string.
fn string_of(raw: Option<&str>) -> Option<String> {
    let raw = raw?;
    let text = match raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        // A valid JSON string without a backslash has no escapes: its text
        // is the text between the quotes. (memchr: `str::contains` searched
        // byte by byte, 2 % of the Redis → file path with a 2 KB `model`.)
        Some(inner) if memchr::memchr(b'\\', inner.as_bytes()).is_none() => inner.to_owned(),
        _ => serde_json::from_str::<String>(raw).ok()?,
    };
    (!text.is_empty()).then_some(text)
}

/// Convert `bytes` (already decoded) using the `Content-Type`, if any.
pub fn to_json(bytes: &[u8], content_type: Option<&str>) -> JsonBody {
    let ct = content_type.unwrap_or("").to_ascii_lowercase();
    if ct.starts_with("multipart/") {
        return JsonBody::string(MULTIPART);
    }
    if ct.starts_with("text/event-stream") {
        return sse_or_text(bytes, &ct);
    }
    if let Some(json) = parse_json(bytes) {
        return json;
    }
    if ct.is_empty() && looks_like_sse(bytes) {
        return sse_or_text(bytes, &ct);
    }
    if ct.is_empty() && looks_like_multipart(bytes) {
        return JsonBody::string(MULTIPART);
    }
    text_or_binary(bytes, &ct)
}

/// Parse as JSON; `None` when it is not.
pub fn parse_json(bytes: &[u8]) -> Option<JsonBody> {
    let text = std::str::from_utf8(bytes).ok()?;
    let text = text.trim_matches(|c: char| c.is_ascii_whitespace());
    if !text.starts_with(['{', '[', '"']) && text.parse::<f64>().is_err() {
        // Cheap early exit for plain text; `true`/`false`/`null` are the
        // rare JSON bodies this sends down the text path, harmlessly.
        return None;
    }
    // Raw line breaks can only be whitespace between tokens in valid JSON, so
    // dropping them keeps the document and makes it fit on one JSONL line.
    let has_break = memchr::memchr2(b'\n', b'\r', text.as_bytes()).is_some();
    let one_line: std::borrow::Cow<str> = if has_break {
        text.replace(['\n', '\r'], "").into()
    } else {
        text.into()
    };
    // One serde pass validates the body and borrows it as raw JSON (the
    // only way to make a `RawValue` without parsing twice); the fields are
    // then picked by the walker, which need not check anything again.
    let raw = serde_json::from_str::<&RawValue>(&one_line).ok()?;
    let [model, user, usage_json] = probe(raw);
    Some(JsonBody {
        json: raw.to_owned(),
        model: string_of(model),
        user: string_of(user),
        tokens: usage_json.and_then(usage::tokens_of),
    })
}

/// Top-level `model`, `user` and `usage` of a JSON text, raw, as [`Probe`]
/// reads them: none at all when the text is not an object or repeats one
/// of them (serde refuses duplicate fields).
fn probe(json: &RawValue) -> [Option<&str>; 3] {
    if let Some(fields) = probe_fast(json) {
        return fields;
    }
    match serde_json::from_str::<Probe>(json.get()) {
        Ok(p) => [p.model, p.user, p.usage].map(|r| r.map(RawValue::get)),
        Err(_) => [None; 3],
    }
}

/// The walk; `None` leaves the decision to serde (arrays, which serde reads
/// as structs too, escaped keys, duplicates, deep nesting).
fn probe_fast(json: &RawValue) -> Option<[Option<&str>; 3]> {
    let mut fields = [None; 3];
    let mut seen = [false; 3];
    let mut s = Scanner::of_valid(json);
    s.ws();
    s.object(|s, key| {
        let i = match key {
            "model" => 0,
            "user" => 1,
            "usage" => 2,
            _ => return s.value().map(drop),
        };
        if std::mem::replace(&mut seen[i], true) {
            return None;
        }
        let value = s.value()?;
        fields[i] = (value != "null").then_some(value);
        Some(())
    })?;
    s.at_end().then_some(fields)
}

fn sse_or_text(bytes: &[u8], ct: &str) -> JsonBody {
    match sse::merge(bytes) {
        Some(merged) => merged,
        None => text_or_binary(bytes, ct),
    }
}

fn looks_like_sse(bytes: &[u8]) -> bool {
    let head = &bytes[..bytes.len().min(64)];
    let head = head.trim_ascii_start();
    head.starts_with(b"data:") || head.starts_with(b"event:")
}

fn looks_like_multipart(bytes: &[u8]) -> bool {
    let head = &bytes[..bytes.len().min(1024)];
    head.starts_with(b"--")
        && head
            .windows(19)
            .any(|w| w.eq_ignore_ascii_case(b"content-disposition"))
}

/// Declared binary types, and bytes that are not UTF-8 or contain NUL, are
/// binary; a body declared as text keeps its text even with a few bad bytes.
fn text_or_binary(bytes: &[u8], ct: &str) -> JsonBody {
    let declared_binary = ["application/octet-stream", "image/", "audio/", "video/"]
        .iter()
        .any(|p| ct.starts_with(p));
    let declared_text = ct.starts_with("text/") || ct.contains("json") || ct.contains("xml");
    if declared_binary || bytes.contains(&0) {
        return JsonBody::string(BINARY);
    }
    match std::str::from_utf8(bytes) {
        Ok(text) => JsonBody::string(text),
        Err(_) if declared_text => JsonBody::string(&String::from_utf8_lossy(bytes)),
        Err(_) => JsonBody::string(BINARY),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn probe_serde(json: &str) -> [Option<&str>; 3] {
        match serde_json::from_str::<Probe>(json) {
            Ok(p) => [p.model, p.user, p.usage].map(|r| r.map(RawValue::get)),
            Err(_) => [None; 3],
        }
    }

    /// Bodies with the probed fields in every form: repeated, escaped,
    /// `null`, nested, not strings; objects and arrays.
    fn bodies() -> impl Strategy<Value = String> {
        let key = prop_oneof![
            Just("model"),
            Just("user"),
            Just("usage"),
            Just("messages"),
            Just("mod\\u0065l"),
        ];
        let value = prop_oneof![
            Just("null"),
            Just("\"gpt\""),
            Just("\"\""),
            Just("\"a\\u00e9\""),
            Just("\"\\ud800\""),
            Just("7"),
            Just(r#"{"prompt_tokens":1,"model":"x"}"#),
            Just(r#"[{"role":"user","content":"hi"}]"#),
        ];
        let member = (key, value).prop_map(|(k, v)| format!("\"{k}\": {v}"));
        (
            proptest::collection::vec(member, 0..5),
            prop::bool::weighted(0.8),
        )
            .prop_map(|(m, object)| {
                if object {
                    format!("{{{}}}", m.join(","))
                } else {
                    format!("[{}]", m.join(",").replace(": ", ","))
                }
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        /// The walk finds the fields serde finds.
        #[test]
        fn probe_is_the_serde_probe(body in bodies()) {
            let raw = RawValue::from_string(body.clone()).unwrap();
            prop_assert_eq!(probe(&raw), probe_serde(&body), "{}", body);
        }
    }

    #[test]
    fn json_is_kept_on_one_line_with_fields() {
        let b = to_json(
            b"{\n  \"model\": \"gpt-4o\",\r\n  \"user\": \"u1\", \"usage\": {\"a\":1}\n}\n",
            None,
        );
        assert_eq!(
            b.json.get(),
            r#"{  "model": "gpt-4o",  "user": "u1", "usage": {"a":1}}"#
        );
        assert_eq!(b.model.as_deref(), Some("gpt-4o"));
        assert_eq!(b.user.as_deref(), Some("u1"));
        assert_eq!(b.tokens, None);
        let b = to_json(br#"{"usage": {"prompt_tokens": 2}}"#, None);
        assert_eq!(
            b.tokens,
            Some(TokensUsage {
                completion: 0,
                prompt: 2
            })
        );
    }

    #[test]
    fn odd_json_is_still_json() {
        assert_eq!(to_json(b"[1,2]", None).json.get(), "[1,2]");
        assert_eq!(to_json(br#"{"model":1}"#, None).model, None);
        let dup = to_json(br#"{"model":"a","model":"b"}"#, None);
        assert_eq!(dup.json.get(), r#"{"model":"a","model":"b"}"#);
        assert_eq!(to_json(b"42", None).json.get(), "42");
    }

    #[test]
    fn text_binary_and_multipart() {
        assert_eq!(to_json(b"hello", None).json.get(), r#""hello""#);
        assert_eq!(to_json(b"a\0b", None).json.get(), r#""<binary omitted>""#);
        assert_eq!(
            to_json(b"\xff\xfe", None).json.get(),
            r#""<binary omitted>""#
        );
        assert_eq!(
            to_json(b"bad \xff", Some("text/plain")).json.get(),
            "\"bad \u{fffd}\""
        );
        assert_eq!(
            to_json(b"--x\r\nContent-Disposition: form-data", None)
                .json
                .get(),
            r#""<multipart omitted>""#
        );
    }
}
