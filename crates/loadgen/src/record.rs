//! The workload: one log record, the same shape for every tool.

/// Append one ~170-byte log record as JSON to `out`; `seq` varies its
/// timestamp, path, duration and sequence number.
pub fn record(seq: usize, out: &mut String) {
    use std::fmt::Write as _;
    let _ = write!(
        out,
        r#"{{"timestamp":"2026-11-22T09:00:00.{:06}Z","level":"info","message":"GET /api/v1/users/{} completed in {}ms","service":"api-gateway","host":"web-01","seq":{seq}}}"#,
        seq % 1_000_000,
        seq % 100_000,
        seq % 997
    );
}
