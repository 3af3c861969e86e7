//! Value types that component configs share, each read from its text form
//! (`30s`, `100MiB`) with an error that says what was expected.

use serde::de::{Deserializer, Error as _};
use serde::Deserialize;
use std::time::Duration;

/// A span of time: `500ms`, `30s`, `1h`, `7d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Span(pub Duration);

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(text.trim())
            .map(Span)
            .map_err(|e| {
                D::Error::custom(format!(
                    "expected a duration such as 500ms, 30s or 1h, not `{text}` ({e})"
                ))
            })
    }
}

/// A size in bytes above 0: `1048576`, `512KiB`, `100MiB`, `1GiB` (also `K`,
/// `M`, `G`, `KB`, `MB`, `GB`: all binary multiples).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// Read the text form.
    pub fn parse(value: &str) -> Result<Self, String> {
        let value = value.trim();
        let digits = value.trim_end_matches(|c: char| c.is_ascii_alphabetic());
        let unit = &value[digits.len()..];
        let scale: u64 = match unit.to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kb" | "kib" => 1 << 10,
            "m" | "mb" | "mib" => 1 << 20,
            "g" | "gb" | "gib" => 1 << 30,
            _ => {
                return Err(format!(
                    "unknown unit `{unit}` in `{value}` (use KiB, MiB or GiB)"
                ))
            }
        };
        digits
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(scale))
            .filter(|&n| n > 0)
            .map(ByteSize)
            .ok_or_else(|| format!("expected a size above 0 such as 100MiB, not `{value}`"))
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        ByteSize::parse(&String::deserialize(d)?).map_err(D::Error::custom)
    }
}

/// A whole number greater than 0 (a count or bound where 0 makes no sense).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Positive(pub usize);

impl<'de> Deserialize<'de> for Positive {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Read as text first so `0`, `-1` and `x` get the same message.
        let text = String::deserialize(d)?;
        text.trim()
            .parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .map(Positive)
            .ok_or_else(|| {
                D::Error::custom(format!(
                    "expected a whole number greater than 0, not `{text}`"
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::lenient::Lenient;
    use serde_json::json;

    #[test]
    fn sizes_take_binary_units() {
        assert_eq!(ByteSize::parse("512KiB"), Ok(ByteSize(512 * 1024)));
        assert_eq!(ByteSize::parse("2M"), Ok(ByteSize(2 << 20)));
        assert_eq!(ByteSize::parse("100"), Ok(ByteSize(100)));
        assert!(ByteSize::parse("0").is_err());
        assert!(ByteSize::parse("10XB")
            .unwrap_err()
            .contains("unknown unit"));
    }

    #[test]
    fn values_read_from_text_and_native_forms() {
        let size = |v| ByteSize::deserialize(Lenient(v)).map(|s| s.0);
        assert_eq!(size(json!(1048576)).unwrap(), 1 << 20);
        assert_eq!(size(json!("1MiB")).unwrap(), 1 << 20);
        let positive = |v| Positive::deserialize(Lenient(v)).map(|p| p.0);
        assert_eq!(positive(json!(5)).unwrap(), 5);
        assert_eq!(positive(json!("5")).unwrap(), 5);
        for bad in [json!(0), json!(-1), json!("x")] {
            let e = positive(bad).unwrap_err().to_string();
            assert!(
                e.starts_with("expected a whole number greater than 0"),
                "{e}"
            );
        }
        let span = Span::deserialize(Lenient(json!("1h"))).unwrap();
        assert_eq!(span.0, Duration::from_secs(3600));
        let e = Span::deserialize(Lenient(json!("soon"))).unwrap_err();
        assert!(e.to_string().contains("not `soon`"), "{e}");
    }
}
