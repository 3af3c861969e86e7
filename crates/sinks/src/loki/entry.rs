//! One event as a Loki entry: a timestamp and a line.
//!
//! The line of a log record is, by default, the record's flat JSON object,
//! the same text the file sink writes: Loki indexes only labels, so keeping
//! every field in the line is what lets a query filter on it (`| json`).
//! `line=message` sends only the message, for plain-text logs. LLM payloads
//! and HTTP exchanges are always their JSON. The timestamp is the event's
//! own time (the record's, the payload's `timestamp`), or now if it has none.

use super::config::LineFormat;
use serde::Deserialize;
use switchyard_core::{Event, Payload, SinkError};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// An entry before it is placed in its stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Position of its event in the batch.
    pub index: usize,
    /// Unix nanoseconds.
    pub ts: i128,
    /// The log line.
    pub line: String,
}

/// The entry of `event` (at `index` in its batch), or a permanent error when
/// it cannot be one.
pub fn entry(
    index: usize,
    event: &Event,
    format: LineFormat,
    max_line_bytes: usize,
) -> Result<Entry, SinkError> {
    let (ts, line) = match &event.payload {
        Payload::Log(r) => {
            let line = match (&r.message, format) {
                (Some(m), LineFormat::Message) => m.clone(),
                _ => json_line(event)?,
            };
            (r.timestamp.unix_timestamp_nanos(), line)
        }
        Payload::Json(doc) => (json_timestamp(doc.get()), doc.get().to_string()),
        Payload::Http(x) => (
            x.timestamp
                .unwrap_or_else(OffsetDateTime::now_utc)
                .unix_timestamp_nanos(),
            json_line(event)?,
        ),
    };
    if line.len() > max_line_bytes {
        return Err(SinkError::permanent(format!(
            "loki: event {} has a line of {} bytes, over `max-line-bytes` ({max_line_bytes})",
            event.id,
            line.len()
        )));
    }
    Ok(Entry { index, ts, line })
}

fn json_line(event: &Event) -> Result<String, SinkError> {
    let mut out = Vec::with_capacity(256);
    event.write_json(&mut out).map_err(|e| {
        SinkError::permanent(format!("loki: cannot encode event {}: {e}", event.id))
    })?;
    // `write_json` writes serde_json output or JSON text that was valid UTF-8
    // when it came in.
    String::from_utf8(out)
        .map_err(|e| SinkError::permanent(format!("loki: event {} is not UTF-8: {e}", event.id)))
}

/// The `timestamp` (RFC 3339) of a JSON document, or now.
fn json_timestamp(doc: &str) -> i128 {
    #[derive(Deserialize)]
    struct Stamp<'a> {
        #[serde(borrow, default)]
        timestamp: Option<&'a str>,
    }
    serde_json::from_str::<Stamp>(doc)
        .ok()
        .and_then(|s| s.timestamp)
        .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
        .unwrap_or_else(OffsetDateTime::now_utc)
        .unix_timestamp_nanos()
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_core::{JsonDocument, LogRecord};

    fn record(json: &str) -> Event {
        Event::from(serde_json::from_str::<LogRecord>(json).unwrap())
    }

    #[test]
    fn records_give_their_json_or_their_message() {
        let e = record(r#"{"ts":1700000000123456789,"msg":"hi","level":"info","n":1}"#);
        let j = entry(3, &e, LineFormat::Json, 1000).unwrap();
        assert_eq!(j.index, 3);
        assert_eq!(j.ts, 1_700_000_000_123_456_789);
        assert_eq!(
            j.line,
            r#"{"ts":1700000000123456789,"msg":"hi","level":"info","n":1}"#
        );
        let m = entry(0, &e, LineFormat::Message, 1000).unwrap();
        assert_eq!(m.line, "hi");
        let no_msg = record(r#"{"ts":1,"n":1}"#);
        assert_eq!(
            entry(0, &no_msg, LineFormat::Message, 1000).unwrap().line,
            r#"{"ts":1,"n":1}"#
        );
    }

    #[test]
    fn payloads_use_their_timestamp() {
        let doc = r#"{"type":"llm","timestamp":"2024-05-01T12:00:05.500Z","name":"m"}"#;
        let e = Event::new(Payload::Json(JsonDocument::new(
            serde_json::from_str(doc).unwrap(),
        )));
        let got = entry(0, &e, LineFormat::Json, 1000).unwrap();
        assert_eq!(got.ts, 1_714_564_805_500_000_000);
        assert_eq!(got.line, doc);
    }

    #[test]
    fn lines_over_the_bound_fail_permanently() {
        let e = record(r#"{"msg":"0123456789"}"#);
        let err = entry(0, &e, LineFormat::Message, 5).unwrap_err();
        assert_eq!(err.kind, switchyard_core::SinkErrorKind::Permanent);
        assert!(err.message.contains("max-line-bytes"), "{err}");
    }
}
