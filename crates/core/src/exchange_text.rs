//! Writing an HTTP exchange as JSON text, byte for byte what `serde_json`
//! writes for it, without serde's detours.
//!
//! Through serde, each body was first encoded into a new base64 `String`
//! and that string was then scanned byte by byte for characters to escape:
//! with 64-byte bodies that was two thirds of the cost of encoding an event
//! for the Redis publisher. Here the base64 text is appended straight to the
//! output (its alphabet has nothing JSON escapes), integers are written
//! with `itoa`, and the exchange's own strings go through the one JSON
//! string writer ([`crate::json_string`]). The tests compare the result
//! with `serde_json::to_vec`.

use crate::HttpExchange;
use std::collections::BTreeMap;

impl HttpExchange {
    /// Append the exchange's JSON (the spec's Go form, no newline) to `out`:
    /// the same bytes as `serde_json::to_writer(out, self)`.
    pub fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        out.extend_from_slice(b"{\"LogID\":");
        integer(out, self.log_id);
        out.extend_from_slice(b",\"RequestID\":");
        string(out, &self.request_id);
        out.extend_from_slice(b",\"Method\":");
        string(out, &self.method);
        out.extend_from_slice(b",\"Path\":");
        string(out, &self.path);
        out.extend_from_slice(b",\"Status\":");
        integer(out, self.status);
        out.extend_from_slice(b",\"Duration\":");
        integer(out, self.duration_ns);
        out.extend_from_slice(b",\"ResponseHeaders\":");
        match &self.response_headers {
            Some(headers) => self::headers(out, headers),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"ResponseBody\":");
        body(out, self.response_body.as_deref());
        out.extend_from_slice(b",\"RequestBody\":");
        body(out, self.request_body.as_deref());
        if let Some(t) = &self.timestamp {
            // Rare (the proxies leave it to the entry id) and formatted by
            // the same function serde uses: no second implementation.
            out.extend_from_slice(b",\"Timestamp\":");
            let mut ser = serde_json::Serializer::new(&mut *out);
            crate::http_exchange::rfc3339_opt::serialize(&Some(*t), &mut ser)?;
        }
        out.push(b'}');
        Ok(())
    }
}

fn integer(out: &mut Vec<u8>, n: i64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// A JSON string, escaped as serde escapes it.
fn string(out: &mut Vec<u8>, s: &str) {
    crate::json_string::write_str(out, s);
}

fn headers(out: &mut Vec<u8>, headers: &BTreeMap<String, Vec<String>>) {
    out.push(b'{');
    for (i, (name, values)) in headers.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        string(out, name);
        out.extend_from_slice(b":[");
        for (j, value) in values.iter().enumerate() {
            if j > 0 {
                out.push(b',');
            }
            string(out, value);
        }
        out.push(b']');
    }
    out.push(b'}');
}

/// A body as a base64 JSON string (standard alphabet, padded), or `null`.
fn body(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        Some(b) => {
            out.push(b'"');
            base64_simd::STANDARD.encode_append(b, out);
            out.push(b'"');
        }
        None => out.extend_from_slice(b"null"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use proptest::prelude::*;
    use time::OffsetDateTime;

    fn written(x: &HttpExchange) -> Vec<u8> {
        let mut out = b"prefix ".to_vec();
        x.write_json(&mut out).unwrap();
        out.split_off(7)
    }

    #[test]
    fn the_go_fixture_is_written_as_serde_writes_it() {
        const GO: &str = r#"{"LogID":7,"RequestID":"req-1","Method":"POST","Path":"/v1/chat/completions","Status":200,"Duration":150000000,"ResponseHeaders":{"Content-Type":["application/json"],"X-Multi":["a","b"]},"ResponseBody":"eyJvayI6dHJ1ZX0=","RequestBody":"eyJtb2RlbCI6ImdwdC00In0=","Timestamp":"2024-05-01T12:00:00.5Z"}"#;
        let x: HttpExchange = serde_json::from_str(GO).unwrap();
        assert_eq!(String::from_utf8(written(&x)).unwrap(), GO);
        assert_eq!(
            written(&HttpExchange::default()),
            serde_json::to_vec(&HttpExchange::default()).unwrap()
        );
    }

    fn exchanges() -> impl Strategy<Value = HttpExchange> {
        let text = "(\\PC|[\"\\\\\\x00-\\x1f\\x7f]|é|😀){0,12}";
        let headers =
            proptest::collection::btree_map(text, proptest::collection::vec(text, 0..3), 0..3);
        let body = proptest::option::of(proptest::collection::vec(any::<u8>(), 0..80));
        (
            (any::<i64>(), text, text, text),
            (any::<i64>(), any::<i64>()),
            proptest::option::of(headers),
            (body.clone(), body),
            proptest::option::of(-1_000_000_000_000i64..1_000_000_000_000),
        )
            .prop_map(
                |(
                    (log_id, request_id, method, path),
                    (status, duration_ns),
                    headers,
                    (rb, qb),
                    ms,
                )| {
                    HttpExchange {
                        log_id,
                        request_id,
                        method,
                        path,
                        status,
                        duration_ns,
                        response_headers: headers,
                        response_body: rb.map(Bytes::from),
                        request_body: qb.map(Bytes::from),
                        timestamp: ms.map(|ms| {
                            OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
                                .unwrap()
                        }),
                    }
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        /// Any exchange: escapes, non-ASCII text, empty and missing parts,
        /// every body length modulo 3, negative numbers, times with millis.
        #[test]
        fn any_exchange_is_written_as_serde_writes_it(x in exchanges()) {
            prop_assert_eq!(written(&x), serde_json::to_vec(&x).unwrap());
        }
    }
}
