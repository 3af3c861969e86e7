//! `remap`: rename, set and delete fields, and parse the message as JSON or
//! logfmt into fields. Operations run in the order given.

use crate::path::{record, Path};
use serde_json::Value;
use switchyard_core::{Event, LogRecord, Transform, Verdict};

/// How to parse the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parse {
    /// A JSON object: its keys become fields (`message`, `level` fill the model).
    Json,
    /// `key=value key2="quoted value"` pairs.
    Logfmt,
}

/// One remap step.
#[derive(Debug)]
pub enum Op {
    /// Move a value.
    Rename(Path, Path),
    /// Set a value.
    Set(Path, Value),
    /// Remove a value.
    Delete(Path),
    /// Parse the message into fields.
    Parse(Parse),
}

/// Applies remap steps.
pub struct Remap {
    ops: Vec<Op>,
}

impl Remap {
    /// Steps in order.
    pub fn new(ops: Vec<Op>) -> Self {
        Self { ops }
    }
}

impl Transform for Remap {
    fn apply(&self, event: &mut Event) -> Verdict {
        let Some(rec) = record(event) else {
            return Verdict::Keep;
        };
        for op in &self.ops {
            match op {
                Op::Rename(from, to) => {
                    if let Some(v) = from.get(rec) {
                        from.delete(rec);
                        to.set(rec, v);
                    }
                }
                Op::Set(path, value) => path.set(rec, value.clone()),
                Op::Delete(path) => {
                    path.delete(rec);
                }
                Op::Parse(how) => parse_message(rec, *how),
            }
        }
        Verdict::Keep
    }
}

/// Parse the message into fields; a message that does not parse is left as
/// it is (and marked with the field `parse_error`).
fn parse_message(rec: &mut LogRecord, how: Parse) {
    let Some(msg) = rec.message.clone() else {
        return;
    };
    let pairs: Result<Vec<(String, Value)>, String> = match how {
        Parse::Json => match serde_json::from_str::<Value>(&msg) {
            Ok(Value::Object(obj)) => Ok(obj.into_iter().collect()),
            Ok(_) => Err("message is JSON but not an object".into()),
            Err(e) => Err(format!("message is not JSON: {e}")),
        },
        Parse::Logfmt => logfmt(&msg),
    };
    match pairs {
        Ok(pairs) => {
            let mut replaced_message = false;
            for (k, v) in pairs {
                replaced_message |= matches!(k.as_str(), "message" | "msg");
                match Path::parse(&k) {
                    Ok(p @ (Path::Message | Path::Level)) => p.set(rec, v),
                    _ => {
                        let _ = rec.fields.insert_value(&k, &v);
                    }
                }
            }
            if !replaced_message {
                rec.message = None;
            }
        }
        Err(e) => {
            let _ = rec.fields.insert_value("parse_error", &e);
        }
    }
}

/// Parse logfmt: `key=value`, `key="quoted \" value"`, bare `key` (true).
pub fn logfmt(s: &str) -> Result<Vec<(String, Value)>, String> {
    let mut out = Vec::new();
    let mut chars = s.char_indices().peekable();
    loop {
        while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        let Some(&(start, _)) = chars.peek() else {
            break;
        };
        let mut end = s.len();
        while let Some(&(i, c)) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                end = i;
                break;
            }
            if c == '"' {
                return Err(format!("logfmt: a key contains `\"` at byte {i}"));
            }
            chars.next();
        }
        let key = s[start..end].to_string();
        if chars.next_if(|(_, c)| *c == '=').is_none() {
            out.push((key, Value::Bool(true)));
            continue;
        }
        let value = if chars.next_if(|(_, c)| *c == '"').is_some() {
            let mut v = String::new();
            loop {
                match chars.next() {
                    Some((_, '\\')) => match chars.next() {
                        Some((_, 'n')) => v.push('\n'),
                        Some((_, 't')) => v.push('\t'),
                        Some((_, c)) => v.push(c),
                        None => return Err("logfmt: unterminated quoted value".into()),
                    },
                    Some((_, '"')) => break,
                    Some((_, c)) => v.push(c),
                    None => return Err("logfmt: unterminated quoted value".into()),
                }
            }
            v
        } else {
            let mut v = String::new();
            while let Some((_, c)) = chars.next_if(|(_, c)| !c.is_whitespace()) {
                v.push(c);
            }
            v
        };
        out.push((key, Value::String(value)));
    }
    if out.is_empty() {
        return Err("logfmt: no key=value pairs".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn logfmt_table() {
        let ok = [
            ("a=1 b=two", json!([["a", "1"], ["b", "two"]])),
            (
                r#"msg="hello \"world\"" level=warn"#,
                json!([["msg", "hello \"world\""], ["level", "warn"]]),
            ),
            ("  flag  x=  ", json!([["flag", true], ["x", ""]])),
            ("path=/a/b?c=d", json!([["path", "/a/b?c=d"]])),
        ];
        for (input, expected) in ok {
            let got: Vec<Value> = logfmt(input)
                .unwrap()
                .into_iter()
                .map(|(k, v)| json!([k, v]))
                .collect();
            assert_eq!(Value::Array(got), expected, "{input}");
        }
        for bad in ["", "   ", r#"a="open"#, r#"k"ey=1"#] {
            assert!(logfmt(bad).is_err(), "{bad}");
        }
    }
}

#[cfg(test)]
mod props {
    //! logfmt comes from log lines: any text gives pairs or an error, never
    //! a panic, and quoted pairs written from any values read back equal.
    use super::*;
    use proptest::prelude::*;

    fn quote(v: &str) -> String {
        let mut out = String::from("\"");
        for c in v.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                c => out.push(c),
            }
        }
        out.push('"');
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn arbitrary_text_never_panics(
            text in prop_oneof![any::<String>(), "[a=\" \\\\é\\t\\n]{0,24}"],
        ) {
            let _ = logfmt(&text);
        }

        #[test]
        fn quoted_pairs_round_trip(
            pairs in proptest::collection::vec(
                ("[^\\s=\"]{1,8}", any::<String>()), 1..6),
            sep in prop::sample::select(vec![" ", "  ", "\t", " \u{3000} "]),
        ) {
            let line: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={}", quote(v))).collect();
            let got = logfmt(&line.join(sep)).unwrap();
            let want: Vec<(String, Value)> = pairs
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect();
            prop_assert_eq!(got, want);
        }
    }
}
