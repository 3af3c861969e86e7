//! A log record. Any JSON object reads as one: the well-known keys
//! (`timestamp`/`ts`/`time`, `message`/`msg`, `level`, `labels`) fill the model,
//! every other key is kept as a field, and writing it back gives the same flat
//! object — under the same key names, with the timestamp exactly as it came.

use crate::json_string::write_str;
use crate::Fields;
use serde::de::{Error as _, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
use serde_json::Value;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// One log record.
///
/// Deserialize it from JSON text (`serde_json::from_slice` / `from_str`): the
/// fields are borrowed from the input while it is read, which a
/// `serde_json::Value` or a reader cannot offer.
#[derive(Debug, Clone, PartialEq)]
pub struct LogRecord {
    /// When it happened.
    pub timestamp: OffsetDateTime,
    /// The key the timestamp came under (written back under the same key).
    pub timestamp_key: &'static str,
    /// The timestamp's original JSON text, written back verbatim when present.
    pub timestamp_raw: Option<Box<str>>,
    /// The message, if any.
    pub message: Option<String>,
    /// The key the message came under.
    pub message_key: &'static str,
    /// Severity, if any.
    pub level: Option<String>,
    /// Labels (string → string).
    pub labels: BTreeMap<String, String>,
    /// All other keys, with their values as the JSON text that came in.
    pub fields: Fields,
    /// Kind of source that produced it (`http`, `file`, ...). Not serialized.
    pub source_type: Option<&'static str>,
    /// Which instance of the source. Not serialized.
    pub source_id: Option<String>,
}

impl LogRecord {
    /// A record with a message, stamped now.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: Some(message.into()),
            ..Self::empty(OffsetDateTime::now_utc())
        }
    }

    fn empty(timestamp: OffsetDateTime) -> Self {
        Self {
            timestamp,
            timestamp_key: "timestamp",
            timestamp_raw: None,
            message: None,
            message_key: "message",
            level: None,
            labels: BTreeMap::new(),
            fields: Fields::new(),
            source_type: None,
            source_id: None,
        }
    }

    /// Append the record's flat JSON object to `out` — the same text as its
    /// `Serialize` form, written without going through a serializer per field.
    pub fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        out.push(b'{');
        write_key(out, self.timestamp_key);
        match &self.timestamp_raw {
            Some(raw) => out.extend_from_slice(raw.as_bytes()),
            None => {
                let text = self
                    .timestamp
                    .format(&Rfc3339)
                    .map_err(serde::ser::Error::custom)?;
                write_str(out, &text);
            }
        }
        if let Some(msg) = &self.message {
            out.push(b',');
            write_key(out, self.message_key);
            write_str(out, msg);
        }
        if let Some(level) = &self.level {
            out.extend_from_slice(b",\"level\":");
            write_str(out, level);
        }
        if !self.labels.is_empty() {
            out.extend_from_slice(b",\"labels\":");
            let mut sep = b'{';
            for (name, value) in &self.labels {
                out.push(sep);
                sep = b',';
                write_str(out, name);
                out.push(b':');
                write_str(out, value);
            }
            out.push(b'}');
        }
        if !self.fields.is_empty() {
            out.push(b',');
            out.extend_from_slice(self.fields.as_members().as_bytes());
        }
        out.push(b'}');
        Ok(())
    }
}

/// `"key":` for one of the model's own keys (plain ASCII, no escaping).
fn write_key(out: &mut Vec<u8>, key: &str) {
    out.push(b'"');
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":");
}

/// Parse a timestamp's JSON text: an RFC 3339 string, or a Unix time number
/// whose unit (s, ms, µs, ns) is told by its magnitude.
fn parse_timestamp(raw: &str) -> Result<OffsetDateTime, String> {
    if raw.starts_with('"') {
        let text = unquote(raw)?;
        return OffsetDateTime::parse(&text, &Rfc3339)
            .map_err(|e| format!("not an RFC 3339 time ({e}): {text:?}"));
    }
    if raw.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
        // Integers exactly (nanosecond times do not fit an f64), others as f64.
        let nanos = match raw.parse::<i128>() {
            Ok(n) => {
                let scale = match n.unsigned_abs() {
                    m if m >= 100_000_000_000_000_000 => 1,
                    m if m >= 100_000_000_000_000 => 1_000,
                    m if m >= 100_000_000_000 => 1_000_000,
                    _ => 1_000_000_000,
                };
                n.checked_mul(scale).ok_or("Unix time out of range")?
            }
            Err(_) => {
                let f: f64 = raw.parse().map_err(|_| "not a finite number")?;
                let a = f.abs();
                let scale = if a >= 1e17 {
                    1.0
                } else if a >= 1e14 {
                    1e3
                } else if a >= 1e11 {
                    1e6
                } else {
                    1e9
                };
                (f * scale) as i128
            }
        };
        return OffsetDateTime::from_unix_timestamp_nanos(nanos)
            .map_err(|e| format!("Unix time out of range: {e}"));
    }
    Err("expected an RFC 3339 string or a Unix time number".into())
}

/// The text of a JSON string literal, borrowed when it has no escapes.
fn unquote(raw: &str) -> Result<Cow<'_, str>, String> {
    let inner = &raw[1..raw.len() - 1];
    if inner.contains('\\') {
        serde_json::from_str::<String>(raw)
            .map(Cow::Owned)
            .map_err(|e| e.to_string())
    } else {
        Ok(Cow::Borrowed(inner))
    }
}

impl<'de> Deserialize<'de> for LogRecord {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(RecordVisitor)
    }
}

/// A map key, borrowed from the input when it had no escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// Read an optional string value, naming the field on error.
fn opt_string<'de, A: MapAccess<'de>>(map: &mut A, key: &str) -> Result<Option<String>, A::Error> {
    map.next_value::<Option<String>>()
        .map_err(|e| A::Error::custom(format!("field `{key}`: expected a string ({e})")))
}

struct RecordVisitor;

impl<'de> Visitor<'de> for RecordVisitor {
    type Value = LogRecord;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object (a log record)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<LogRecord, A::Error> {
        // Stamped with the clock only if the record carries no time of its own.
        let mut rec = LogRecord::empty(OffsetDateTime::UNIX_EPOCH);
        let mut have_ts = false;
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            match key.as_ref() {
                k @ ("timestamp" | "ts" | "time") if !have_ts => {
                    let raw: &'de RawValue = map.next_value()?;
                    rec.timestamp = parse_timestamp(raw.get())
                        .map_err(|e| A::Error::custom(format!("field `{k}`: {e}")))?;
                    rec.timestamp_key = match k {
                        "ts" => "ts",
                        "time" => "time",
                        _ => "timestamp",
                    };
                    rec.timestamp_raw = Some(raw.get().into());
                    have_ts = true;
                }
                k @ ("message" | "msg") if rec.message.is_none() => {
                    rec.message = opt_string(&mut map, k)?;
                    rec.message_key = if k == "msg" { "msg" } else { "message" };
                }
                "level" if rec.level.is_none() => rec.level = opt_string(&mut map, "level")?,
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
                    let raw: &'de RawValue = map.next_value()?;
                    match &key {
                        // Came without escapes, so it needs none going out.
                        Cow::Borrowed(k) => rec.fields.push_plain_member(k, raw.get()),
                        Cow::Owned(k) => rec.fields.push_escaped_member(k, raw.get()),
                    }
                }
            }
        }
        if !have_ts {
            rec.timestamp = OffsetDateTime::now_utc();
        }
        Ok(rec)
    }
}

impl Serialize for LogRecord {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        match &self.timestamp_raw {
            Some(raw) => {
                let raw: &RawValue =
                    serde_json::from_str(raw).map_err(serde::ser::Error::custom)?;
                m.serialize_entry(self.timestamp_key, raw)?
            }
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
            m.serialize_entry(&k, v)?;
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

    #[test]
    fn fast_writer_matches_serializer() {
        let inputs = [
            r#"{"ts":1700000000.5,"msg":"hello \"q\"","level":"info","labels":{"app":"api"},"user":{"id":7},"n":[1,2]}"#,
            r#"{"message":"m","k\u00e9y\n":"v","e":"a\\b"}"#,
            r#"{"time":"2024-01-02T03:04:05.123456789+02:00"}"#,
            r#"{}"#,
        ];
        for input in inputs {
            let rec: LogRecord = serde_json::from_str(input).unwrap();
            let mut fast = Vec::new();
            rec.write_json(&mut fast).unwrap();
            assert_eq!(
                String::from_utf8(fast).unwrap(),
                serde_json::to_string(&rec).unwrap()
            );
        }
    }

    #[test]
    fn escaped_keys_and_values_come_back_equal() {
        let input = r#"{"message":"m","k\u00e9y\n":"v\u0001","plain":{"a\"b":1}}"#;
        let rec: LogRecord = serde_json::from_str(input).unwrap();
        assert_eq!(rec.fields.get("k\u{e9}y\n").unwrap().get(), r#""v\u0001""#);
        let mut out = Vec::new();
        rec.write_json(&mut out).unwrap();
        let mut a: Value = serde_json::from_slice(&out).unwrap();
        assert!(
            a["timestamp"].is_string(),
            "a record without a time is stamped"
        );
        a.as_object_mut().unwrap().remove("timestamp");
        let b: Value = serde_json::from_str(input).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn nanosecond_integer_timestamps_are_exact() {
        let rec: LogRecord = serde_json::from_str(r#"{"ts":1700000000123456789}"#).unwrap();
        assert_eq!(
            rec.timestamp.unix_timestamp_nanos(),
            1_700_000_000_123_456_789
        );
        let rec: LogRecord = serde_json::from_str(r#"{"ts":1700000000123}"#).unwrap();
        assert_eq!(
            rec.timestamp.unix_timestamp_nanos(),
            1_700_000_000_123_000_000
        );
        assert!(serde_json::from_str::<LogRecord>(r#"{"ts":true}"#).is_err());
        assert!(serde_json::from_str::<LogRecord>(r#"{"ts":1e400}"#).is_err());
    }
}

#[cfg(test)]
mod props {
    //! Records are read from whatever clients send: any bytes must give a
    //! record or an error, never a panic; what is accepted is written back
    //! as valid JSON that reads back the same.
    use super::*;
    use proptest::prelude::*;

    /// A JSON value's text: the model's special shapes and arbitrary ones.
    fn value() -> impl Strategy<Value = String> {
        let text = any::<String>().prop_map(|s| serde_json::to_string(&s).unwrap());
        prop_oneof![
            text.clone(),
            any::<i64>().prop_map(|n| n.to_string()),
            any::<i128>().prop_map(|n| n.to_string()),
            any::<f64>().prop_map(|f| serde_json::to_string(&f).unwrap()),
            Just("null".to_string()),
            Just("\"2024-02-29T23:59:60.123456789+14:00\"".to_string()),
            Just("1e400".to_string()),
            Just("-0.0".to_string()),
            text.clone().prop_map(|t| format!("{{ \"k\" : {t} }}")),
            (text.clone(), text).prop_map(|(a, b)| format!("[ {a} , {b} ]")),
        ]
    }

    fn key() -> impl Strategy<Value = String> {
        prop_oneof![
            prop::sample::select(vec![
                "timestamp",
                "ts",
                "time",
                "message",
                "msg",
                "level",
                "labels"
            ])
            .prop_map(|k| k.to_string()),
            any::<String>(),
        ]
        .prop_map(|k| serde_json::to_string(&k).unwrap())
    }

    fn object() -> impl Strategy<Value = String> {
        proptest::collection::vec((key(), value()), 0..6).prop_map(|members| {
            let members: Vec<String> = members.iter().map(|(k, v)| format!("{k} : {v}")).collect();
            format!("{{ {} }}", members.join(" , "))
        })
    }

    /// Parse, write, parse, write: the second writing equals the first.
    fn settles(text: &[u8]) -> Result<(), TestCaseError> {
        let Ok(first) = serde_json::from_slice::<LogRecord>(text) else {
            return Ok(());
        };
        let mut once = Vec::new();
        first.write_json(&mut once).unwrap();
        // Valid JSON text. (Not `Value`: a number such as `1e400` is valid
        // JSON that it cannot hold, and fields are passed on as they came.)
        prop_assert!(serde_json::from_slice::<serde::de::IgnoredAny>(&once).is_ok());
        prop_assert_eq!(serde_json::to_vec(&first).unwrap(), once.clone());
        let second: LogRecord = serde_json::from_slice(&once).unwrap();
        let mut twice = Vec::new();
        second.write_json(&mut twice).unwrap();
        prop_assert_eq!(
            String::from_utf8_lossy(&once),
            String::from_utf8_lossy(&twice)
        );
        prop_assert_eq!(second.fields.iter().count(), first.fields.iter().count());
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(384))]

        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..256)) {
            settles(&data)?;
        }

        #[test]
        fn objects_settle_after_one_round_trip(text in object()) {
            settles(text.as_bytes())?;
        }

        /// Past the first checks: an object with garbage spliced in.
        #[test]
        fn objects_with_garbage_never_panic(
            text in object(),
            at in any::<prop::sample::Index>(),
            garbage in proptest::collection::vec(any::<u8>(), 1..6),
        ) {
            let mut bytes = text.into_bytes();
            let i = at.index(bytes.len());
            bytes.splice(i..i, garbage);
            settles(&bytes)?;
        }
    }
}
