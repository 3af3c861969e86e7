//! Reading an HTTP exchange from its JSON quickly, for the shape proxies
//! write: the known keys, plain strings, integers, `null`, base64 bodies.
//!
//! Through serde, the two bodies' base64 text is first scanned as JSON
//! strings (looking for escapes, a word at a time) and only then decoded;
//! with 2 KB bodies that scan was a fifth of the Redis → file path. Here a
//! body's end is found with a vector search for its closing quote and the
//! base64 decoder checks every byte (the base64 alphabet has no quote,
//! backslash or control character, so text it accepts is a plain JSON
//! string).
//!
//! Anything else — escapes, unknown keys, repeated keys, numbers that are
//! not plain integers, invalid input of any kind — makes the fast reader
//! give up, and [`HttpExchange::from_json`] reads the text with serde
//! instead, which decides (and words any error). So the fast reader only has
//! to be right about what it accepts; the tests check it against serde.

use crate::HttpExchange;
use bytes::Bytes;
use std::collections::BTreeMap;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

impl HttpExchange {
    /// Read an exchange from its JSON text: the same result as
    /// `serde_json::from_str`, faster for the usual shape.
    pub fn from_json(text: &str) -> serde_json::Result<HttpExchange> {
        match Self::from_json_fast(text.as_bytes()) {
            Some(x) => Ok(x),
            None => serde_json::from_str(text),
        }
    }

    /// The fast reading alone, on bytes not yet known to be UTF-8 (its
    /// strings are checked one by one; base64 needs no check): the exchange
    /// `serde_json` would read from the same text, or `None` when the text
    /// is not of the usual shape — then read it with serde.
    pub fn from_json_fast(json: &[u8]) -> Option<HttpExchange> {
        fast(json)
    }
}

/// The exchange, or `None` to leave the text to serde.
fn fast(text: &[u8]) -> Option<HttpExchange> {
    let mut r = Reader { text, pos: 0 };
    let mut x = HttpExchange::default();
    let mut seen = 0u16;
    r.ws();
    r.eat(b'{')?;
    r.ws();
    if r.eat(b'}').is_none() {
        loop {
            // Keys are compared as bytes: no UTF-8 check needed.
            let key = r.plain_bytes()?;
            r.ws();
            r.eat(b':')?;
            r.ws();
            let bit = match key {
                b"LogID" => {
                    x.log_id = r.integer()?;
                    0
                }
                b"RequestID" => {
                    x.request_id = r.plain_string()?.to_owned();
                    1
                }
                b"Method" => {
                    x.method = r.plain_string()?.to_owned();
                    2
                }
                b"Path" => {
                    x.path = r.plain_string()?.to_owned();
                    3
                }
                b"Status" => {
                    x.status = r.integer()?;
                    4
                }
                b"Duration" => {
                    x.duration_ns = r.integer()?;
                    5
                }
                b"ResponseHeaders" => {
                    x.response_headers = r.or_null(Reader::headers)?;
                    6
                }
                b"ResponseBody" => {
                    x.response_body = r.or_null(Reader::base64)?;
                    7
                }
                b"RequestBody" => {
                    x.request_body = r.or_null(Reader::base64)?;
                    8
                }
                b"Timestamp" => {
                    x.timestamp =
                        r.or_null(|r| OffsetDateTime::parse(r.plain_string()?, &Rfc3339).ok())?;
                    9
                }
                _ => return None,
            };
            // serde refuses a repeated key.
            if seen & 1 << bit != 0 {
                return None;
            }
            seen |= 1 << bit;
            r.ws();
            if r.eat(b',').is_some() {
                r.ws();
                continue;
            }
            r.eat(b'}')?;
            break;
        }
    }
    r.ws();
    (r.pos == text.len()).then_some(x)
}

struct Reader<'a> {
    text: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn bytes(&self) -> &'a [u8] {
        self.text
    }

    fn peek(&self) -> Option<u8> {
        self.bytes().get(self.pos).copied()
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.pos += 1;
        }
    }

    fn eat(&mut self, b: u8) -> Option<()> {
        (self.peek()? == b).then(|| self.pos += 1)
    }

    /// `null` (→ `Some(None)`), or what `read` reads.
    fn or_null<T>(&mut self, read: impl FnOnce(&mut Self) -> Option<T>) -> Option<Option<T>> {
        if self.bytes()[self.pos..].starts_with(b"null") {
            self.pos += 4;
            return Some(None);
        }
        read(self).map(Some)
    }

    /// A string without escapes or control characters; its bytes, not yet
    /// checked as UTF-8. One pass: these strings are short (keys, method,
    /// path, headers), where a SIMD search costs more to set up than it saves.
    fn plain_bytes(&mut self) -> Option<&'a [u8]> {
        self.eat(b'"')?;
        let start = self.pos;
        let rest = &self.bytes()[start..];
        // The closing quote, or what this reading leaves to serde: an escape,
        // or a control character (which serde refuses).
        let len = rest
            .iter()
            .position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
        if rest[len] != b'"' {
            return None;
        }
        self.pos = start + len + 1;
        Some(&rest[..len])
    }

    /// A string without escapes or control characters; its text.
    fn plain_string(&mut self) -> Option<&'a str> {
        std::str::from_utf8(self.plain_bytes()?).ok()
    }

    /// A plain integer (no fraction, exponent, leading zero or `-0`) that
    /// fits an `i64`.
    fn integer(&mut self) -> Option<i64> {
        let negative = self.eat(b'-').is_some();
        let start = self.pos;
        let mut n: i64 = 0;
        while let Some(d @ b'0'..=b'9') = self.peek() {
            let d = i64::from(d - b'0');
            n = n
                .checked_mul(10)?
                .checked_add(if negative { -d } else { d })?;
            self.pos += 1;
        }
        let digits = self.pos - start;
        let leading_zero = digits > 1 && self.bytes()[start] == b'0';
        let zero = negative && n == 0;
        if digits == 0 || leading_zero || zero || matches!(self.peek(), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        Some(n)
    }

    /// A base64 body: standard alphabet, padded, canonical — what the serde
    /// reading accepts.
    fn base64(&mut self) -> Option<Bytes> {
        self.eat(b'"')?;
        let start = self.pos;
        let end = start + memchr::memchr(b'"', &self.bytes()[start..])?;
        let body = base64_simd::STANDARD
            .decode_to_vec(&self.bytes()[start..end])
            .ok()?;
        self.pos = end + 1;
        Some(Bytes::from(body))
    }

    /// `{"Name":["value", ...], ...}`.
    fn headers(&mut self) -> Option<BTreeMap<String, Vec<String>>> {
        let mut headers = BTreeMap::new();
        self.eat(b'{')?;
        self.ws();
        if self.eat(b'}').is_some() {
            return Some(headers);
        }
        loop {
            let name = self.plain_string()?;
            self.ws();
            self.eat(b':')?;
            self.ws();
            self.eat(b'[')?;
            self.ws();
            let mut values = Vec::with_capacity(1);
            if self.eat(b']').is_none() {
                loop {
                    values.push(self.plain_string()?.to_owned());
                    self.ws();
                    if self.eat(b',').is_some() {
                        self.ws();
                        continue;
                    }
                    self.eat(b']')?;
                    break;
                }
            }
            // A repeated name replaces the earlier one, as in serde's map.
            headers.insert(name.to_owned(), values);
            self.ws();
            if self.eat(b',').is_some() {
                self.ws();
                continue;
            }
            self.eat(b'}')?;
            return Some(headers);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn fast_str(text: &str) -> Option<HttpExchange> {
        fast(text.as_bytes())
    }

    const GO: &str = r#"{"LogID":7,"RequestID":"req-1","Method":"POST","Path":"/v1/chat/completions","Status":200,"Duration":150000000,"ResponseHeaders":{"Content-Type":["application/json"],"X-Multi":["a","b"]},"ResponseBody":"eyJvayI6dHJ1ZX0=","RequestBody":"eyJtb2RlbCI6ImdwdC00In0=","Timestamp":"2024-05-01T12:00:00.5Z"}"#;

    #[test]
    fn the_usual_shape_is_read_fast_and_as_serde_reads_it() {
        let x = fast_str(GO).expect("fast path");
        assert_eq!(x, serde_json::from_str::<HttpExchange>(GO).unwrap());
        assert_eq!(x.response_body.as_deref(), Some(&b"{\"ok\":true}"[..]));
        let nulls = r#"{"LogID":0,"RequestID":"r","Method":"GET","Path":"/","Status":404,"Duration":1,"ResponseHeaders":null,"ResponseBody":null,"RequestBody":null}"#;
        assert_eq!(fast_str(nulls), serde_json::from_str(nulls).ok());
        assert_eq!(fast_str(" { } "), Some(HttpExchange::default()));
    }

    #[test]
    fn unusual_text_is_left_to_serde() {
        for text in [
            r#"{"Extra":1}"#,
            r#"{"Path":"/a\/b"}"#,
            r#"{"Status":200,"Status":201}"#,
            r#"{"Status":2e2}"#,
            r#"{"Status":-0}"#,
            r#"{"Status":01}"#,
            r#"{"Status":"200"}"#,
            r#"{"RequestBody":"YQ"}"#,
            r#"{"RequestBody":"WQ\u003d\u003d"}"#,
            r#"["r"]"#,
            r#"{"Path":"/"} x"#,
        ] {
            assert_eq!(fast_str(text), None, "{text}");
        }
        assert_eq!(fast(b"{\"Path\":\"\xff\"}"), None, "not UTF-8");
        // ... which reads what is valid and refuses the rest, as before.
        let x = HttpExchange::from_json(r#"{"Path":"/a\/b","Extra":[1]}"#).unwrap();
        assert_eq!(x.path, "/a/b");
        assert!(HttpExchange::from_json(r#"{"Status":"200"}"#).is_err());
    }

    /// Members in any order, with valid and invalid values of every kind,
    /// whitespace anywhere, keys repeated, unknown or escaped.
    fn texts() -> impl Strategy<Value = String> {
        let key = prop_oneof![
            Just("LogID"),
            Just("RequestID"),
            Just("Method"),
            Just("Path"),
            Just("Status"),
            Just("Duration"),
            Just("ResponseHeaders"),
            Just("ResponseBody"),
            Just("RequestBody"),
            Just("Timestamp"),
            Just("Other"),
            Just("Stat\\u0075s"),
        ];
        let value = prop_oneof![
            Just("null"),
            Just("0"),
            Just("-12"),
            Just("9223372036854775807"),
            Just("-9223372036854775808"),
            Just("9223372036854775808"),
            Just("1.0"),
            Just("1e3"),
            Just("012"),
            Just("-"),
            Just("\"\""),
            Just("\"POST\""),
            Just("\"a\\\"b\""),
            Just("\"tab\there\""),
            Just("\"é\""),
            Just("\"eyJvayI6dHJ1ZX0=\""),
            Just("\"YQ==\""),
            Just("\"YR==\""),
            Just("\"YQ\""),
            Just("\"2024-05-01T12:00:00.5Z\""),
            Just("\"2024-05-01T12:00:00+02:00\""),
            Just("{}"),
            Just(r#"{"A":["1"],"B":[],"A":["2","3"]}"#),
            Just(r#"{"A":"1"}"#),
            Just(r#"{"A":[1]}"#),
            Just("[]"),
            Just("true"),
        ];
        let ws = prop_oneof![Just(""), Just(""), Just(" "), Just("\n\t ")];
        let member = (ws.clone(), key, ws.clone(), value, ws.clone())
            .prop_map(|(a, k, b, v, c)| format!("{a}\"{k}\"{b}:{c}{v}{a}"));
        (proptest::collection::vec(member, 0..6), ws.clone(), ws)
            .prop_map(|(members, a, b)| format!("{a}{{{}}}{b}", members.join(",")))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(8000))]

        /// Whatever the fast reader accepts, serde reads the same way; what
        /// serde refuses, the fast reader refuses too.
        #[test]
        fn fast_agrees_with_serde(text in texts()) {
            let serde = serde_json::from_str::<HttpExchange>(&text).ok();
            if let Some(x) = fast_str(&text) {
                prop_assert_eq!(Some(x), serde, "{}", text);
            }
        }
    }

    #[test]
    fn the_generator_reaches_the_fast_path() {
        use proptest::strategy::ValueTree;
        use proptest::test_runner::TestRunner;
        let mut runner = TestRunner::deterministic();
        let strategy = texts();
        let hits = (0..2000)
            .filter(|_| fast_str(&strategy.new_tree(&mut runner).unwrap().current()).is_some())
            .count();
        assert!(hits > 100, "only {hits} of 2000 texts took the fast path");
    }
}
