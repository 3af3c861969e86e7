//! A log record. Any JSON object reads as one: the well-known keys
//! (`timestamp`/`ts`/`time`, `message`/`msg`, `level`, `labels`) fill the model,
//! every other key is kept as a field, and writing it back gives the same flat
//! object — under the same key names, with the timestamp exactly as it came.

use serde::de::{Error as _, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// One log record.
#[derive(Debug, Clone)]
pub struct LogRecord {
    /// When it happened.
    pub timestamp: OffsetDateTime,
    /// The key the timestamp came under (written back under the same key).
    pub timestamp_key: &'static str,
    /// The timestamp's original JSON text, written back verbatim when present.
    pub timestamp_raw: Option<Box<RawValue>>,
    /// The message, if any.
    pub message: Option<String>,
    /// The key the message came under.
    pub message_key: &'static str,
    /// Severity, if any.
    pub level: Option<String>,
    /// Labels (string → string).
    pub labels: BTreeMap<String, String>,
    /// All other keys, with their values as the raw JSON text that came in
    /// (no per-value tree is built on the ingest hot path).
    pub fields: Vec<(String, Box<RawValue>)>,
    /// Kind of source that produced it (`http`, `file`, ...). Not serialized.
    pub source_type: Option<&'static str>,
    /// Which instance of the source. Not serialized.
    pub source_id: Option<String>,
}

/// Equal when the model matches and raw values have the same JSON text.
impl PartialEq for LogRecord {
    fn eq(&self, o: &Self) -> bool {
        let raw_eq = |a: &RawValue, b: &RawValue| a.get() == b.get();
        self.timestamp == o.timestamp
            && self.timestamp_key == o.timestamp_key
            && match (&self.timestamp_raw, &o.timestamp_raw) {
                (Some(a), Some(b)) => raw_eq(a, b),
                (a, b) => a.is_none() && b.is_none(),
            }
            && self.message == o.message
            && self.message_key == o.message_key
            && self.level == o.level
            && self.labels == o.labels
            && self.fields.len() == o.fields.len()
            && self
                .fields
                .iter()
                .zip(&o.fields)
                .all(|((ka, va), (kb, vb))| ka == kb && raw_eq(va, vb))
            && self.source_type == o.source_type
            && self.source_id == o.source_id
    }
}

impl LogRecord {
    /// A record with a message, stamped now.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            timestamp: OffsetDateTime::now_utc(),
            timestamp_key: "timestamp",
            timestamp_raw: None,
            message: Some(message.into()),
            message_key: "message",
            level: None,
            labels: BTreeMap::new(),
            fields: Vec::new(),
            source_type: None,
            source_id: None,
        }
    }
}

/// Parse a timestamp value: RFC 3339 text, or a Unix time number whose unit
/// (s, ms, µs, ns) is told by its magnitude.
fn parse_timestamp(v: &Value) -> Result<OffsetDateTime, String> {
    match v {
        Value::String(s) => OffsetDateTime::parse(s, &Rfc3339)
            .map_err(|e| format!("not an RFC 3339 time ({e}): {s:?}")),
        Value::Number(n) => {
            let f = n.as_f64().ok_or("not a finite number")?;
            let nanos = if f.abs() >= 1e17 {
                f
            } else if f.abs() >= 1e14 {
                f * 1e3
            } else if f.abs() >= 1e11 {
                f * 1e6
            } else {
                f * 1e9
            };
            OffsetDateTime::from_unix_timestamp_nanos(nanos as i128)
                .map_err(|e| format!("Unix time out of range: {e}"))
        }
        _ => Err("expected an RFC 3339 string or a Unix time number".into()),
    }
}

impl<'de> Deserialize<'de> for LogRecord {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(RecordVisitor)
    }
}

struct RecordVisitor;

impl<'de> Visitor<'de> for RecordVisitor {
    type Value = LogRecord;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object (a log record)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<LogRecord, A::Error> {
        let mut rec = LogRecord {
            message: None,
            ..LogRecord::new(String::new())
        };
        let mut have_ts = false;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "timestamp" | "ts" | "time" if !have_ts => {
                    let raw: Box<RawValue> = map.next_value()?;
                    let v: Value = serde_json::from_str(raw.get()).map_err(A::Error::custom)?;
                    rec.timestamp = parse_timestamp(&v)
                        .map_err(|e| A::Error::custom(format!("field `{key}`: {e}")))?;
                    rec.timestamp_key = match key.as_str() {
                        "ts" => "ts",
                        "time" => "time",
                        _ => "timestamp",
                    };
                    rec.timestamp_raw = Some(raw);
                    have_ts = true;
                }
                "message" | "msg" if rec.message.is_none() => {
                    let v: Value = map.next_value()?;
                    match v {
                        Value::String(s) => rec.message = Some(s),
                        Value::Null => {}
                        _ => {
                            return Err(A::Error::custom(format!(
                                "field `{key}`: expected a string"
                            )))
                        }
                    }
                    rec.message_key = if key == "msg" { "msg" } else { "message" };
                }
                "level" if rec.level.is_none() => match map.next_value::<Value>()? {
                    Value::String(s) => rec.level = Some(s),
                    Value::Null => {}
                    _ => return Err(A::Error::custom("field `level`: expected a string")),
                },
                "labels" => {
                    let v: Value = map.next_value()?;
                    let Value::Object(obj) = v else {
                        return Err(A::Error::custom(
                            "field `labels`: expected an object of strings",
                        ));
                    };
                    for (k, v) in obj {
                        match v {
                            Value::String(s) => {
                                rec.labels.insert(k, s);
                            }
                            _ => {
                                return Err(A::Error::custom(format!(
                                    "field `labels.{k}`: expected a string"
                                )))
                            }
                        }
                    }
                }
                _ => {
                    let v: Box<RawValue> = map.next_value()?;
                    rec.fields.push((key, v));
                }
            }
        }
        Ok(rec)
    }
}

impl Serialize for LogRecord {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        match &self.timestamp_raw {
            Some(raw) => m.serialize_entry(self.timestamp_key, raw)?,
            None => {
                let text = self
                    .timestamp
                    .format(&Rfc3339)
                    .map_err(serde::ser::Error::custom)?;
                m.serialize_entry(self.timestamp_key, &text)?
            }
        }
        if let Some(msg) = &self.message {
            m.serialize_entry(self.message_key, msg)?;
        }
        if let Some(level) = &self.level {
            m.serialize_entry("level", level)?;
        }
        if !self.labels.is_empty() {
            m.serialize_entry("labels", &self.labels)?;
        }
        for (k, v) in &self.fields {
            m.serialize_entry(k, v.as_ref())?;
        }
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_goes_in_comes_out() {
        let input = r#"{"ts":1700000000.5,"msg":"hello","level":"info","labels":{"app":"api"},"user":{"id":7},"n":[1,2]}"#;
        let rec: LogRecord = serde_json::from_str(input).unwrap();
        assert_eq!(rec.message.as_deref(), Some("hello"));
        assert_eq!(rec.labels["app"], "api");
        assert_eq!(rec.timestamp.unix_timestamp(), 1_700_000_000);
        let out: Value = serde_json::from_str(&serde_json::to_string(&rec).unwrap()).unwrap();
        let expected: Value = serde_json::from_str(input).unwrap();
        assert_eq!(out, expected);
    }

    #[test]
    fn rfc3339_and_millisecond_timestamps() {
        let a: LogRecord = serde_json::from_str(r#"{"timestamp":"2024-01-02T03:04:05Z"}"#).unwrap();
        let b: LogRecord = serde_json::from_str(r#"{"time":1704164645000}"#).unwrap();
        assert_eq!(a.timestamp, b.timestamp);
    }

    #[test]
    fn bad_well_known_fields_name_the_field() {
        let e = serde_json::from_str::<LogRecord>(r#"{"labels":{"a":1}}"#).unwrap_err();
        assert!(e.to_string().contains("labels.a"), "{e}");
        let e = serde_json::from_str::<LogRecord>(r#"{"ts":"yesterday"}"#).unwrap_err();
        assert!(e.to_string().contains("field `ts`"), "{e}");
        assert!(serde_json::from_str::<LogRecord>("[1]").is_err());
    }

    #[test]
    fn record_without_timestamp_gets_one_written() {
        let rec: LogRecord = serde_json::from_str(r#"{"message":"m"}"#).unwrap();
        let out: Value = serde_json::to_value(&rec).unwrap();
        assert!(out["timestamp"].is_string());
        assert_eq!(out["message"], "m");
    }
}
