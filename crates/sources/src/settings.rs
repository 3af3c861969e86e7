//! Pieces every source's typed configuration shares: durations written as
//! people write them (`5s`, `500ms`), and the default bound of a source's
//! queue.

use serde::{Deserialize, Deserializer, Serializer};
use std::time::Duration;

/// The default bound of a source's queue, events (`queue_size`).
pub const DEFAULT_QUEUE_SIZE: usize = 10_000;

/// `queue_size`'s default.
pub fn default_queue_size() -> usize {
    DEFAULT_QUEUE_SIZE
}

/// A duration as `10s`, `500ms`, `1h` (serde `with` module).
pub mod duration {
    use super::*;

    /// Read `5s`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s)
            .map_err(|e| serde::de::Error::custom(format!("`{s}` is not a duration ({e})")))
    }

    /// Write `5s`.
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }
}

/// A duration as `5s`/`500ms`, or a whole number of milliseconds, as the
/// Redis flags take it (serde `with` module).
pub mod millis_or_duration {
    use super::*;

    /// The text of a duration or a number of milliseconds.
    pub fn parse(s: &str) -> Result<Duration, String> {
        if let Ok(ms) = s.parse::<u64>() {
            return Ok(Duration::from_millis(ms));
        }
        humantime::parse_duration(s).map_err(|e| {
            format!("`{s}` is not a duration ({e}; examples: 500ms, 5s, or 5000 for ms)")
        })
    }

    /// Read `5s` or `5000`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Text {
            Millis(u64),
            Text(String),
        }
        match Text::deserialize(d)? {
            Text::Millis(ms) => Ok(Duration::from_millis(ms)),
            Text::Text(s) => parse(&s).map_err(serde::de::Error::custom),
        }
    }

    /// Write `5s`.
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        super::duration::serialize(d, s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Serialize;

    #[derive(Deserialize, Serialize, Debug, PartialEq)]
    struct Both {
        #[serde(with = "duration")]
        plain: Duration,
        #[serde(with = "millis_or_duration")]
        redis: Duration,
    }

    #[test]
    fn durations_read_as_written_and_round_trip() {
        let b: Both =
            serde_json::from_value(serde_json::json!({"plain": "1m", "redis": 250})).unwrap();
        assert_eq!(b.plain, Duration::from_secs(60));
        assert_eq!(b.redis, Duration::from_millis(250));
        let back: Both = serde_json::from_value(serde_json::to_value(&b).unwrap()).unwrap();
        assert_eq!(back, b);
        assert_eq!(
            millis_or_duration::parse("2s").unwrap(),
            Duration::from_secs(2)
        );
        assert!(millis_or_duration::parse("soon").is_err());
        let err = serde_json::from_value::<Both>(serde_json::json!({"plain": "soon", "redis": 1}))
            .unwrap_err();
        assert!(
            err.to_string().contains("`soon` is not a duration"),
            "{err}"
        );
    }
}
