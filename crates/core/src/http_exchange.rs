//! The HTTP exchange an LLM proxy publishes, in the original Go JSON encoding:
//! Go field names, base64 bodies, nanosecond `Duration`, `http.Header` maps.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::Bytes;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// One proxied request and its response. Unknown keys are ignored on read;
/// every key is optional.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct HttpExchange {
    /// Monotonic id from the Redis LIST log; 0 when unused.
    #[serde(rename = "LogID")]
    pub log_id: i64,
    /// Request id.
    #[serde(rename = "RequestID")]
    pub request_id: String,
    /// HTTP method.
    #[serde(rename = "Method")]
    pub method: String,
    /// URL path without query.
    #[serde(rename = "Path")]
    pub path: String,
    /// Response status.
    #[serde(rename = "Status")]
    pub status: i64,
    /// Whole request duration in nanoseconds.
    #[serde(rename = "Duration")]
    pub duration_ns: i64,
    /// Response headers, name → values (sorted by name, as Go encodes maps).
    #[serde(rename = "ResponseHeaders")]
    pub response_headers: Option<BTreeMap<String, Vec<String>>>,
    /// Raw response bytes.
    #[serde(rename = "ResponseBody", with = "base64_bytes")]
    pub response_body: Option<Bytes>,
    /// Raw request bytes.
    #[serde(rename = "RequestBody", with = "base64_bytes")]
    pub request_body: Option<Bytes>,
    /// When the response finished (Switchyard's publishers add it).
    #[serde(
        rename = "Timestamp",
        with = "rfc3339_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub timestamp: Option<OffsetDateTime>,
}

mod base64_bytes {
    use super::*;

    pub fn serialize<S: Serializer>(v: &Option<Bytes>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(b) => s.serialize_str(&STANDARD.encode(b)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Bytes>, D::Error> {
        let text: Option<std::borrow::Cow<'de, str>> = Option::deserialize(d)?;
        // Decoding the two bodies is a large share of reading an exchange
        // (about 8 % of the Redis → file path's CPU with 1 KB bodies); the
        // SIMD decoder (picked at run time for this CPU) cuts it several-fold
        // and accepts and refuses the same texts as `STANDARD`: padded,
        // canonical.
        match text {
            None => Ok(None),
            Some(t) => base64_simd::STANDARD
                .decode_to_vec(t.as_bytes())
                .map(|v| Some(Bytes::from(v)))
                .map_err(|e| serde::de::Error::custom(format!("invalid base64: {e}"))),
        }
    }
}

pub(crate) mod rfc3339_opt {
    use super::*;

    pub fn serialize<S: Serializer>(v: &Option<OffsetDateTime>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(t) => {
                let text = t.format(&Rfc3339).map_err(serde::ser::Error::custom)?;
                s.serialize_str(&text)
            }
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<OffsetDateTime>, D::Error> {
        let text: Option<std::borrow::Cow<'de, str>> = Option::deserialize(d)?;
        text.map(|t| {
            OffsetDateTime::parse(&t, &Rfc3339)
                .map_err(|e| serde::de::Error::custom(format!("invalid RFC 3339 time: {e}")))
        })
        .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Hand-written in the exact key order and encoding of the original Go struct.
    const FIXTURE: &str = r#"{"LogID":7,"RequestID":"req-1","Method":"POST","Path":"/v1/chat/completions","Status":200,"Duration":150000000,"ResponseHeaders":{"Content-Type":["application/json"],"X-Multi":["a","b"]},"ResponseBody":"eyJvayI6dHJ1ZX0=","RequestBody":"eyJtb2RlbCI6ImdwdC00In0=","Timestamp":"2024-05-01T12:00:00.5Z"}"#;

    #[test]
    fn fixture_round_trips_byte_for_byte() {
        let x: HttpExchange = serde_json::from_str(FIXTURE).unwrap();
        assert_eq!(x.duration_ns, 150_000_000);
        assert_eq!(x.response_body.as_deref(), Some(&b"{\"ok\":true}"[..]));
        assert_eq!(
            x.request_body.as_deref(),
            Some(&b"{\"model\":\"gpt-4\"}"[..])
        );
        assert_eq!(serde_json::to_string(&x).unwrap(), FIXTURE);
    }

    #[test]
    fn original_without_timestamp_and_with_nulls_and_unknown_keys() {
        let json = r#"{"LogID":0,"RequestID":"r","Method":"GET","Path":"/","Status":404,"Duration":1,"ResponseHeaders":null,"ResponseBody":null,"RequestBody":null,"Extra":{"x":1}}"#;
        let x: HttpExchange = serde_json::from_str(json).unwrap();
        assert_eq!(x.timestamp, None);
        assert_eq!(x.response_headers, None);
        let back = serde_json::to_string(&x).unwrap();
        assert_eq!(
            back,
            r#"{"LogID":0,"RequestID":"r","Method":"GET","Path":"/","Status":404,"Duration":1,"ResponseHeaders":null,"ResponseBody":null,"RequestBody":null}"#
        );
    }

    #[test]
    fn missing_keys_default_and_bad_types_are_errors() {
        let x: HttpExchange = serde_json::from_str(r#"{"RequestID":"only"}"#).unwrap();
        assert_eq!(x.request_id, "only");
        assert!(serde_json::from_str::<HttpExchange>(r#"{"Status":"200"}"#).is_err());
        assert!(serde_json::from_str::<HttpExchange>(r#"{"ResponseBody":"%%%"}"#).is_err());
    }

    #[test]
    fn bodies_decode_as_the_standard_alphabet_does() {
        let body = |b64: &str| {
            serde_json::from_str::<HttpExchange>(&format!(r#"{{"RequestBody":"{b64}"}}"#))
                .map(|x| x.request_body)
        };
        // Every length modulo 3, and every byte value.
        let bytes: Vec<u8> = (0..=255u8).chain(0..=255u8).collect();
        for n in [0, 1, 2, 3, 100, 511, 512] {
            let text = STANDARD.encode(&bytes[..n]);
            assert_eq!(body(&text).unwrap().as_deref(), Some(&bytes[..n]), "{n}");
        }
        // Unpadded, URL-safe and non-canonical texts are refused as before.
        for bad in ["YQ", "-_8=", "YR==", "Y===", "YQ==YQ=="] {
            assert!(STANDARD.decode(bad).is_err(), "{bad}");
            assert!(body(bad).is_err(), "{bad}");
        }
    }
}
