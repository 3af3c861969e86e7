//! One dead-letter record and its line on disk.
//!
//! A line is `CRC32 JSON\n`: eight hex digits of the CRC-32 of the JSON text,
//! a space, the JSON. A line whose checksum does not match (a torn write at a
//! crash, a bit flip) is skipped when the queue is opened, and reported.
//! The JSON is an entry: `{"put": record}` adds or replaces a record (a retry
//! that failed again re-puts it with more attempts); `{"del": [ids]}` is a
//! tombstone that removes records (replayed or purged).

use crate::delivery::settle::{Failure, FailureKind};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use switchyard_core::{Event, HttpExchange, JsonDocument, LogRecord, Payload};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// What kind of payload the event carried, to rebuild it for replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PayloadKind {
    /// An LLM-proxy HTTP exchange (the spec's Go JSON form).
    Http,
    /// A log record (its flat JSON object).
    Log,
    /// A document a transform produced, kept verbatim.
    Json,
}

/// A failed event, with why and when it failed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DlqRecord {
    /// The record's id in this queue (increasing).
    pub id: u64,
    /// The sink it failed on (its service name).
    pub sink: String,
    /// The class of failure.
    pub error_kind: FailureKind,
    /// The last error's message.
    pub error: String,
    /// Attempts made so far, replays included.
    pub attempts: u32,
    /// When it first failed (RFC 3339).
    pub first_failure: String,
    /// When it last failed (RFC 3339).
    pub last_failure: String,
    /// The event's id in the run that dead-lettered it.
    pub event_id: String,
    /// How to read `event` back.
    pub payload: PayloadKind,
    /// The event as its sink would have written it ([`Event::write_json`]).
    pub event: Box<RawValue>,
}

/// A line's content.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Entry {
    /// Add or replace.
    Put(DlqRecord),
    /// Remove these ids.
    Del(Vec<u64>),
}

/// RFC 3339 text of a time (UTC).
pub fn rfc3339(t: OffsetDateTime) -> String {
    // Formatting a valid UTC time as RFC 3339 only fails for years beyond
    // 9999, which a clock does not report.
    t.format(&Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// Parse RFC 3339 text; `None` if it is not.
pub fn parse_time(text: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text, &Rfc3339).ok()
}

impl DlqRecord {
    /// The record for `event`, which failed as `failure` said.
    pub fn new(id: u64, sink: &str, event: &Event, failure: &Failure) -> serde_json::Result<Self> {
        let mut json = Vec::new();
        event.write_json(&mut json)?;
        let text = String::from_utf8(json).map_err(serde::ser::Error::custom)?;
        let payload = match event.payload {
            Payload::Http(_) => PayloadKind::Http,
            Payload::Log(_) => PayloadKind::Log,
            Payload::Json(_) => PayloadKind::Json,
        };
        Ok(Self {
            id,
            sink: sink.to_string(),
            error_kind: failure.kind,
            error: failure.message.clone(),
            attempts: failure.attempts,
            first_failure: rfc3339(failure.first_failure),
            last_failure: rfc3339(failure.last_failure),
            event_id: event.id.to_string(),
            payload,
            event: RawValue::from_string(text)?,
        })
    }

    /// A fresh event with the same content (and no acknowledgement: its
    /// source already let it go when it was dead-lettered).
    pub fn to_event(&self) -> Result<Event, String> {
        let text = self.event.get();
        let payload = match self.payload {
            PayloadKind::Http => serde_json::from_str::<HttpExchange>(text).map(Payload::Http),
            PayloadKind::Log => serde_json::from_str::<LogRecord>(text).map(Payload::Log),
            PayloadKind::Json => Ok(Payload::Json(JsonDocument::new(self.event.clone()))),
        };
        payload
            .map(Event::new)
            .map_err(|e| format!("record {}: the stored event does not parse: {e}", self.id))
    }
}

/// The line for `entry`, newline included.
pub fn encode(entry: &Entry) -> serde_json::Result<Vec<u8>> {
    let json = serde_json::to_vec(entry)?;
    let mut line = format!("{:08x} ", crc32fast::hash(&json)).into_bytes();
    line.extend_from_slice(&json);
    line.push(b'\n');
    Ok(line)
}

/// Read one line (without its newline); `None` if its checksum or JSON is bad.
pub fn decode(line: &[u8]) -> Option<Entry> {
    let (crc, json) = (line.get(..8)?, line.get(9..)?);
    let crc = u32::from_str_radix(std::str::from_utf8(crc).ok()?, 16).ok()?;
    if line.get(8) != Some(&b' ') || crc32fast::hash(json) != crc {
        return None;
    }
    serde_json::from_slice(json).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure() -> Failure {
        let now = OffsetDateTime::now_utc();
        Failure {
            kind: FailureKind::Permanent,
            message: "http answered HTTP 400: bad".into(),
            attempts: 1,
            first_failure: now,
            last_failure: now,
        }
    }

    #[test]
    fn log_and_json_events_round_trip_through_a_checked_line() {
        let mut log = LogRecord::new("poison");
        log.level = Some("error".into());
        let doc = JsonDocument::from_value(&serde_json::json!({"a": [1, 2]})).unwrap();
        for event in [Event::from(log), Event::new(Payload::Json(doc))] {
            let rec = DlqRecord::new(7, "http", &event, &failure()).unwrap();
            let line = encode(&Entry::Put(rec)).unwrap();
            let Some(Entry::Put(back)) = decode(&line[..line.len() - 1]) else {
                panic!("line did not decode");
            };
            assert_eq!(back.id, 7);
            assert_eq!(back.error_kind, FailureKind::Permanent);
            let (mut again, mut original) = (Vec::new(), Vec::new());
            back.to_event().unwrap().write_json(&mut again).unwrap();
            event.write_json(&mut original).unwrap();
            assert_eq!(again, original, "the rebuilt event writes the same JSON");
        }
    }

    #[test]
    fn a_torn_or_altered_line_is_refused() {
        let rec = DlqRecord::new(1, "http", &LogRecord::new("x").into(), &failure()).unwrap();
        let line = encode(&Entry::Put(rec)).unwrap();
        assert!(decode(&line[..line.len() / 2]).is_none(), "torn");
        let mut flipped = line[..line.len() - 1].to_vec();
        let last = flipped.len() - 2;
        flipped[last] ^= 1;
        assert!(decode(&flipped).is_none(), "altered");
        assert!(decode(b"").is_none());
    }
}
