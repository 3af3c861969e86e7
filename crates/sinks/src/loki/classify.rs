//! What Loki's answer to a push means for its entries.
//!
//! The classes are the shared ones of every HTTP sink (2xx delivered; 408,
//! 429 and 5xx but 501 transient, honouring `Retry-After`; other 4xx and 501
//! permanent). Loki's `400` deserves a closer reading: it is how Loki says
//! "entry out of order" or "entry too far behind" (too old), which no retry
//! can fix — retrying would loop forever, so those entries go to the
//! dead-letter queue at once. The message says which case it was, so the
//! dead-letter entry tells an operator whether to fix clocks, labels or
//! limits.

use crate::http_common::classify_status;
use std::time::Duration;
use switchyard_core::SinkError;

/// A known cause behind a Loki rejection, recognized in its reply text.
fn cause(status: u16, body: &str) -> Option<&'static str> {
    let b = body.to_ascii_lowercase();
    let has = |s: &str| b.contains(s);
    match status {
        400 if has("out of order") || has("out-of-order") => {
            Some("entries out of order for their stream")
        }
        400 if has("too far behind") || has("too old") || has("greater_than_max_sample_age") => {
            Some("entries older than Loki accepts")
        }
        400 if has("too far in the future") || has("too_far_in_future") => {
            Some("entries too far in the future")
        }
        400 if has("line too long") || has("line_too_long") => Some("a line over Loki's limit"),
        400 if has("label") => Some("a label Loki refuses (name, value or count)"),
        401 | 403 => Some("credentials or tenant refused; check auth.* / api-key and tenant"),
        413 => Some("push too large; lower batch-max-bytes"),
        429 if has("stream") => Some("per-stream rate limit"),
        429 => Some("ingestion rate limit"),
        _ => None,
    }
}

/// The error for a non-2xx answer to a push.
pub fn classify(status: u16, retry_after: Option<Duration>, body: &[u8]) -> SinkError {
    let mut error = classify_status("loki", status, retry_after, body);
    if let Some(c) = cause(status, &String::from_utf8_lossy(body)) {
        error.message = format!("{} ({c})", error.message);
    }
    error
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_core::SinkErrorKind::{Permanent, Transient};

    #[test]
    fn out_of_order_and_too_old_are_permanent_and_named() {
        let body = b"entry with timestamp 2024-05-01 12:00:00 +0000 UTC ignored, reason: 'entry out of order' for stream: {app=\"a\"},\ntotal ignored: 1 out of 2";
        let e = classify(400, None, body);
        assert_eq!(e.kind, Permanent);
        assert!(
            e.message.starts_with("loki answered HTTP 400: entry with"),
            "{e}"
        );
        assert!(
            e.message
                .ends_with("(entries out of order for their stream)"),
            "{e}"
        );
        let e = classify(
            400,
            None,
            b"entry for stream '{app=\"a\"}' has timestamp too old: 2020-01-01",
        );
        assert_eq!(e.kind, Permanent);
        assert!(e.message.contains("older than Loki accepts"), "{e}");
        let e = classify(
            400,
            None,
            b"error at least one label pair is required per stream",
        );
        assert!(e.message.contains("a label Loki refuses"), "{e}");
    }

    #[test]
    fn rate_limits_and_server_errors_are_transient_with_retry_after() {
        let e = classify(
            429,
            Some(Duration::from_secs(4)),
            b"Ingestion rate limit exceeded",
        );
        assert_eq!(e.kind, Transient);
        assert_eq!(e.retry_after, Some(Duration::from_secs(4)));
        assert!(e.message.contains("ingestion rate limit"), "{e}");
        for s in [500, 502, 503, 504, 408] {
            assert_eq!(classify(s, None, b"").kind, Transient, "{s}");
        }
        for s in [401, 403, 404, 413, 501] {
            assert_eq!(classify(s, None, b"").kind, Permanent, "{s}");
        }
        assert!(classify(401, None, b"no org id").message.contains("tenant"));
    }
}

#[cfg(test)]
mod props {
    //! Loki's reply text is read for causes: any body, any status, no panic,
    //! and a cause never changes the class the status gives.
    use super::*;
    use crate::http_common::classify::is_transient;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn any_reply_is_classified_by_its_status(
            status in prop_oneof![Just(400u16), Just(429), 100u16..1000],
            body in proptest::collection::vec(any::<u8>(), 0..400),
            known in prop::sample::select(vec!["", "entry out of order", "too old", "İLABEL", "stream"]),
        ) {
            let mut body = body;
            body.extend_from_slice(known.as_bytes());
            let e = classify(status, None, &body);
            prop_assert_eq!(e.kind == switchyard_core::SinkErrorKind::Transient, is_transient(status));
            prop_assert!(e.message.starts_with("loki answered HTTP"));
        }
    }
}
