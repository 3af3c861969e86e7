//! Lunary's own failure answers, refined from the shared HTTP classes so the
//! log line says what to fix.
//!
//! - `401 Invalid access token`: the key is not a Lunary key (they are UUIDs).
//! - `401 Invalid API key`: a well-formed key Lunary does not know.
//! - `401 This route requires a private API key`: a public key, or a request
//!   to a route other than ingestion (often a base URL without its path).
//! - `402`: no key reached Lunary.
//! - `500 Missing events payload.`: the body was not `{"events": [...]}`. A
//!   server error by its status, but retrying the same body cannot help, so
//!   it is permanent.
//!
//! Every other status keeps the shared class ([`classify_status`]).

use crate::http_common::classify::classify_status;
use std::time::Duration;
use switchyard_core::SinkError;

const KEY_HINT: &str = "check --api-key / LLM_PROXY_API_KEY (or `api-key` in the sink's options)";

/// The error for a non-2xx reply from Lunary.
pub fn classify(status: u16, retry_after: Option<Duration>, body: &[u8]) -> SinkError {
    let shared = classify_status("lunary", status, retry_after, body);
    let text = String::from_utf8_lossy(body).to_ascii_lowercase();
    let fix = match status {
        401 if text.contains("invalid access token") => format!(
            "the API key is not a Lunary project key (Lunary keys are UUIDs) — {KEY_HINT}"
        ),
        401 if text.contains("invalid api key") => format!(
            "Lunary does not know this API key — use the project's private key from Lunary's settings; {KEY_HINT}"
        ),
        401 if text.contains("requires a private api key") => format!(
            "this route needs the project's private (secret) key, at the ingestion URL (`…/v1/runs/ingest`, or the base URL alone) — {KEY_HINT}, and --endpoint"
        ),
        401 | 403 => format!("Lunary refused the API key — {KEY_HINT}"),
        402 => format!("no API key reached Lunary — {KEY_HINT}"),
        500 if text.contains("missing events payload") => {
            "the request was not Lunary's `{\"events\": [...]}` ingestion body; --endpoint is probably not Lunary's ingestion API — check it".to_string()
        }
        _ => return shared,
    };
    SinkError::permanent(format!("{}: {fix}", shared.message))
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_core::SinkErrorKind::{Permanent, Transient};

    #[test]
    fn lunarys_answers_are_permanent_and_say_what_to_fix() {
        let table: &[(u16, &str, &str)] = &[
            (401, r#"{"error":"Invalid access token"}"#, "UUID"),
            (401, "Invalid API key", "private key"),
            (401, "This route requires a private API key", "--endpoint"),
            (401, "nope", "refused the API key"),
            (402, "", "no API key reached Lunary"),
            (500, "Missing events payload.", "not Lunary's"),
        ];
        for (status, body, hint) in table {
            let e = classify(*status, None, body.as_bytes());
            assert_eq!(e.kind, Permanent, "{status} {body}");
            assert!(e.message.contains(hint), "{status} {body}: {}", e.message);
            assert!(
                e.message.contains(&format!("HTTP {status}")),
                "{}",
                e.message
            );
        }
        assert_eq!(classify(500, None, b"oops").kind, Transient);
        assert_eq!(classify(429, None, b"").kind, Transient);
        assert_eq!(classify(400, None, b"bad").kind, Permanent);
    }

    proptest::proptest! {
        /// Any status and body bytes (invalid UTF-8 included): one line,
        /// and never retried where the shared classes would not retry.
        #[test]
        fn any_reply_gives_one_line_and_no_extra_retries(
            status in 100u16..1000,
            body in proptest::collection::vec(proptest::num::u8::ANY, 0..400),
        ) {
            let e = classify(status, None, &body);
            proptest::prop_assert!(!e.message.contains('\n'));
            if !crate::http_common::classify::is_transient(status) {
                proptest::prop_assert_eq!(e.kind, Permanent);
            }
        }
    }
}
