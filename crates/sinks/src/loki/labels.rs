//! Label names and label sets.
//!
//! Loki indexes streams by their label set, so every distinct set is a new
//! stream with its own index entries and chunks. Two rules follow: names
//! must match `[a-zA-Z_][a-zA-Z0-9_]*` (a real Loki rejects the whole push
//! otherwise), and values must not be unbounded (ids, timestamps, offsets) or
//! the index explodes. Names are sanitized here; keys known to carry
//! unbounded or secret values are refused when the sink is configured, so the
//! mistake shows at start-up rather than as a slow Loki weeks later.

/// Normalized keys (lower case, only letters and digits) refused as labels
/// and as template references: their values are unique per event or per
/// request, so each would create a new stream.
pub const HIGH_CARDINALITY: &[&str] = &[
    "id",
    "uuid",
    "requestid",
    "runid",
    "parentrunid",
    "traceid",
    "spanid",
    "logid",
    "eventid",
    "messageid",
    "sessionid",
    "userid",
    "timestamp",
    "ts",
    "time",
    "offset",
    "fileoffset",
    "seq",
    "sequence",
    "message",
    "msg",
    "line",
    "durationms",
    "duration",
    "latency",
];

/// Fragments of normalized keys whose values are credentials: never labels.
pub const SECRET_LIKE: &[&str] = &[
    "authorization",
    "apikey",
    "token",
    "password",
    "secret",
    "cookie",
];

/// Longest label value sent; Loki's default `max_label_value_length` is 2048
/// and a longer value fails the whole push, so longer values are cut.
pub const MAX_VALUE_BYTES: usize = 2048;

/// `key` lower-cased with everything but letters and digits removed, so
/// `request_id`, `RequestID` and `request-id` compare equal.
fn normalize(key: &str) -> String {
    key.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// Why `key` (a label name or the last part of a reference) may not become
/// a label, if it may not.
pub fn refusal(key: &str) -> Option<&'static str> {
    let n = normalize(key);
    if HIGH_CARDINALITY.contains(&n.as_str()) {
        Some("its values are unique per event (high cardinality); keep it in the line")
    } else if SECRET_LIKE.iter().any(|s| n.contains(s)) {
        Some("it looks like a credential, and labels are visible to every reader")
    } else {
        None
    }
}

/// `name` made into a valid Loki label name: every character outside
/// `[a-zA-Z0-9_]` becomes `_`, and a leading digit gets a `_` before it.
/// `None` when nothing usable is left (an empty name).
pub fn sanitize(name: &str) -> Option<String> {
    let name = name.trim();
    if name.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(name.len() + 1);
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        out.push('_');
    }
    out.extend(name.chars().map(|c| {
        if c.is_ascii_alphanumeric() || c == '_' {
            c
        } else {
            '_'
        }
    }));
    Some(out)
}

/// Whether `name` is a valid label name as Loki checks it.
pub fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `value` cut to at most [`MAX_VALUE_BYTES`], on a character boundary.
pub fn bound_value(mut value: String) -> String {
    if value.len() > MAX_VALUE_BYTES {
        let mut end = MAX_VALUE_BYTES;
        while !value.is_char_boundary(end) {
            end -= 1;
        }
        value.truncate(end);
    }
    value
}

/// The Prometheus text form of a label set, `{app="x", level="info"}`:
/// what `StreamAdapter.labels` carries. `pairs` must be sorted by name (the
/// template keeps them so); values are escaped as Prometheus does.
pub fn prometheus_text(pairs: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(
        2 + pairs
            .iter()
            .map(|(n, v)| n.len() + v.len() + 5)
            .sum::<usize>(),
    );
    out.push('{');
    for (i, (name, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(name);
        out.push_str("=\"");
        for c in value.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_sanitized_into_lokis_syntax() {
        assert_eq!(sanitize("app").as_deref(), Some("app"));
        assert_eq!(sanitize("service.name").as_deref(), Some("service_name"));
        assert_eq!(sanitize("k8s-pod/ns").as_deref(), Some("k8s_pod_ns"));
        assert_eq!(sanitize("1st").as_deref(), Some("_1st"));
        assert_eq!(sanitize("é").as_deref(), Some("_"));
        assert_eq!(sanitize("  "), None);
        for raw in ["service.name", "1st", "a b", "ü", "_x"] {
            assert!(is_valid_name(&sanitize(raw).unwrap()), "{raw}");
        }
        assert!(!is_valid_name("1a") && !is_valid_name("a-b") && !is_valid_name(""));
    }

    #[test]
    fn high_cardinality_and_secret_keys_are_refused() {
        for key in [
            "request_id",
            "RequestID",
            "trace-id",
            "ts",
            "runId",
            "offset",
            "message",
        ] {
            assert!(refusal(key).unwrap().contains("high cardinality"), "{key}");
        }
        for key in [
            "Authorization",
            "api_key",
            "x-api-key",
            "db_password",
            "session_token",
        ] {
            assert!(refusal(key).unwrap().contains("credential"), "{key}");
        }
        for key in ["app", "level", "env", "service", "host", "model", "status"] {
            assert_eq!(refusal(key), None, "{key}");
        }
    }

    #[test]
    fn prometheus_form_escapes_values() {
        assert_eq!(
            prometheus_text(&[("app", "x"), ("level", "info")]),
            r#"{app="x", level="info"}"#
        );
        assert_eq!(
            prometheus_text(&[("q", "a\"b\\c\nd")]),
            r#"{q="a\"b\\c\nd"}"#
        );
    }

    #[test]
    fn long_values_are_cut_on_a_char_boundary() {
        let v = bound_value("é".repeat(MAX_VALUE_BYTES));
        assert!(v.len() <= MAX_VALUE_BYTES && v.len() >= MAX_VALUE_BYTES - 1);
        assert_eq!(bound_value("short".into()), "short");
    }
}
