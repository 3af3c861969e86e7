//! Token usage from a response's `usage` object: `prompt_tokens` /
//! `completion_tokens` (chat completions, embeddings) or `input_tokens` /
//! `output_tokens` (newer APIs). A missing half counts as 0; no known key at
//! all means no usage.

use super::payload::TokensUsage;
use super::scan::Scanner;
use serde_json::value::RawValue;
use serde_json::Value;

/// Read the counts from the raw `usage` value.
pub fn tokens(usage: &RawValue) -> Option<TokensUsage> {
    tokens_of(usage.get())
}

/// The same from JSON text; text that is not JSON has no counts.
pub(crate) fn tokens_of(usage: &str) -> Option<TokensUsage> {
    let counts = counts_fast(usage).or_else(|| counts_value(usage))?;
    // The first name of each pair that holds a count wins.
    let prompt = counts[0].or(counts[1]);
    let completion = counts[2].or(counts[3]);
    if prompt.is_none() && completion.is_none() {
        return None;
    }
    Some(TokensUsage {
        completion: completion.unwrap_or(0),
        prompt: prompt.unwrap_or(0),
    })
}

/// The counts' names, in the order of the arrays below.
const NAMES: [&str; 4] = [
    "prompt_tokens",
    "input_tokens",
    "completion_tokens",
    "output_tokens",
];

/// Counts by name, read as a `Value` reads them: the last of repeated keys
/// wins, and only non-negative integers that fit a `u64` count.
fn counts_value(usage: &str) -> Option<[Option<u64>; 4]> {
    let Ok(Value::Object(map)) = serde_json::from_str::<Value>(usage) else {
        return None;
    };
    Some(NAMES.map(|k| map.get(k).and_then(Value::as_u64)))
}

/// The same, walked; `None` leaves the decision to [`counts_value`] (escaped
/// keys or strings, which a `Value` may refuse; deep nesting; not JSON).
fn counts_fast(usage: &str) -> Option<[Option<u64>; 4]> {
    let mut s = Scanner::new(usage);
    s.ws();
    let mut counts = [None; 4];
    s.object(|s, key| {
        let value = s.value()?;
        if let Some(i) = NAMES.iter().position(|n| *n == key) {
            counts[i] = as_u64(value);
        }
        Some(())
    })?;
    (!s.escapes && s.at_end()).then_some(counts)
}

/// `Value::as_u64` of a JSON value's text: digits only (a sign, fraction or
/// exponent makes serde read a float or a negative number), within `u64`.
fn as_u64(json: &str) -> Option<u64> {
    if json.bytes().all(|b| b.is_ascii_digit()) {
        json.parse().ok()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn t(json: &str) -> Option<TokensUsage> {
        tokens(&RawValue::from_string(json.into()).unwrap())
    }

    #[test]
    fn both_naming_schemes_and_partial_usage() {
        let u = |c, p| {
            Some(TokensUsage {
                completion: c,
                prompt: p,
            })
        };
        assert_eq!(t(r#"{"prompt_tokens":9,"completion_tokens":12}"#), u(12, 9));
        assert_eq!(t(r#"{"input_tokens":5,"output_tokens":7}"#), u(7, 5));
        assert_eq!(t(r#"{"prompt_tokens":8,"total_tokens":8}"#), u(0, 8));
        assert_eq!(t(r#"{"total_tokens":8}"#), None);
        assert_eq!(t(r#"[1]"#), None);
        assert_eq!(t(r#"{"prompt_tokens":-1}"#), None);
    }

    fn usages() -> impl Strategy<Value = String> {
        let key = prop_oneof![
            Just("prompt_tokens"),
            Just("input_tokens"),
            Just("completion_tokens"),
            Just("output_tokens"),
            Just("total_tokens"),
            Just("prompt\\u005ftokens"),
        ];
        let value = prop_oneof![
            Just("0"),
            Just("12"),
            Just("-0"),
            Just("-3"),
            Just("1.0"),
            Just("1e2"),
            Just("18446744073709551615"),
            Just("18446744073709551616"),
            Just("\"5\""),
            Just("\"\\ud800\""),
            Just("null"),
            Just("{\"cached_tokens\":1}"),
        ];
        let member = (key, value).prop_map(|(k, v)| format!("\"{k}\":{v}"));
        (
            proptest::collection::vec(member, 0..5),
            prop::bool::weighted(0.9),
        )
            .prop_map(|(m, object)| {
                if object {
                    format!("{{{}}}", m.join(","))
                } else {
                    "[1]".into()
                }
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        /// The walk counts what a `Value` counts.
        #[test]
        fn walked_counts_are_value_counts(usage in usages()) {
            if let Some(fast) = counts_fast(&usage) {
                prop_assert_eq!(Some(fast), counts_value(&usage), "{}", usage);
            }
        }
    }
}
