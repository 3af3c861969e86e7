//! Body parsing for ingest: one JSON object, a JSON array, or NDJSON. All or
//! nothing: the first bad item fails the whole request, and the error names
//! its array index or NDJSON line and the field at fault.

use serde::Deserialize;
use serde_json::{json, Value};

/// Why a body was refused.
#[derive(Debug, PartialEq)]
pub struct ParseError {
    /// Human-readable reason.
    pub message: String,
    /// Array index at fault.
    pub index: Option<usize>,
    /// NDJSON line (1-based) at fault.
    pub line: Option<usize>,
    /// Path of the field at fault, when known.
    pub field: Option<String>,
}

impl ParseError {
    /// The `400` response body.
    pub fn to_json(&self) -> Value {
        let mut v = json!({"error": self.message});
        if let Some(i) = self.index {
            v["index"] = json!(i);
        }
        if let Some(l) = self.line {
            v["line"] = json!(l);
        }
        if let Some(f) = &self.field {
            v["field"] = json!(f);
        }
        v
    }
}

/// Re-parse a failing document with path tracking to find the field at fault.
/// Only runs on the error path, so the fast path pays nothing for it.
fn locate<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> (Option<String>, String) {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    match serde_path_to_error::deserialize::<_, T>(&mut de) {
        Err(e) => {
            let path = e.path().to_string();
            let field = (path != "." && !path.is_empty()).then_some(path);
            (field, e.into_inner().to_string())
        }
        Ok(_) => (None, "invalid JSON".into()),
    }
}

/// Parse a body into items.
///
/// The body is checked to be UTF-8 once, up front; the JSON parser then reads
/// it as text and does not re-check every string it meets.
pub fn parse_batch<T: for<'de> Deserialize<'de>>(
    bytes: &[u8],
    ndjson: bool,
) -> Result<Vec<T>, ParseError> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let at = e.valid_up_to();
        let line = bytes[..at].iter().filter(|b| **b == b'\n').count() + 1;
        ParseError {
            message: format!("body is not valid UTF-8 (byte {at})"),
            index: None,
            line: Some(line),
            field: None,
        }
    })?;
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    match first {
        None => Err(ParseError {
            message: "empty body: send a JSON object, a JSON array or NDJSON".into(),
            index: None,
            line: None,
            field: None,
        }),
        Some(b'[') if !ndjson => serde_json::from_str::<Vec<T>>(text).map_err(|e| {
            let (path, message) = locate::<Vec<T>>(bytes);
            // The path starts with `[i]`: split it into index and field.
            let (index, field) = match path {
                Some(p) if p.starts_with('[') => {
                    let end = p.find(']').unwrap_or(0);
                    let index = p[1..end].parse().ok();
                    let rest = p[end + 1..].trim_start_matches('.');
                    (index, (!rest.is_empty()).then(|| rest.to_string()))
                }
                other => (None, other),
            };
            ParseError {
                message: if message.is_empty() {
                    e.to_string()
                } else {
                    message
                },
                index,
                line: None,
                field,
            }
        }),
        Some(_) => {
            if !ndjson {
                // One object, possibly pretty-printed over several lines.
                match serde_json::from_str::<T>(text) {
                    Ok(item) => return Ok(vec![item]),
                    Err(e) if !e.to_string().contains("trailing characters") => {
                        let (field, message) = locate::<T>(bytes);
                        return Err(ParseError {
                            message,
                            index: None,
                            line: None,
                            field,
                        });
                    }
                    Err(_) => {} // several objects: NDJSON
                }
            }
            let mut items = Vec::new();
            for (i, line) in text.split('\n').enumerate() {
                if line.trim_ascii().is_empty() {
                    continue;
                }
                match serde_json::from_str::<T>(line) {
                    Ok(item) => items.push(item),
                    Err(_) => {
                        let (field, message) = locate::<T>(line.as_bytes());
                        return Err(ParseError {
                            message,
                            index: None,
                            line: Some(i + 1),
                            field,
                        });
                    }
                }
            }
            Ok(items)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_core::{HttpExchange, LogRecord};

    #[test]
    fn three_shapes() {
        let one: Vec<LogRecord> = parse_batch(b"{\n \"msg\": \"a\"\n}", false).unwrap();
        assert_eq!(one.len(), 1);
        let arr: Vec<LogRecord> = parse_batch(br#"[{"msg":"a"},{"msg":"b"}]"#, false).unwrap();
        assert_eq!(arr.len(), 2);
        let nd: Vec<LogRecord> =
            parse_batch(b"{\"msg\":\"a\"}\n\n{\"msg\":\"b\"}\n", false).unwrap();
        assert_eq!(nd.len(), 2);
    }

    #[test]
    fn array_error_names_index_and_field() {
        let e =
            parse_batch::<HttpExchange>(br#"[{"Status":200},{"Status":"x"}]"#, false).unwrap_err();
        assert_eq!(e.index, Some(1));
        assert_eq!(e.field.as_deref(), Some("Status"));
    }

    #[test]
    fn ndjson_error_names_line_and_field() {
        let e = parse_batch::<LogRecord>(b"{\"msg\":\"a\"}\n{\"labels\":{\"k\":1}}\n", false)
            .unwrap_err();
        assert_eq!(e.line, Some(2));
        assert!(e.message.contains("labels.k"), "{e:?}");
    }

    #[test]
    fn invalid_utf8_names_the_line() {
        let e =
            parse_batch::<LogRecord>(b"{\"msg\":\"a\"}\n{\"msg\":\"\xff\"}\n", false).unwrap_err();
        assert_eq!(e.line, Some(2));
        assert!(e.message.contains("UTF-8"), "{e:?}");
    }
}

#[cfg(test)]
mod props {
    //! Ingest bodies come from the network: any bytes must give items or an
    //! error, never a panic, and a batch is taken whole or not at all.
    use super::*;
    use proptest::prelude::*;
    use switchyard_core::{HttpExchange, LogRecord};

    /// A JSON string with arbitrary text (non-ASCII, controls, quotes).
    fn json_text() -> impl Strategy<Value = String> {
        any::<String>().prop_map(|s| serde_json::to_string(&s).unwrap())
    }

    /// A valid log-record line: `{"msg": <text>, "labels": {<text>: <text>}}`.
    fn record_line() -> impl Strategy<Value = String> {
        (json_text(), json_text(), json_text())
            .prop_map(|(m, k, v)| format!("{{\"msg\":{m},\"labels\":{{{k}:{v}}}}}"))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn arbitrary_bytes_never_panic(
            body in proptest::collection::vec(any::<u8>(), 0..512),
            ndjson in any::<bool>(),
        ) {
            let _ = parse_batch::<LogRecord>(&body, ndjson);
            let _ = parse_batch::<HttpExchange>(&body, ndjson);
            let _ = parse_batch::<serde_json::Value>(&body, ndjson);
        }

        #[test]
        fn arbitrary_text_never_panics(body in any::<String>(), ndjson in any::<bool>()) {
            let _ = parse_batch::<LogRecord>(body.as_bytes(), ndjson);
            let _ = parse_batch::<HttpExchange>(body.as_bytes(), ndjson);
        }

        /// NDJSON of good lines is taken whole; one line made bad (garbage
        /// inserted at any byte) fails the whole body and names that line.
        #[test]
        fn ndjson_is_all_or_nothing(
            lines in proptest::collection::vec(record_line(), 1..6),
            bad in any::<prop::sample::Index>(),
            at in any::<prop::sample::Index>(),
            garbage in "[^\n]{1,4}",
        ) {
            let body = lines.join("\n");
            let all: Vec<LogRecord> = parse_batch(body.as_bytes(), true).unwrap();
            prop_assert_eq!(all.len(), lines.len());

            let i = bad.index(lines.len());
            let line = &lines[i];
            // Insert at a char boundary so the body stays UTF-8.
            let cut = line
                .char_indices()
                .map(|(b, _)| b)
                .nth(at.index(line.chars().count()))
                .unwrap_or(line.len());
            let broken = format!("{}{garbage}{}", &line[..cut], &line[cut..]);
            if serde_json::from_str::<LogRecord>(&broken).is_ok() {
                return Ok(()); // the insertion happened to stay valid
            }
            let mut damaged = lines.clone();
            damaged[i] = broken;
            let e = parse_batch::<LogRecord>(damaged.join("\n").as_bytes(), true).unwrap_err();
            prop_assert_eq!(e.line, Some(i + 1), "{:?}", e);
            prop_assert!(serde_json::to_string(&e.to_json()).is_ok());
        }

        /// An array with one bad element fails whole and names its index.
        #[test]
        fn array_is_all_or_nothing(
            lines in proptest::collection::vec(record_line(), 1..6),
            bad in any::<prop::sample::Index>(),
        ) {
            let body = format!("[{}]", lines.join(","));
            let all: Vec<LogRecord> = parse_batch(body.as_bytes(), false).unwrap();
            prop_assert_eq!(all.len(), lines.len());
            let i = bad.index(lines.len());
            let mut damaged = lines.clone();
            damaged[i] = r#"{"labels":{"k":1}}"#.to_string();
            let body = format!("[{}]", damaged.join(","));
            let e = parse_batch::<LogRecord>(body.as_bytes(), false).unwrap_err();
            prop_assert_eq!(e.index, Some(i), "{:?}", e);
        }
    }
}
