//! A compact binary form of an [`Event`] (id and payload) for storage, such
//! as the engine's disk buffer.
//!
//! Why not the events' JSON: the wire JSON is lossy on purpose (a log record
//! drops its source, an HTTP exchange writes bodies as base64), and parsing it
//! back costs several times more than reading lengths and bytes. This form
//! keeps every field of every payload, so `decode(encode(e))` equals `e`
//! exactly, id included. The acknowledgement token is not stored: it belongs
//! to the running process.
//!
//! Layout: a version byte, the 16-byte id, a payload tag, then the payload's
//! fields in declaration order. Integers are little-endian; strings and byte
//! strings are a `u32` length then the bytes; an `Option` is a `0`/`1` byte
//! then the value. Decoding checks every length against the input, UTF-8 of
//! every string and the JSON of documents and fields, so a damaged record is
//! an error, never a panic or a malformed event.

use crate::event::{Event, EventId, JsonDocument, Payload};
use crate::{Fields, HttpExchange, LogRecord};
use bytes::Bytes;
use serde_json::value::RawValue;
use std::collections::BTreeMap;
use std::sync::Mutex;
use time::{OffsetDateTime, UtcOffset};

const VERSION: u8 = 1;
const TAG_HTTP: u8 = 0;
const TAG_LOG: u8 = 1;
const TAG_JSON: u8 = 2;

/// Why bytes did not decode into an event.
#[derive(Debug, thiserror::Error)]
#[error("cannot decode stored event: field `{field}`: {reason}")]
pub struct DecodeError {
    field: &'static str,
    reason: String,
}

impl DecodeError {
    fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }
}

/// Append the stored form of `event` (without its acknowledgement) to `out`.
pub fn encode(event: &Event, out: &mut Vec<u8>) {
    out.push(VERSION);
    out.extend_from_slice(&event.id.as_u128().to_le_bytes());
    match &event.payload {
        Payload::Http(x) => {
            out.push(TAG_HTTP);
            encode_http(x, out);
        }
        Payload::Log(r) => {
            out.push(TAG_LOG);
            encode_log(r, out);
        }
        Payload::Json(doc) => {
            out.push(TAG_JSON);
            put_str(out, doc.get());
        }
    }
}

/// Read an event written by [`encode`]; it has no acknowledgement attached.
pub fn decode(bytes: &[u8]) -> Result<Event, DecodeError> {
    let mut r = Reader { rest: bytes };
    let version = r.u8("version")?;
    if version != VERSION {
        return Err(DecodeError::new(
            "version",
            format!("unknown version {version}"),
        ));
    }
    let id = EventId::from_u128(u128::from_le_bytes(r.array("id")?));
    let payload = match r.u8("payload")? {
        TAG_HTTP => Payload::Http(decode_http(&mut r)?),
        TAG_LOG => Payload::Log(decode_log(&mut r)?),
        TAG_JSON => {
            let text = r.string("json")?;
            let raw =
                RawValue::from_string(text).map_err(|e| DecodeError::new("json", e.to_string()))?;
            Payload::Json(JsonDocument::new(raw))
        }
        tag => return Err(DecodeError::new("payload", format!("unknown tag {tag}"))),
    };
    if !r.rest.is_empty() {
        return Err(DecodeError::new(
            "payload",
            format!("{} bytes left over", r.rest.len()),
        ));
    }
    let mut event = Event::new(payload);
    event.id = id;
    Ok(event)
}

fn encode_http(x: &HttpExchange, out: &mut Vec<u8>) {
    out.extend_from_slice(&x.log_id.to_le_bytes());
    put_str(out, &x.request_id);
    put_str(out, &x.method);
    put_str(out, &x.path);
    out.extend_from_slice(&x.status.to_le_bytes());
    out.extend_from_slice(&x.duration_ns.to_le_bytes());
    put_opt(out, x.response_headers.as_ref(), |out, headers| {
        put_len(out, headers.len());
        for (name, values) in headers {
            put_str(out, name);
            put_len(out, values.len());
            for v in values {
                put_str(out, v);
            }
        }
    });
    put_opt(out, x.response_body.as_ref(), |out, b: &Bytes| {
        put_bytes(out, b)
    });
    put_opt(out, x.request_body.as_ref(), |out, b: &Bytes| {
        put_bytes(out, b)
    });
    put_opt(out, x.timestamp.as_ref(), put_time);
}

fn decode_http(r: &mut Reader<'_>) -> Result<HttpExchange, DecodeError> {
    Ok(HttpExchange {
        log_id: r.i64("LogID")?,
        request_id: r.string("RequestID")?,
        method: r.string("Method")?,
        path: r.string("Path")?,
        status: r.i64("Status")?,
        duration_ns: r.i64("Duration")?,
        response_headers: r.opt("ResponseHeaders", |r| {
            let n = r.len("ResponseHeaders")?;
            let mut headers = BTreeMap::new();
            for _ in 0..n {
                let name = r.string("ResponseHeaders")?;
                let count = r.len("ResponseHeaders")?;
                let values = (0..count)
                    .map(|_| r.string("ResponseHeaders"))
                    .collect::<Result<Vec<_>, _>>()?;
                headers.insert(name, values);
            }
            Ok(headers)
        })?,
        response_body: r.opt("ResponseBody", |r| {
            r.bytes("ResponseBody").map(Bytes::copy_from_slice)
        })?,
        request_body: r.opt("RequestBody", |r| {
            r.bytes("RequestBody").map(Bytes::copy_from_slice)
        })?,
        timestamp: r.opt("Timestamp", |r| r.time("Timestamp"))?,
    })
}

fn encode_log(rec: &LogRecord, out: &mut Vec<u8>) {
    put_time(out, &rec.timestamp);
    out.push(match rec.timestamp_key {
        "ts" => 1,
        "time" => 2,
        _ => 0,
    });
    put_opt(out, rec.timestamp_raw.as_deref(), put_str);
    put_opt(out, rec.message.as_deref(), put_str);
    out.push(u8::from(rec.message_key == "msg"));
    put_opt(out, rec.level.as_deref(), put_str);
    put_len(out, rec.labels.len());
    for (k, v) in &rec.labels {
        put_str(out, k);
        put_str(out, v);
    }
    put_str(out, rec.fields.as_members());
    put_opt(out, rec.source_type, put_str);
    put_opt(out, rec.source_id.as_deref(), put_str);
}

fn decode_log(r: &mut Reader<'_>) -> Result<LogRecord, DecodeError> {
    let mut rec = LogRecord::new("");
    rec.timestamp = r.time("timestamp")?;
    rec.timestamp_key = match r.u8("timestamp_key")? {
        0 => "timestamp",
        1 => "ts",
        2 => "time",
        n => {
            return Err(DecodeError::new(
                "timestamp_key",
                format!("unknown key {n}"),
            ))
        }
    };
    rec.timestamp_raw = r.opt("timestamp_raw", |r| {
        r.string("timestamp_raw").map(String::into_boxed_str)
    })?;
    rec.message = r.opt("message", |r| r.string("message"))?;
    rec.message_key = match r.u8("message_key")? {
        0 => "message",
        1 => "msg",
        n => return Err(DecodeError::new("message_key", format!("unknown key {n}"))),
    };
    rec.level = r.opt("level", |r| r.string("level"))?;
    let n = r.len("labels")?;
    for _ in 0..n {
        let k = r.string("labels")?;
        let v = r.string("labels")?;
        rec.labels.insert(k, v);
    }
    rec.fields = Fields::from_members(r.string("fields")?)
        .map_err(|e| DecodeError::new("fields", e.to_string()))?;
    rec.source_type = r.opt("source_type", |r| {
        r.string("source_type").and_then(|s| intern(&s))
    })?;
    rec.source_id = r.opt("source_id", |r| r.string("source_id"))?;
    Ok(rec)
}

/// `source_type` is a `&'static str` naming a kind of source; the names come
/// from code, so there are few. Known names map to their constants; another
/// name is leaked once and reused, up to a small cap so damaged input cannot
/// grow memory.
fn intern(name: &str) -> Result<&'static str, DecodeError> {
    const KNOWN: &[&str] = &["http", "file", "tcp", "udp", "syslog", "mesh", "redis"];
    const MAX_OTHERS: usize = 64;
    static OTHERS: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());
    if let Some(k) = KNOWN.iter().find(|k| **k == name) {
        return Ok(k);
    }
    // A poisoned lock still holds a valid list of leaked names.
    let mut others = OTHERS.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(k) = others.iter().find(|k| **k == name) {
        return Ok(k);
    }
    if others.len() >= MAX_OTHERS {
        return Err(DecodeError::new(
            "source_type",
            format!("more than {MAX_OTHERS} distinct source types"),
        ));
    }
    let leaked: &'static str = Box::leak(name.to_owned().into_boxed_str());
    others.push(leaked);
    Ok(leaked)
}

fn put_len(out: &mut Vec<u8>, n: usize) {
    // Events are bounded far below 4 GiB by every source's body limit.
    let n = u32::try_from(n).expect("a stored field is shorter than 4 GiB");
    out.extend_from_slice(&n.to_le_bytes());
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_len(out, b.len());
    out.extend_from_slice(b);
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_bytes(out, s.as_bytes());
}

fn put_opt<T>(out: &mut Vec<u8>, v: Option<T>, put: impl FnOnce(&mut Vec<u8>, T)) {
    match v {
        None => out.push(0),
        Some(v) => {
            out.push(1);
            put(out, v);
        }
    }
}

fn put_time(out: &mut Vec<u8>, t: &OffsetDateTime) {
    out.extend_from_slice(&t.unix_timestamp_nanos().to_le_bytes());
    out.extend_from_slice(&t.offset().whole_seconds().to_le_bytes());
}

/// A cursor that names the field being read in every error.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, field: &'static str, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.rest.len() < n {
            return Err(DecodeError::new(
                field,
                format!("needs {n} bytes, {} left", self.rest.len()),
            ));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], DecodeError> {
        let mut a = [0; N];
        a.copy_from_slice(self.take(field, N)?);
        Ok(a)
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(field)?[0])
    }

    fn i64(&mut self, field: &'static str) -> Result<i64, DecodeError> {
        self.array(field).map(i64::from_le_bytes)
    }

    fn len(&mut self, field: &'static str) -> Result<usize, DecodeError> {
        let n = u32::from_le_bytes(self.array(field)?) as usize;
        // Every counted item takes at least one byte, so a count larger than
        // the input is damage, not a reason to allocate.
        if n > self.rest.len() {
            return Err(DecodeError::new(field, format!("length {n} past the end")));
        }
        Ok(n)
    }

    fn bytes(&mut self, field: &'static str) -> Result<&'a [u8], DecodeError> {
        let n = self.len(field)?;
        self.take(field, n)
    }

    fn string(&mut self, field: &'static str) -> Result<String, DecodeError> {
        let b = self.bytes(field)?;
        std::str::from_utf8(b)
            .map(str::to_owned)
            .map_err(|e| DecodeError::new(field, e.to_string()))
    }

    fn opt<T>(
        &mut self,
        field: &'static str,
        read: impl FnOnce(&mut Self) -> Result<T, DecodeError>,
    ) -> Result<Option<T>, DecodeError> {
        match self.u8(field)? {
            0 => Ok(None),
            1 => read(self).map(Some),
            n => Err(DecodeError::new(field, format!("bad option flag {n}"))),
        }
    }

    fn time(&mut self, field: &'static str) -> Result<OffsetDateTime, DecodeError> {
        let nanos = i128::from_le_bytes(self.array(field)?);
        let offset = i32::from_le_bytes(self.array(field)?);
        let offset = UtcOffset::from_whole_seconds(offset)
            .map_err(|e| DecodeError::new(field, e.to_string()))?;
        OffsetDateTime::from_unix_timestamp_nanos(nanos)
            .map(|t| t.to_offset(offset))
            .map_err(|e| DecodeError::new(field, e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(event: &Event) -> Event {
        let mut buf = Vec::new();
        encode(event, &mut buf);
        decode(&buf).expect("what was encoded decodes")
    }

    fn assert_same(a: &Event, b: &Event) {
        assert_eq!(a.id, b.id);
        assert_eq!(a.payload, b.payload);
        // OffsetDateTime equality ignores the offset; the codec keeps it.
        if let (Payload::Log(x), Payload::Log(y)) = (&a.payload, &b.payload) {
            assert_eq!(x.timestamp.offset(), y.timestamp.offset());
        }
    }

    #[test]
    fn http_exchange_round_trips_with_every_field() {
        let json = r#"{"LogID":7,"RequestID":"req-1","Method":"POST","Path":"/v1/chat","Status":200,"Duration":150000000,"ResponseHeaders":{"Content-Type":["application/json"],"X-Multi":["a","b"]},"ResponseBody":"eyJvayI6dHJ1ZX0=","RequestBody":"AP8=","Timestamp":"2024-05-01T12:00:00.5+02:00"}"#;
        let x: HttpExchange = serde_json::from_str(json).unwrap();
        let e = Event::from(x);
        assert_same(&e, &round_trip(&e));
        let empty = Event::from(HttpExchange::default());
        assert_same(&empty, &round_trip(&empty));
    }

    #[test]
    fn log_record_round_trips_including_what_json_drops() {
        let input = r#"{"ts":"2024-01-02T03:04:05.123456789-05:30","msg":"héllo \"q\"","level":"warn","labels":{"app":"api"},"k\u00e9y":{"a":[1,2]},"n":null}"#;
        let mut rec: LogRecord = serde_json::from_str(input).unwrap();
        rec.source_type = Some("file");
        rec.source_id = Some("/var/log/app.log".into());
        let e = Event::from(rec);
        assert_same(&e, &round_trip(&e));

        let mut odd = LogRecord::new("m");
        odd.source_type = Some("a-custom-source");
        let e = Event::from(odd);
        assert_same(&e, &round_trip(&e));
    }

    #[test]
    fn json_document_round_trips() {
        let doc = JsonDocument::from_value(&serde_json::json!({"a": [1, "x"], "b": null})).unwrap();
        let e = Event::new(Payload::Json(doc));
        assert_same(&e, &round_trip(&e));
    }

    #[test]
    fn damage_is_an_error_not_a_panic() {
        let mut rec = LogRecord::new("hello");
        rec.fields.insert_value("k", &[1, 2]).unwrap();
        let mut buf = Vec::new();
        encode(&Event::from(rec), &mut buf);
        for cut in 0..buf.len() {
            assert!(
                decode(&buf[..cut]).is_err(),
                "a record cut at {cut} is refused"
            );
        }
        let mut bad = buf.clone();
        bad[0] = 9;
        let e = decode(&bad).unwrap_err();
        assert!(e.to_string().contains("`version`"), "{e}");
        // Invalid JSON where fields are stored is refused, naming the field.
        let text = b"\"k\":[1,2]";
        let at = buf
            .windows(text.len())
            .position(|w| w == text)
            .expect("fields text is stored verbatim");
        let mut bad = buf.clone();
        bad[at + 4] = b'}';
        let e = decode(&bad).unwrap_err();
        assert!(e.to_string().contains("`fields`"), "{e}");
    }
}
