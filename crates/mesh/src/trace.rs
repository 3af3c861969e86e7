//! What travels with a call across a hop: its deadline (the gRPC
//! `grpc-timeout` header) and its W3C trace context (`traceparent`).

use std::collections::HashMap;
use std::time::Duration;
use tokio::time::Instant;

/// The key of the trace context, both as a gRPC metadata header and as an
/// `execution_context` entry of a forwarded Serve.
pub const TRACEPARENT: &str = "traceparent";

/// A call as a handler sees it.
#[derive(Debug, Clone, Default)]
pub struct CallContext {
    /// The namespace the call was made in.
    pub namespace: String,
    /// `<Service>.<Method>`.
    pub method: String,
    /// When the caller stops waiting, if it said.
    pub deadline: Option<Instant>,
    /// The W3C `traceparent` of this call, if the caller sent one.
    pub traceparent: Option<String>,
    /// The request's `execution_context` (Serve) — free-form caller data.
    pub execution_context: HashMap<String, String>,
}

impl CallContext {
    /// Time left before the deadline (`None`: no deadline).
    pub fn remaining(&self) -> Option<Duration> {
        self.deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
    }
}

/// Parse a `grpc-timeout` header value: digits then one unit letter
/// (`H`, `M`, `S`, `m`, `u`, `n`).
pub fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    if value.len() < 2 || value.len() > 9 {
        return None;
    }
    let (digits, unit) = value.split_at(value.len() - 1);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// The deadline a request's metadata carries, measured from now.
pub fn deadline_of(metadata: &tonic::metadata::MetadataMap) -> Option<Instant> {
    let value = metadata.get("grpc-timeout")?.to_str().ok()?;
    parse_grpc_timeout(value).map(|d| Instant::now() + d)
}

/// The incoming trace context: the `traceparent` header, else the
/// `execution_context` entry. Malformed values are ignored, not forwarded.
pub fn traceparent_of(
    metadata: &tonic::metadata::MetadataMap,
    execution_context: &HashMap<String, String>,
) -> Option<String> {
    metadata
        .get(TRACEPARENT)
        .and_then(|v| v.to_str().ok())
        .or_else(|| execution_context.get(TRACEPARENT).map(String::as_str))
        .filter(|v| is_valid_traceparent(v))
        .map(str::to_string)
}

/// `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`.
fn is_valid_traceparent(v: &str) -> bool {
    let parts: Vec<&str> = v.split('-').collect();
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    parts.len() == 4
        && hex(parts[0], 2)
        && hex(parts[1], 32)
        && hex(parts[2], 16)
        && hex(parts[3], 2)
}

/// The `traceparent` of the next hop: the same trace, a new parent span.
/// Without an incoming trace, a fresh one starts here so the hop's two sides
/// can still be correlated.
pub fn child_traceparent(parent: Option<&str>) -> String {
    let span = format!("{:016x}", fastrand::u64(1..));
    match parent {
        Some(p) => {
            let mut parts = p.split('-');
            let version = parts.next().unwrap_or("00");
            let trace = parts.next().unwrap_or_default();
            let _old_span = parts.next();
            let flags = parts.next().unwrap_or("01");
            format!("{version}-{trace}-{span}-{flags}")
        }
        None => format!("00-{:032x}-{span}-01", fastrand::u128(1..)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeout_units() {
        assert_eq!(parse_grpc_timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse_grpc_timeout("3S"), Some(Duration::from_secs(3)));
        assert_eq!(parse_grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_grpc_timeout("10x"), None);
        assert_eq!(parse_grpc_timeout("m"), None);
    }

    #[test]
    fn child_keeps_the_trace_and_changes_the_span() {
        let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let child = child_traceparent(Some(parent));
        assert!(is_valid_traceparent(&child));
        assert!(child.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
        assert!(!child.contains("00f067aa0ba902b7"));
        assert!(is_valid_traceparent(&child_traceparent(None)));
        assert!(!is_valid_traceparent("garbage"));
    }
}
