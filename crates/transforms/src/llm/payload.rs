//! The payload shape: the original dispatcher's `EventPayload`, keys in its
//! order. It is the contract between transformers and the LLM sinks: the
//! transformer writes it as JSON, the Lunary and Helicone sinks read it back,
//! so a user's own [`Transformer`](super::Transformer) only has to fill it.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
use std::collections::BTreeMap;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::OffsetDateTime;

/// One LLM call, as backends read it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LlmPayload {
    /// Run type; `llm` for a model call.
    #[serde(rename = "type")]
    pub kind: String,
    /// `end` for a completed call, `error` when the response status is ≥ 400.
    pub event: String,
    /// Deterministic run id (UUIDv5 of the request id).
    #[serde(rename = "runId")]
    pub run_id: String,
    /// Parent run, when the call is part of a larger trace.
    #[serde(
        rename = "parentRunId",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub parent_run_id: Option<String>,
    /// The model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// When the call ended (the response finished).
    #[serde(with = "rfc3339_millis")]
    pub timestamp: OffsetDateTime,
    /// The request JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Box<RawValue>>,
    /// The response JSON (a merged completion for streamed responses).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Box<RawValue>>,
    /// The request's `user`.
    #[serde(rename = "userId", default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Token counts from the response's `usage`.
    #[serde(
        rename = "tokensUsage",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub tokens_usage: Option<TokensUsage>,
    /// User properties.
    #[serde(rename = "userProps", default, skip_serializing_if = "Option::is_none")]
    pub user_props: Option<Box<RawValue>>,
    /// Extra data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra: Option<Box<RawValue>>,
    /// Facts about the HTTP exchange.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata>,
    /// Tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    /// The exchange's `LogID` (always present, 0 when unused).
    #[serde(default)]
    pub log_id: i64,
}

impl LlmPayload {
    /// When the call started: end time minus the duration.
    pub fn start_time(&self) -> OffsetDateTime {
        let ms = self.metadata.as_ref().map_or(0, |m| m.duration_ms.max(0));
        self.timestamp
            .checked_sub(time::Duration::milliseconds(ms))
            .unwrap_or(self.timestamp)
    }
}

/// Token counts, in the key order backends expect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokensUsage {
    /// Output tokens.
    pub completion: u64,
    /// Input tokens.
    pub prompt: u64,
}

/// Facts about the HTTP exchange behind a payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    /// HTTP method.
    pub method: String,
    /// URL path.
    pub path: String,
    /// Response status.
    pub status: i64,
    /// Whole request duration, milliseconds.
    pub duration_ms: i64,
    /// The request id the run id derives from.
    pub request_id: String,
    /// Response headers (verbose mode only), secrets redacted; one value as a
    /// string, several as an array.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_headers: Option<BTreeMap<String, HeaderValues>>,
}

/// The value(s) of one header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum HeaderValues {
    /// Sent once.
    One(String),
    /// Sent several times.
    Many(Vec<String>),
}

impl HeaderValues {
    /// All values joined with `, ` (how HTTP folds repeated headers).
    pub fn joined(&self) -> String {
        match self {
            HeaderValues::One(v) => v.clone(),
            HeaderValues::Many(vs) => vs.join(", "),
        }
    }
}

/// RFC 3339 in UTC with exactly three fractional digits: what JavaScript
/// backends parse without loss, and what sorts correctly as text.
pub mod rfc3339_millis {
    use super::*;

    /// Format `t` as `2024-05-01T12:00:00.500Z`.
    pub fn format(t: OffsetDateTime) -> String {
        let mut out = String::with_capacity(24);
        format_into(t, &mut out);
        out
    }

    /// [`format`], appended to `out` (no string of its own per event).
    pub fn format_into(t: OffsetDateTime, out: &mut String) {
        let t = t.to_offset(time::UtcOffset::UTC);
        let year = t.year();
        if !(0..=9999).contains(&year) {
            out.push_str(&format_described(t));
            return;
        }
        // Every event has a timestamp: written digit by digit, this is a
        // tenth of the cost of the general formatter (same text; a test
        // compares the two).
        let mut digits = |n: u32, width: u32, then: char| {
            for place in (0..width).rev() {
                out.push(char::from(b'0' + (n / 10u32.pow(place) % 10) as u8));
            }
            out.push(then);
        };
        digits(year as u32, 4, '-');
        digits(u8::from(t.month()).into(), 2, '-');
        digits(t.day().into(), 2, 'T');
        digits(t.hour().into(), 2, ':');
        digits(t.minute().into(), 2, ':');
        digits(t.second().into(), 2, '.');
        digits(t.millisecond().into(), 3, 'Z');
    }

    /// The general formatter, for the years the fast one does not handle.
    pub(crate) fn format_described(t: OffsetDateTime) -> String {
        let f = format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
        );
        t.to_offset(time::UtcOffset::UTC)
            .format(&f)
            // Only years outside 0..=9999 fail to format; clamp them rather
            // than fail a whole event over a nonsense timestamp.
            .unwrap_or_else(|_| "1970-01-01T00:00:00.000Z".into())
    }

    /// Serde: write.
    pub fn serialize<S: Serializer>(t: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(*t))
    }

    /// Serde: read any RFC 3339 time.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<OffsetDateTime, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(d)?;
        OffsetDateTime::parse(&text, &Rfc3339).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::rfc3339_millis::{format, format_described};
    use proptest::prelude::*;
    use time::OffsetDateTime;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        /// The digit-by-digit format is the described format, for any time
        /// and offset (including the years it leaves to the general one).
        #[test]
        fn fast_format_is_the_described_format(
            nanos in -70_000_000_000_000_000_000i128..250_000_000_000_000_000_000i128,
            offset in -86_399i32..86_400,
        ) {
            let t = OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap()
                .to_offset(time::UtcOffset::from_whole_seconds(offset).unwrap());
            prop_assert_eq!(format(t), format_described(t));
        }
    }

    #[test]
    fn milliseconds_are_cut_not_rounded() {
        let t = OffsetDateTime::from_unix_timestamp_nanos(1_714_564_800_999_999_999).unwrap();
        assert_eq!(format(t), "2024-05-01T12:00:00.999Z");
    }
}
