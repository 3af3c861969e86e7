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
