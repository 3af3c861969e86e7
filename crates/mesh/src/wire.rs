//! The few pieces of the gRPC-over-HTTP/2 wire format that the hop client
//! and the server need: message framing, reading a unary body, the
//! `grpc-timeout` header, and a call's status in headers or trailers. Kept apart from the connection handling so
//! each can be checked on its own.

use bytes::{BufMut, Bytes, BytesMut};
use http::header::HeaderName;
use http::{HeaderMap, HeaderValue, StatusCode};
use prost::Message;
use std::time::Duration;
use tonic::{Code, Status};

/// Bytes before every message: a compression flag and a big-endian length.
pub(crate) const PREFIX: usize = 5;

// The gRPC header names, ready-made: a name given as `&str` is checked and
// lower-cased on every insert or lookup, several per call on a hot path.
/// `grpc-status`.
pub(crate) const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
/// `grpc-message`.
pub(crate) const GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");
/// `grpc-timeout`.
pub(crate) const GRPC_TIMEOUT: HeaderName = HeaderName::from_static("grpc-timeout");

/// `message` (a `what`: "request" or "response") as one length-prefixed,
/// uncompressed gRPC frame, in a single allocation of exactly the right
/// size. Refused (`OUT_OF_RANGE`, as tonic's own limit) when larger than
/// `max` bytes.
pub(crate) fn encode(message: &impl Message, max: usize, what: &str) -> Result<Bytes, Status> {
    let len = message.encoded_len();
    if len > max {
        return Err(too_large(what, len, max));
    }
    let size = u32::try_from(len).map_err(|_| too_large(what, len, max))?;
    let mut frame = BytesMut::with_capacity(PREFIX + len);
    frame.put_u8(0);
    frame.put_u32(size);
    message
        .encode(&mut frame)
        .map_err(|e| Status::internal(format!("encoding the {what}: {e}")))?;
    Ok(frame.freeze())
}

/// The one message of a unary request or response body (`frame` is the
/// whole body).
pub(crate) fn decode<M: Message + Default>(
    frame: &[u8],
    max: usize,
    what: &str,
) -> Result<M, Status> {
    M::decode(message_of(frame, max, what)?)
        .map_err(|e| Status::internal(format!("decoding the {what}: {e}")))
}

/// The bytes of the one message a unary body (`frame`) holds, once its
/// prefix is checked: uncompressed, at most `max` bytes, and exactly the
/// rest of the body.
pub(crate) fn message_of<'a>(frame: &'a [u8], max: usize, what: &str) -> Result<&'a [u8], Status> {
    let Some((head, rest)) = frame.split_first_chunk::<PREFIX>() else {
        return Err(Status::internal(format!("{what} without a message")));
    };
    match head[0] {
        0 => {}
        1 => {
            return Err(Status::unimplemented(format!(
                "compressed {what}: only uncompressed messages are accepted"
            )))
        }
        flag => {
            return Err(Status::internal(format!(
                "{what} message with an invalid compression flag {flag}"
            )))
        }
    }
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    if len > max {
        return Err(too_large(what, len, max));
    }
    if rest.len() != len {
        return Err(Status::internal(format!(
            "{what} body of {} bytes does not hold one message of {len} bytes",
            rest.len()
        )));
    }
    Ok(rest)
}

/// The whole body of a unary request or response (a `what`), refused as
/// soon as it holds more than one message of at most `max` bytes can. The
/// outer error is the transport's, the inner one a refused (oversized) body.
pub(crate) async fn read_body(
    body: &mut h2::RecvStream,
    max: usize,
    what: &str,
) -> Result<Result<Bytes, Status>, h2::Error> {
    let limit = max.saturating_add(PREFIX);
    // The usual case is one DATA frame holding the whole message: keep it
    // as it came, without a copy.
    let mut first: Option<Bytes> = None;
    let mut more: Option<BytesMut> = None;
    while let Some(chunk) = body.data().await {
        let chunk = chunk?;
        let _ = body.flow_control().release_capacity(chunk.len());
        let so_far: &[u8] = if let Some(buf) = more.as_mut() {
            buf.extend_from_slice(&chunk);
            buf
        } else if let Some(f) = &first {
            let mut buf = BytesMut::with_capacity(f.len() + chunk.len());
            buf.extend_from_slice(f);
            buf.extend_from_slice(&chunk);
            more.insert(buf)
        } else {
            first.insert(chunk)
        };
        let declared = declared_len(so_far).unwrap_or(0);
        if so_far.len() > limit || declared > max {
            let len = declared.max(so_far.len().saturating_sub(PREFIX));
            return Ok(Err(too_large(what, len, max)));
        }
    }
    Ok(Ok(match more {
        Some(buf) => buf.freeze(),
        None => first.unwrap_or_default(),
    }))
}

/// The declared length of the message a body starts with, once its prefix
/// has arrived; lets a reader refuse an oversized response early.
pub(crate) fn declared_len(body: &[u8]) -> Option<usize> {
    let head = body.first_chunk::<PREFIX>()?;
    Some(u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize)
}

pub(crate) fn too_large(what: &str, len: usize, max: usize) -> Status {
    Status::out_of_range(format!(
        "{what} message too large: {len} bytes exceeds the limit of {max} bytes"
    ))
}

/// A `grpc-timeout` value for `timeout`: at most 8 digits, in the finest
/// unit that fits, rounded up (a zero budget becomes `1n`, not "no deadline").
pub(crate) fn grpc_timeout(timeout: Duration) -> HeaderValue {
    const MAX: u128 = 99_999_999;
    let nanos = timeout.as_nanos().max(1);
    let units: [(u128, char); 6] = [
        (1, 'n'),
        (1_000, 'u'),
        (1_000_000, 'm'),
        (1_000_000_000, 'S'),
        (60_000_000_000, 'M'),
        (3_600_000_000_000, 'H'),
    ];
    let (value, unit) = units
        .iter()
        .map(|&(per, unit)| (nanos.div_ceil(per), unit))
        .find(|&(value, _)| value <= MAX)
        .unwrap_or((MAX, 'H'));
    // At most 8 digits and the unit, written without the formatting
    // machinery (this runs for every forwarded call).
    let mut digits = itoa::Buffer::new();
    let mut text = [0u8; 9];
    let digits = digits.format(value).as_bytes();
    text[..digits.len()].copy_from_slice(digits);
    text[digits.len()] = unit as u8;
    HeaderValue::from_bytes(&text[..=digits.len()])
        .unwrap_or_else(|_| HeaderValue::from_static("99999999H"))
}

/// The call's status if `headers` (trailers, or the headers of a
/// trailers-only response) carry one. `grpc-message` is percent-decoded.
pub(crate) fn status_of(headers: &HeaderMap) -> Option<Status> {
    let code = headers.get(GRPC_STATUS)?;
    let code = Code::from_bytes(code.as_bytes());
    let message = headers
        .get(GRPC_MESSAGE)
        .map(|m| percent_decode(m.as_bytes()))
        .unwrap_or_default();
    Some(Status::new(code, message))
}

/// The status of a response whose HTTP status is not 200, as the gRPC
/// specification maps them.
pub(crate) fn status_of_http(status: StatusCode) -> Status {
    let code = match status.as_u16() {
        400 => Code::Internal,
        401 => Code::Unauthenticated,
        403 => Code::PermissionDenied,
        404 => Code::Unimplemented,
        429 | 502 | 503 | 504 => Code::Unavailable,
        _ => Code::Unknown,
    };
    Status::new(code, format!("peer answered HTTP {status}"))
}

/// A `grpc-message` value for `message`: bytes outside printable ASCII, and
/// `%` itself, percent-encoded, as the gRPC specification asks.
pub(crate) fn percent_encode(message: &str) -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = Vec::with_capacity(message.len());
    for &b in message.as_bytes() {
        if (0x20..=0x7E).contains(&b) && b != b'%' {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        }
    }
    // Every byte is now printable ASCII, which a header value accepts.
    HeaderValue::from_bytes(&out).unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn percent_decode(input: &[u8]) -> String {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        let escaped = || Some(hex(*input.get(i + 1)?)? << 4 | hex(*input.get(i + 2)?)?);
        let decoded = if input[i] == b'%' { escaped() } else { None };
        match decoded {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(input[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb;

    #[test]
    fn a_frame_round_trips_and_limits_hold() {
        let msg = pb::ServeRequest {
            namespace: "orders".into(),
            method_name: "Create".into(),
            ..Default::default()
        };
        let frame = encode(&msg, 1024, "request").unwrap();
        assert_eq!(frame[0], 0);
        assert_eq!(declared_len(&frame), Some(msg.encoded_len()));
        assert_eq!(frame.len(), PREFIX + msg.encoded_len());
        let back: pb::ServeRequest = decode(&frame, 1024, "request").unwrap();
        assert_eq!(back, msg);

        assert_eq!(
            encode(&msg, 3, "request").unwrap_err().code(),
            Code::OutOfRange
        );
        assert_eq!(
            decode::<pb::ServeRequest>(&frame, 3, "response")
                .unwrap_err()
                .code(),
            Code::OutOfRange
        );
        let truncated = &frame[..frame.len() - 1];
        assert_eq!(
            decode::<pb::ServeRequest>(truncated, 1024, "response")
                .unwrap_err()
                .code(),
            Code::Internal
        );
        let mut compressed = frame.to_vec();
        compressed[0] = 1;
        assert_eq!(
            decode::<pb::ServeRequest>(&compressed, 1024, "response")
                .unwrap_err()
                .code(),
            Code::Unimplemented
        );
        assert_eq!(
            decode::<pb::ServeRequest>(&[0, 0], 1024, "response")
                .unwrap_err()
                .code(),
            Code::Internal
        );
    }

    #[test]
    fn timeouts_use_the_finest_unit_that_fits_and_round_up() {
        let t = |d| grpc_timeout(d).to_str().unwrap().to_string();
        assert_eq!(t(Duration::from_millis(300)), "300000u");
        assert_eq!(t(Duration::from_nanos(1500)), "1500n");
        assert_eq!(t(Duration::from_secs(30)), "30000000u");
        assert_eq!(t(Duration::from_secs(500)), "500000m");
        assert_eq!(t(Duration::from_secs(200_000)), "200000S");
        assert_eq!(t(Duration::ZERO), "1n");
        assert_eq!(
            crate::trace::parse_grpc_timeout(&t(Duration::from_millis(300))),
            Some(Duration::from_millis(300))
        );
    }

    #[test]
    fn status_comes_from_grpc_status_and_a_percent_encoded_message() {
        let mut h = HeaderMap::new();
        assert!(status_of(&h).is_none());
        h.insert("grpc-status", HeaderValue::from_static("16"));
        h.insert(
            "grpc-message",
            HeaderValue::from_static("missing%20token%3A%20caf%C3%A9%"),
        );
        let s = status_of(&h).unwrap();
        assert_eq!(s.code(), Code::Unauthenticated);
        assert_eq!(s.message(), "missing token: café%");
        let encoded = percent_encode("missing token: café%");
        assert_eq!(encoded, "missing token: caf%C3%A9%25");
        assert_eq!(
            status_of(&HeaderMap::from_iter([
                (
                    http::header::HeaderName::from_static("grpc-status"),
                    HeaderValue::from_static("3")
                ),
                (
                    http::header::HeaderName::from_static("grpc-message"),
                    encoded
                ),
            ]))
            .unwrap()
            .message(),
            "missing token: café%"
        );
        assert_eq!(
            status_of_http(StatusCode::SERVICE_UNAVAILABLE).code(),
            Code::Unavailable
        );
        assert_eq!(
            status_of_http(StatusCode::NOT_FOUND).code(),
            Code::Unimplemented
        );
    }
}

#[cfg(test)]
mod props {
    //! Frames and status headers come from peers: any bytes give a message,
    //! a status or an error, never a panic; what is written reads back.
    use super::*;
    use crate::pb;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn arbitrary_frames_never_panic(
            frame in proptest::collection::vec(any::<u8>(), 0..128),
            max in prop_oneof![Just(0usize), Just(16), Just(usize::MAX)],
        ) {
            if let Ok(m) = message_of(&frame, max, "request") {
                prop_assert_eq!(m.len() + PREFIX, frame.len());
                prop_assert!(m.len() <= max);
            }
            let _ = decode::<pb::ServeRequest>(&frame, max, "request");
            let _ = declared_len(&frame);
        }

        #[test]
        fn requests_round_trip(
            namespace in any::<String>(),
            method_name in any::<String>(),
            max in 0usize..256,
        ) {
            let msg = pb::ServeRequest { namespace, method_name, ..Default::default() };
            match encode(&msg, max, "request") {
                Ok(frame) => {
                    prop_assert_eq!(declared_len(&frame), Some(frame.len() - PREFIX));
                    prop_assert_eq!(decode::<pb::ServeRequest>(&frame, max, "request").unwrap(), msg);
                }
                Err(e) => prop_assert!(msg.encoded_len() > max && e.code() == Code::OutOfRange),
            }
        }

        #[test]
        fn status_messages_round_trip_and_any_header_reads(
            message in any::<String>(),
            raw in proptest::collection::vec(any::<u8>(), 0..40),
            code in proptest::collection::vec(any::<u8>(), 0..4),
        ) {
            let encoded = percent_encode(&message);
            prop_assert_eq!(percent_decode(encoded.as_bytes()), message);
            let _ = percent_decode(&raw);
            let mut headers = HeaderMap::new();
            if let (Ok(c), Ok(m)) = (HeaderValue::from_bytes(&code), HeaderValue::from_bytes(&raw)) {
                headers.insert(GRPC_STATUS, c);
                headers.insert(GRPC_MESSAGE, m);
                prop_assert!(status_of(&headers).is_some());
            }
        }
    }
}
