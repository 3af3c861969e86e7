//! Turning a decoded body into JSON by what it is: JSON stays JSON (on one
//! line), a Server-Sent-Event stream becomes one merged completion, multipart
//! and binary bodies become placeholders, other text becomes a JSON string.
//! Whatever the bytes, the result is valid JSON.

use super::payload::TokensUsage;
use super::scan::Scanner;
use super::{sse, usage};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;

/// Placeholder for multipart bodies (file uploads, audio).
pub const MULTIPART: &str = "<multipart omitted>";
/// Placeholder for bodies that are not text.
pub const BINARY: &str = "<binary omitted>";

/// A body as JSON, with the few fields the payload needs from it; borrowed
/// from the body's bytes where they are already that JSON (the usual case),
/// so that the payload is written straight from them.
#[derive(Debug)]
pub struct JsonBody<'a> {
    /// The body as one line of valid JSON (text rather than a `RawValue`,
    /// which can only be made by parsing the text again after the walk
    /// that already validated it).
    pub json: Cow<'a, str>,
    /// Top-level `model`, when a string.
    pub model: Option<Cow<'a, str>>,
    /// `model` holds no character that JSON escapes (`"`, `\`, control
    /// characters), so between quotes as it is, it is the JSON string serde
    /// writes for it — a 2 KB `model` need not be scanned again.
    pub model_plain: bool,
    /// Top-level `user`, when a string.
    pub user: Option<String>,
    /// Token counts from the top-level `usage`.
    pub tokens: Option<TokensUsage>,
}

impl JsonBody<'_> {
    /// A body that is a plain JSON string.
    pub fn string(text: &str) -> JsonBody<'static> {
        JsonBody {
            // A string always serializes.
            json: serde_json::to_string(text)
                .expect("a string is valid JSON")
                .into(),
            model: None,
            model_plain: false,
            user: None,
            tokens: None,
        }
    }

    /// The same body, owning its text.
    pub fn into_owned(self) -> JsonBody<'static> {
        JsonBody {
            json: self.json.into_owned().into(),
            model: self.model.map(|m| m.into_owned().into()),
            model_plain: self.model_plain,
            user: self.user,
            tokens: self.tokens,
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
    plain_string_of(raw).map(|(text, _)| text.into_owned())
}

/// [`string_of`], borrowed when it has no escapes, and whether it had none.
/// Such a string, valid JSON, holds no quote, backslash or control
/// character either.
fn plain_string_of(raw: Option<&str>) -> Option<(Cow<'_, str>, bool)> {
    let raw = raw?;
    let (text, plain) = match raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        // A valid JSON string without a backslash has no escapes: its text
        // is the text between the quotes. (memchr: `str::contains` searched
        // byte by byte, 2 % of the Redis → file path with a 2 KB `model`.)
        Some(inner) if memchr::memchr(b'\\', inner.as_bytes()).is_none() => {
            (Cow::Borrowed(inner), true)
        }
        _ => (Cow::Owned(serde_json::from_str::<String>(raw).ok()?), false),
    };
    (!text.is_empty()).then_some((text, plain))
}

/// Convert `bytes` (already decoded) using the `Content-Type`, if any.
pub fn to_json<'a>(bytes: &'a [u8], content_type: Option<&str>) -> JsonBody<'a> {
    // Lower-cased only when it has capitals: most are already lower case,
    // and this runs for every body.
    let ct: Cow<'_, str> = match content_type.unwrap_or("") {
        c if c.bytes().any(|b| b.is_ascii_uppercase()) => c.to_ascii_lowercase().into(),
        c => c.into(),
    };
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
pub fn parse_json(bytes: &[u8]) -> Option<JsonBody<'_>> {
    // The SIMD check: std's took 5 % of the Redis → file dispatcher's CPU
    // at 2 KB bodies.
    let text = simdutf8::basic::from_utf8(bytes).ok()?;
    let text = text.trim_matches(|c: char| c.is_ascii_whitespace());
    if !text.starts_with(['{', '[', '"']) && text.parse::<f64>().is_err() {
        // Cheap early exit for plain text; `true`/`false`/`null` are the
        // rare JSON bodies this sends down the text path, harmlessly.
        return None;
    }
    // Raw line breaks can only be whitespace between tokens in valid JSON, so
    // dropping them keeps the document and makes it fit on one JSONL line.
    if memchr::memchr2(b'\n', b'\r', text.as_bytes()).is_some() {
        let one_line = text.replace(['\n', '\r'], "");
        return one_line_json(&one_line).map(JsonBody::into_owned);
    }
    one_line_json(text)
}

/// [`parse_json`] of text without line breaks or surrounding whitespace.
fn one_line_json(text: &str) -> Option<JsonBody<'_>> {
    // The usual body, an object, is validated and its fields picked in one
    // walk that searches strings with vector instructions; anything that
    // walk leaves (arrays, escaped or repeated keys, deep nesting, invalid
    // text) is validated by serde, then probed.
    let (json, [model, user, usage_json]) = match probe_checked(text) {
        Some(fields) => (text, fields),
        None => {
            let raw = serde_json::from_str::<&RawValue>(text).ok()?;
            (raw.get(), probe(raw))
        }
    };
    let (model, model_plain) = plain_string_of(model).map_or((None, false), |(m, p)| (Some(m), p));
    Some(JsonBody {
        json: json.into(),
        model,
        model_plain,
        user: string_of(user),
        tokens: usage_json.and_then(usage::tokens_of),
    })
}

/// Top-level `model`, `user` and `usage` of `text` as [`Probe`] reads
/// them, when `text` is a JSON object the checking walk takes whole (so
/// serde would take it too); `None` leaves the text to serde.
fn probe_checked(text: &str) -> Option<[Option<&str>; 3]> {
    walk_fields(Scanner::new(text))
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
    walk_fields(Scanner::of_valid(json))
}

/// The three fields of the object `s` is on, each at most once.
fn walk_fields(mut s: Scanner<'_>) -> Option<[Option<&'_ str>; 3]> {
    let mut fields = [None; 3];
    let mut seen = [false; 3];
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

fn sse_or_text(bytes: &[u8], ct: &str) -> JsonBody<'static> {
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
fn text_or_binary(bytes: &[u8], ct: &str) -> JsonBody<'static> {
    let declared_binary = ["application/octet-stream", "image/", "audio/", "video/"]
        .iter()
        .any(|p| ct.starts_with(p));
    let declared_text = ct.starts_with("text/") || ct.contains("json") || ct.contains("xml");
    if declared_binary || bytes.contains(&0) {
        return JsonBody::string(BINARY);
    }
    match simdutf8::basic::from_utf8(bytes) {
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

    /// The body as serde alone reads it: validated as a `RawValue`, then
    /// probed as a struct.
    fn parse_json_serde(text: &str) -> Option<(String, [Option<&str>; 3])> {
        let raw = serde_json::from_str::<&RawValue>(text).ok()?;
        Some((raw.get().to_owned(), probe_serde(raw.get())))
    }

    /// [`bodies`], some of them broken: a member cut short, a stray comma,
    /// a raw control character or a bad escape in a string, trailing text.
    fn maybe_broken_bodies() -> impl Strategy<Value = String> {
        let flaw = prop_oneof![
            Just(""),
            Just(""),
            Just(","),
            Just("\""),
            Just("\"\t\""),
            Just("\"\\x\""),
            Just("\"\\u12\""),
            Just("]"),
            Just("01"),
            Just("x"),
        ];
        (bodies(), flaw, any::<prop::sample::Index>()).prop_map(|(body, flaw, at)| {
            let mut cut = at.index(body.len() + 1);
            while !body.is_char_boundary(cut) {
                cut -= 1;
            }
            format!("{}{flaw}{}", &body[..cut], &body[cut..])
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

        /// Read by the checking walk or by serde, a body is taken (with the
        /// same text and fields) or refused exactly as serde alone does.
        #[test]
        fn bodies_are_read_as_serde_reads_them(body in maybe_broken_bodies()) {
            let ours = parse_json(body.as_bytes());
            let serde = parse_json_serde(&body);
            prop_assert_eq!(ours.is_some(), serde.is_some(), "{}", body);
            if let (Some(ours), Some((json, [model, user, usage]))) = (ours, serde) {
                prop_assert_eq!(&*ours.json, json.as_str());
                if ours.model_plain {
                    let model = ours.model.as_deref().unwrap_or_default();
                    prop_assert_eq!(format!("\"{model}\""), serde_json::to_string(model).unwrap());
                }
                let model = string_of(model);
                prop_assert_eq!(ours.model.as_deref(), model.as_deref());
                prop_assert_eq!(ours.user, string_of(user));
                prop_assert_eq!(ours.tokens, usage.and_then(usage::tokens_of));
            }
        }
    }

    #[test]
    fn json_is_kept_on_one_line_with_fields() {
        let b = to_json(
            b"{\n  \"model\": \"gpt-4o\",\r\n  \"user\": \"u1\", \"usage\": {\"a\":1}\n}\n",
            None,
        );
        assert_eq!(
            b.json.as_ref(),
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
        assert_eq!(to_json(b"[1,2]", None).json.as_ref(), "[1,2]");
        assert_eq!(to_json(br#"{"model":1}"#, None).model, None);
        let dup = to_json(br#"{"model":"a","model":"b"}"#, None);
        assert_eq!(dup.json.as_ref(), r#"{"model":"a","model":"b"}"#);
        assert_eq!(to_json(b"42", None).json.as_ref(), "42");
    }

    #[test]
    fn text_binary_and_multipart() {
        assert_eq!(to_json(b"hello", None).json.as_ref(), r#""hello""#);
        assert_eq!(
            to_json(b"a\0b", None).json.as_ref(),
            r#""<binary omitted>""#
        );
        assert_eq!(
            to_json(b"\xff\xfe", None).json.as_ref(),
            r#""<binary omitted>""#
        );
        assert_eq!(
            to_json(b"bad \xff", Some("text/plain")).json.as_ref(),
            "\"bad \u{fffd}\""
        );
        assert_eq!(
            to_json(b"--x\r\nContent-Disposition: form-data", None)
                .json
                .as_ref(),
            r#""<multipart omitted>""#
        );
    }
}
