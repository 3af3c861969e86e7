//! The result classes of every HTTP sink:
//!
//! - 2xx: delivered.
//! - 408, 429 and 5xx except 501: transient — retry with backoff, waiting at
//!   least as long as `Retry-After` asks.
//! - other 4xx, 501 (and anything else): permanent — no retry; the error
//!   carries the status and the start of the response body.
//! - connection errors and timeouts: transient.

use reqwest::header::{HeaderMap, RETRY_AFTER};
use std::time::Duration;
use switchyard_core::SinkError;
use time::format_description::well_known::Rfc2822;
use time::OffsetDateTime;

/// How much of a response body an error message quotes.
pub const BODY_EXCERPT: usize = 256;

/// Whether a status means "try again later".
pub fn is_transient(status: u16) -> bool {
    matches!(status, 408 | 429) || (500..600).contains(&status) && status != 501
}

/// The error for a non-2xx reply from `service`.
pub fn classify_status(
    service: &str,
    status: u16,
    retry_after: Option<Duration>,
    body: &[u8],
) -> SinkError {
    let excerpt = excerpt(body);
    let message = if excerpt.is_empty() {
        format!("{service} answered HTTP {status}")
    } else {
        format!("{service} answered HTTP {status}: {excerpt}")
    };
    if is_transient(status) {
        SinkError::transient(message).with_retry_after(retry_after)
    } else {
        SinkError::permanent(message)
    }
}

/// The error for a request that got no reply. The URL is left out of the
/// message: a generic endpoint may carry a token in its query.
pub fn classify_transport(service: &str, error: reqwest::Error) -> SinkError {
    let what = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    let mut source = String::new();
    let mut cause: Option<&dyn std::error::Error> = std::error::Error::source(&error);
    while let Some(c) = cause {
        source = c.to_string();
        cause = c.source();
    }
    let detail = if source.is_empty() {
        error.without_url().to_string()
    } else {
        source
    };
    SinkError::transient(format!("{service}: {what}: {detail}"))
}

/// `Retry-After` as seconds or as an HTTP date.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = OffsetDateTime::parse(value, &Rfc2822).ok()?;
    let wait = at - OffsetDateTime::now_utc();
    Some(Duration::try_from(wait).unwrap_or(Duration::ZERO))
}

/// The first bytes of a body, as one line of text.
fn excerpt(body: &[u8]) -> String {
    let head = &body[..body.len().min(BODY_EXCERPT)];
    let text = String::from_utf8_lossy(head);
    let mut line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if body.len() > BODY_EXCERPT {
        line.push('…');
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_core::SinkErrorKind::{Permanent, Transient};

    #[test]
    fn status_classes() {
        for s in [408, 429, 500, 502, 503, 504, 599] {
            assert!(is_transient(s), "{s}");
        }
        for s in [400, 401, 402, 403, 404, 413, 422, 501, 302] {
            assert!(!is_transient(s), "{s}");
        }
    }

    #[test]
    fn errors_carry_status_body_excerpt_and_retry_after() {
        let e = classify_status("lunary", 400, None, b"{\"error\":\n \"bad\"}");
        assert_eq!(e.kind, Permanent);
        assert_eq!(e.message, r#"lunary answered HTTP 400: {"error": "bad"}"#);
        let e = classify_status("x", 429, Some(Duration::from_secs(3)), &[b'a'; 1000]);
        assert_eq!(e.kind, Transient);
        assert_eq!(e.retry_after, Some(Duration::from_secs(3)));
        assert!(e.message.ends_with('…'));
        assert!(e.message.len() < 300);
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(
            RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h), Some(Duration::ZERO), "a past date");
        h.insert(RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&h), None);
    }
}

#[cfg(test)]
mod props {
    //! Error replies are whatever the far side sends: any body gives a
    //! one-line, bounded message, and the class follows the status alone.
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn any_reply_gives_a_bounded_one_line_error(
            status in 100u16..1000,
            body in proptest::collection::vec(any::<u8>(), 0..600),
        ) {
            let e = classify_status("svc", status, None, &body);
            prop_assert_eq!(e.kind == switchyard_core::SinkErrorKind::Transient, is_transient(status));
            prop_assert!(!e.message.contains(['\n', '\r']));
            // Each cut byte may become a 3-byte replacement character.
            prop_assert!(e.message.len() <= 40 + 3 * BODY_EXCERPT);
        }

        #[test]
        fn any_retry_after_value_is_read_or_ignored(value in proptest::collection::vec(any::<u8>(), 0..40)) {
            let mut headers = HeaderMap::new();
            if let Ok(v) = reqwest::header::HeaderValue::from_bytes(&value) {
                headers.insert(RETRY_AFTER, v);
            }
            let _ = retry_after(&headers);
        }
    }
}
