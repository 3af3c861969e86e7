//! What travels with a call across a hop: its deadline (the gRPC
//! `grpc-timeout` header) and its W3C trace context (`traceparent`).

use std::collections::HashMap;
use std::time::Duration;
use tokio::time::Instant;

/// The key of the trace context, both as a gRPC metadata header and as an
/// `execution_context` entry of a forwarded Serve.
pub const TRACEPARENT: &str = "traceparent";

/// [`TRACEPARENT`] as a ready-made header name.
pub(crate) const TRACEPARENT_HEADER: http::header::HeaderName =
    http::header::HeaderName::from_static(TRACEPARENT);

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
    let value = metadata
        .as_ref()
        .get(crate::wire::GRPC_TIMEOUT)?
        .to_str()
        .ok()?;
    parse_grpc_timeout(value).map(|d| Instant::now() + d)
}

/// The incoming trace context: the `traceparent` header, else the
/// `execution_context` entry. Malformed values are ignored, not forwarded.
pub fn traceparent_of(
    metadata: &tonic::metadata::MetadataMap,
    execution_context: &HashMap<String, String>,
) -> Option<String> {
    metadata
        .as_ref()
        .get(TRACEPARENT_HEADER)
        .and_then(|v| v.to_str().ok())
        .or_else(|| execution_context.get(TRACEPARENT).map(String::as_str))
        .filter(|v| is_valid_traceparent(v))
        .map(str::to_string)
}

/// `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`.
fn is_valid_traceparent(v: &str) -> bool {
    let mut parts = v.split('-');
    let mut hex = |n: usize| {
        parts
            .next()
            .is_some_and(|s| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit()))
    };
    hex(2) && hex(32) && hex(16) && hex(2) && parts.next().is_none()
}

/// The `traceparent` of the next hop: the same trace, a new parent span.
/// Without an incoming trace, a fresh one starts here so the hop's two sides
/// can still be correlated.
pub fn child_traceparent(parent: Option<&str>) -> String {
    // Written by hand: this runs for every forwarded call, and the
    // formatting machinery costs several times the work itself.
    let mut out = String::with_capacity(55);
    match parent {
        Some(p) => {
            let mut parts = p.split('-');
            let version = parts.next().unwrap_or("00");
            let trace = parts.next().unwrap_or_default();
            let _old_span = parts.next();
            let flags = parts.next().unwrap_or("01");
            out.push_str(version);
            out.push('-');
            out.push_str(trace);
            out.push('-');
            push_hex(&mut out, u128::from(fastrand::u64(1..)), 16);
            out.push('-');
            out.push_str(flags);
        }
        None => {
            out.push_str("00-");
            push_hex(&mut out, fastrand::u128(1..), 32);
            out.push('-');
            push_hex(&mut out, u128::from(fastrand::u64(1..)), 16);
            out.push_str("-01");
        }
    }
    out
}

/// The low `digits` nibbles of `value`, as lower-case hex, most significant
/// first.
fn push_hex(out: &mut String, value: u128, digits: u32) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for i in (0..digits).rev() {
        out.push(char::from(HEX[((value >> (4 * i)) & 0xf) as usize]));
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

    #[test]
    fn a_fresh_trace_has_the_w3c_shape() {
        for _ in 0..100 {
            let fresh = child_traceparent(None);
            assert_eq!(fresh.len(), 55, "{fresh}");
            assert!(
                fresh.starts_with("00-") && fresh.ends_with("-01"),
                "{fresh}"
            );
            assert!(is_valid_traceparent(&fresh), "{fresh}");
        }
        let mut out = String::new();
        push_hex(&mut out, 0xab, 4);
        assert_eq!(out, "00ab");
    }

    #[test]
    fn a_traceparent_needs_exactly_four_hex_parts() {
        let ok = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert!(is_valid_traceparent(ok));
        assert!(!is_valid_traceparent(&format!("{ok}-02")));
        assert!(!is_valid_traceparent(&ok[..ok.len() - 3]));
        assert!(!is_valid_traceparent(&ok.replace("4bf9", "4bfz")));
        assert!(!is_valid_traceparent(""));
    }
}
