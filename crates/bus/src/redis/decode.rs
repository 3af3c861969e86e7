//! From a stream entry's `data` to an [`Event`], or the reason it is poison.
//!
//! The wire carries one JSON object per event. An object with any of the
//! HTTP-exchange keys of the spec is an HTTP exchange (and must have their
//! types); any other object is a log record. Anything else is poison.

use super::entry::{RawEntry, StreamId};
use serde::de::{IgnoredAny, MapAccess, Visitor};
use serde::Deserializer;
use std::borrow::Cow;
use std::fmt;
use switchyard_core::{Event, HttpExchange, LogRecord, Payload};
use time::OffsetDateTime;

/// Top-level keys that mark an HTTP exchange.
const HTTP_KEYS: [&str; 9] = [
    "LogID",
    "RequestID",
    "Method",
    "Path",
    "Status",
    "Duration",
    "ResponseHeaders",
    "ResponseBody",
    "RequestBody",
];

/// The name of the one field the publisher writes.
pub const DATA_FIELD: &[u8] = b"data";

/// Decode a stream entry. An HTTP exchange without `Timestamp` gets the
/// entry id's milliseconds, as the spec says.
pub fn stream_entry(entry: &RawEntry) -> Result<Event, String> {
    if entry.fields.is_none() {
        return Err("entry was deleted while pending".into());
    }
    let data = entry
        .field(DATA_FIELD)
        .ok_or("no `data` field".to_string())?;
    let mut event = json(data)?;
    if let Payload::Http(x) = &mut event.payload {
        if x.timestamp.is_none() {
            x.timestamp = id_time(entry.id);
        }
    }
    Ok(event)
}

fn id_time(id: StreamId) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(id.ms) * 1_000_000).ok()
}

/// Decode one JSON event (HTTP exchange or log record).
pub fn json(data: &[u8]) -> Result<Event, String> {
    // The usual exchange (the Go proxy and Switchyard both write `LogID`
    // first) is read without checking all of its bytes as UTF-8 up front:
    // its strings are checked one by one and its bodies are base64.
    if data.starts_with(br#"{"LogID":"#) {
        if let Some(x) = HttpExchange::from_json_fast(data) {
            return Ok(Event::from(x));
        }
    }
    // UTF-8 is checked once here, so the parser does not re-check each string.
    let data = std::str::from_utf8(data).map_err(|e| format!("not UTF-8 text: {e}"))?;
    // Fast path: the Go proxy and Switchyard both write `LogID` first, so the
    // key scan (a second parse) is needed only for other writers.
    let is_http = data.starts_with(r#"{"LogID":"#)
        || serde_json::Deserializer::from_str(data)
            .deserialize_map(KeyScan)
            .map_err(|e| format!("not a JSON object: {e}"))?;
    if is_http {
        HttpExchange::from_json(data)
            .map(Event::from)
            .map_err(|e| format!("not an HTTP exchange: {e}"))
    } else {
        serde_json::from_str::<LogRecord>(data)
            .map(Event::from)
            .map_err(|e| format!("not a log record: {e}"))
    }
}

/// Reads only the top-level keys: is any of them an HTTP-exchange key?
struct KeyScan;

impl<'de> Visitor<'de> for KeyScan {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        let mut http = false;
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            http |= HTTP_KEYS.contains(&key.as_ref());
            map.next_value::<IgnoredAny>()?;
        }
        Ok(http)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(fields: &[(&str, &str)]) -> RawEntry {
        RawEntry {
            id: "1700000000000-0".parse().unwrap(),
            fields: Some(
                fields
                    .iter()
                    .map(|(k, v)| {
                        (
                            bytes::Bytes::copy_from_slice(k.as_bytes()),
                            bytes::Bytes::copy_from_slice(v.as_bytes()),
                        )
                    })
                    .collect(),
            ),
        }
    }

    #[test]
    fn http_exchange_gets_the_entry_time() {
        let e = stream_entry(&entry(&[("data", r#"{"RequestID":"r","Status":200}"#)])).unwrap();
        let Payload::Http(x) = e.payload else {
            panic!("expected an HTTP exchange")
        };
        assert_eq!(x.status, 200);
        assert_eq!(x.timestamp.unwrap().unix_timestamp(), 1_700_000_000);
    }

    #[test]
    fn other_objects_are_log_records() {
        let e = stream_entry(&entry(&[("data", r#"{"msg":"hi","Method2":1}"#)])).unwrap();
        assert!(matches!(e.payload, Payload::Log(_)));
    }

    #[test]
    fn poison_reasons() {
        let reason = |f: &[(&str, &str)]| stream_entry(&entry(f)).unwrap_err();
        assert!(reason(&[("other", "{}")]).contains("no `data`"));
        assert!(reason(&[("data", "not json")]).contains("not a JSON object"));
        assert!(reason(&[("data", "[1,2]")]).contains("not a JSON object"));
        assert!(reason(&[("data", r#"{"Status":"200"}"#)]).contains("HTTP exchange"));
        let deleted = RawEntry {
            id: StreamId::ZERO,
            fields: None,
        };
        assert!(stream_entry(&deleted).unwrap_err().contains("deleted"));
    }
}

#[cfg(test)]
mod props {
    //! Stream and list entries are written by other programs: any bytes
    //! must decode to an event or a poison reason, never a panic.
    use super::*;
    use bytes::Bytes;
    use proptest::prelude::*;

    fn data_entry(data: Vec<u8>) -> RawEntry {
        RawEntry {
            id: StreamId {
                ms: u64::MAX,
                seq: 0,
            },
            fields: Some(vec![(Bytes::from_static(DATA_FIELD), Bytes::from(data))]),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = json(&data);
            let _ = stream_entry(&data_entry(data));
        }

        /// Past the fast path's and the key scan's first checks: an object
        /// that starts like an exchange (or a record) and then goes wrong.
        #[test]
        fn objects_with_garbage_never_panic(
            http in any::<bool>(),
            tail in proptest::collection::vec(
                prop_oneof![Just(b'"'), Just(b'{'), Just(b'}'), Just(b','), Just(b':'),
                            Just(b'\\'), Just(b'0'), any::<u8>()],
                0..64),
        ) {
            let mut data = if http { br#"{"LogID":"#.to_vec() } else { br#"{"msg":"#.to_vec() };
            data.extend_from_slice(&tail);
            let _ = json(&data);
        }

        /// A record written as JSON (any text, non-ASCII included) reads back
        /// as the same message and labels, from a stream entry as from a list.
        #[test]
        fn log_records_round_trip(
            message in any::<String>(),
            labels in proptest::collection::btree_map("[a-z]{1,4}", any::<String>(), 0..3),
        ) {
            let mut rec = LogRecord::new(message.clone());
            rec.labels = labels.clone();
            let mut data = Vec::new();
            rec.write_json(&mut data).unwrap();
            let event = stream_entry(&data_entry(data.clone())).unwrap();
            let Payload::Log(back) = event.payload else {
                return Err(TestCaseError::fail("not a log record"));
            };
            prop_assert_eq!(back.message.as_deref(), Some(message.as_str()));
            prop_assert_eq!(&back.labels, &labels);
            prop_assert_eq!(json(&data).map(|e| matches!(e.payload, Payload::Log(_))), Ok(true));
        }
    }
}
