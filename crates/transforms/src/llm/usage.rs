//! Token usage from a response's `usage` object: `prompt_tokens` /
//! `completion_tokens` (chat completions, embeddings) or `input_tokens` /
//! `output_tokens` (newer APIs). A missing half counts as 0; no known key at
//! all means no usage.

use super::payload::TokensUsage;
use serde_json::value::RawValue;
use serde_json::Value;

/// Read the counts from the raw `usage` value.
pub fn tokens(usage: &RawValue) -> Option<TokensUsage> {
    let Ok(Value::Object(map)) = serde_json::from_str::<Value>(usage.get()) else {
        return None;
    };
    let count = |keys: [&str; 2]| {
        keys.iter()
            .find_map(|k| map.get(*k).and_then(Value::as_u64))
    };
    let prompt = count(["prompt_tokens", "input_tokens"]);
    let completion = count(["completion_tokens", "output_tokens"]);
    if prompt.is_none() && completion.is_none() {
        return None;
    }
    Some(TokensUsage {
        completion: completion.unwrap_or(0),
        prompt: prompt.unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
