//! A peer's Serve answer passed on as the caller's Dispatch answer without
//! being decoded and encoded again. `ServeResponse` and `DispatchResponse`
//! have the same fields under the same numbers and types (status = 1,
//! output = 2, the id of the collector that handled the call = 3), so the
//! bytes of the one are the other. The forwarding node reads only the status
//! code (for its circuit breaker, its metrics and the choice of the next
//! peer), and it checks the message as strictly as decoding it would: a peer
//! that sends something malformed is refused here, as before, rather than
//! passed on to the caller.

use crate::pb;
use crate::scan::{any, field, skip, text, varint, Malformed};
use crate::status;
use crate::wire::{self, PREFIX};
use bytes::Bytes;
use prost::encoding::decode_key;
use prost::Message;
use tonic::Status;

/// A checked `ServeResponse` in its wire frame (prefix and message).
#[derive(Debug, Clone)]
pub(crate) struct ServeReply {
    frame: Bytes,
    /// `status.code`, if the message has a status.
    code: Option<i32>,
}

impl ServeReply {
    /// `frame`, a unary response body as read (a message of at most `max`
    /// bytes), checked to be a well-formed `ServeResponse`.
    pub(crate) fn parse(frame: Bytes, max: usize) -> Result<Self, Status> {
        let message = wire::message_of(&frame, max, "response")?;
        let code = scan_response(message)
            .map_err(|e| Status::internal(format!("decoding the response: {e}")))?;
        Ok(Self { frame, code })
    }

    /// The frame of a response that was decoded already (a peer reached
    /// through tonic's client, within its message limit).
    pub(crate) fn of(response: &pb::ServeResponse) -> Result<Self, Status> {
        Ok(Self {
            frame: wire::encode(response, usize::MAX, "response")?,
            code: response.status.as_ref().map(|s| s.code),
        })
    }

    /// Whether the peer handled the call (`200`).
    pub(crate) fn is_ok(&self) -> bool {
        self.code == Some(status::OK)
    }

    /// Whether the answer counts against the peer's health: a missing status
    /// does not, a `5xx` does.
    pub(crate) fn is_server_error(&self) -> bool {
        self.code.is_some_and(|c| c >= 500)
    }

    /// The message decoded, for the rare paths that need its fields.
    pub(crate) fn decode<M: Message + Default>(&self) -> M {
        // Checked in `parse` (or encoded by `of`), so this cannot fail; a
        // default message would be the answer if it did.
        M::decode(&self.frame[PREFIX..]).unwrap_or_default()
    }

    /// The frame, as the caller's `DispatchResponse`.
    pub(crate) fn into_frame(self) -> Bytes {
        self.frame
    }

    /// Length of the message in the frame.
    pub(crate) fn message_len(&self) -> usize {
        self.frame.len() - PREFIX
    }
}

/// Check a `ServeResponse` the way decoding it would, and return its status
/// code. Fields of one message that occur more than once merge, as in
/// decoding: the last code seen wins.
fn scan_response(mut buf: &[u8]) -> Result<Option<i32>, Malformed> {
    let mut code = None;
    while !buf.is_empty() {
        let (tag, wire_type) = decode_key(&mut buf)?;
        match tag {
            1 => {
                if let Some(c) = scan_status(field(wire_type, &mut buf)?)? {
                    code = Some(c);
                } else if code.is_none() {
                    // A status without a code field has the default code.
                    code = Some(0);
                }
            }
            2 => any(field(wire_type, &mut buf)?)?,
            3 => drop(text(field(wire_type, &mut buf)?)?),
            _ => skip(wire_type, tag, &mut buf)?,
        }
    }
    Ok(code)
}

/// A `Status`: code = 1 (enum), message = 2, details = 3 (string map).
fn scan_status(mut buf: &[u8]) -> Result<Option<i32>, Malformed> {
    let mut code = None;
    while !buf.is_empty() {
        let (tag, wire_type) = decode_key(&mut buf)?;
        match tag {
            // As prost reads an `int32`: the low 32 bits.
            1 => code = Some(varint(wire_type, &mut buf)? as i32),
            2 => drop(text(field(wire_type, &mut buf)?)?),
            3 => scan_entry(field(wire_type, &mut buf)?)?,
            _ => skip(wire_type, tag, &mut buf)?,
        }
    }
    Ok(code)
}

/// A `map<string, string>` entry: key = 1, value = 2.
fn scan_entry(mut buf: &[u8]) -> Result<(), Malformed> {
    while !buf.is_empty() {
        let (tag, wire_type) = decode_key(&mut buf)?;
        match tag {
            1 | 2 => drop(text(field(wire_type, &mut buf)?)?),
            _ => skip(wire_type, tag, &mut buf)?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::encoding::{encode_key, WireType};
    use prost_types::Any;
    use std::collections::HashMap;

    fn frame(message: &[u8]) -> Bytes {
        let mut f = vec![0];
        f.extend_from_slice(&(message.len() as u32).to_be_bytes());
        f.extend_from_slice(message);
        f.into()
    }

    fn full() -> pb::ServeResponse {
        pb::ServeResponse {
            status: Some(status::with_details(
                status::new(404, "no handler"),
                &[("tried", "2".into())],
            )),
            output: Some(Any {
                type_url: "type.googleapis.com/x.Y".into(),
                value: vec![0, 159, 146, 150],
            }),
            executor_id: "node-b".into(),
        }
    }

    #[test]
    fn the_frame_is_a_dispatch_response_with_the_same_fields() {
        let serve = full();
        let reply = ServeReply::parse(frame(&serve.encode_to_vec()), 1 << 20).unwrap();
        assert!(!reply.is_ok());
        assert!(!reply.is_server_error());
        let dispatch = pb::DispatchResponse::decode(&reply.into_frame()[PREFIX..]).unwrap();
        assert_eq!(dispatch.status, serve.status);
        assert_eq!(dispatch.output, serve.output);
        assert_eq!(dispatch.handled_by_collector_id, "node-b");
    }

    #[test]
    fn the_status_code_is_read_as_decoding_reads_it() {
        let code_of = |r: &pb::ServeResponse| {
            ServeReply::parse(frame(&r.encode_to_vec()), 1 << 20)
                .unwrap()
                .code
        };
        let mut r = pb::ServeResponse::default();
        assert_eq!(code_of(&r), None);
        r.status = Some(status::ok());
        assert_eq!(code_of(&r), Some(200));
        let reply = ServeReply::parse(frame(&r.encode_to_vec()), 1 << 20).unwrap();
        assert!(reply.is_ok());
        r.status = Some(status::new(503, ""));
        let reply = ServeReply::parse(frame(&r.encode_to_vec()), 1 << 20).unwrap();
        assert!(reply.is_server_error());
        // A status with the default code (absent on the wire).
        r.status = Some(status::new(0, "odd"));
        assert_eq!(code_of(&r), Some(0));
        // A message in two parts merges: the later code wins.
        let mut two = status::new(500, "").encode_to_vec();
        let mut bytes = Vec::new();
        encode_key(1, WireType::LengthDelimited, &mut bytes);
        prost::encoding::encode_varint(two.len() as u64, &mut bytes);
        bytes.append(&mut two.clone());
        two = status::ok().encode_to_vec();
        encode_key(1, WireType::LengthDelimited, &mut bytes);
        prost::encoding::encode_varint(two.len() as u64, &mut bytes);
        bytes.append(&mut two);
        let merged = pb::ServeResponse::decode(&bytes[..]).unwrap();
        assert_eq!(merged.status.unwrap().code, 200);
        assert_eq!(
            ServeReply::parse(frame(&bytes), 1 << 20).unwrap().code,
            Some(200)
        );
    }

    /// Whatever prost refuses to decode as a `ServeResponse`, the relay
    /// refuses too, and what it accepts, the relay accepts: checked over
    /// every prefix of a full message and over single-byte corruptions of it.
    #[test]
    fn accepts_exactly_what_decoding_accepts() {
        let mut serve = full();
        serve
            .status
            .as_mut()
            .unwrap()
            .details
            .extend(HashMap::from([("k".to_string(), "v".to_string())]));
        let good = serve.encode_to_vec();
        // An unknown field (4) of each wire type, and an invalid tag.
        let extras = [
            &[0x20, 0x05][..],
            &[0x2A, 0x01, 0xFF],
            &[0x2D, 1, 2, 3, 4],
            &[0x00],
        ];
        let cases = crate::scan::damaged(&good, &extras);
        let (mut accepted, mut refused) = (0, 0);
        for case in cases {
            let decoded = pb::ServeResponse::decode(&case[..]);
            if decoded.is_ok() {
                accepted += 1;
            } else {
                refused += 1;
            }
            let relayed = ServeReply::parse(frame(&case), 1 << 20);
            assert_eq!(
                decoded.is_ok(),
                relayed.is_ok(),
                "{case:02x?}: prost {decoded:?}, relay {relayed:?}"
            );
            if let (Ok(d), Ok(r)) = (decoded, relayed) {
                assert_eq!(r.code, d.status.as_ref().map(|s| s.code));
                assert_eq!(r.decode::<pb::ServeResponse>(), d);
            }
        }
        // Both sides of the comparison were exercised.
        assert!(accepted > 50 && refused > 50, "{accepted} / {refused}");
    }

    #[test]
    fn the_frame_prefix_is_checked() {
        let good = full().encode_to_vec();
        let mut compressed = frame(&good).to_vec();
        compressed[0] = 1;
        assert!(ServeReply::parse(compressed.into(), 1 << 20).is_err());
        let mut short = frame(&good).to_vec();
        short.pop();
        assert!(ServeReply::parse(short.into(), 1 << 20).is_err());
        assert!(ServeReply::parse(frame(&good), 4).is_err());
    }

    #[test]
    fn a_decoded_response_gives_the_same_frame() {
        let serve = full();
        let reply = ServeReply::of(&serve).unwrap();
        assert_eq!(reply.code, Some(404));
        assert_eq!(reply.message_len(), serve.encoded_len());
        assert_eq!(&reply.into_frame()[PREFIX..], &serve.encode_to_vec()[..]);
    }
}

#[cfg(test)]
mod props {
    //! A peer's reply frame: any bytes are accepted exactly when prost
    //! would accept the message, never a panic.
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        #[test]
        fn arbitrary_replies_are_accepted_exactly_as_prost_accepts_them(
            message in proptest::collection::vec(
                prop_oneof![Just(0x0Au8), Just(0x12), Just(0x08), Just(0x1A), Just(0x01),
                            Just(0x80), proptest::arbitrary::any::<u8>()],
                0..64),
            raw in proptest::collection::vec(proptest::arbitrary::any::<u8>(), 0..32),
        ) {
            let mut frame = vec![0];
            frame.extend_from_slice(&(message.len() as u32).to_be_bytes());
            frame.extend_from_slice(&message);
            let decoded = pb::ServeResponse::decode(&message[..]);
            let relayed = ServeReply::parse(Bytes::from(frame), 1 << 20);
            prop_assert_eq!(decoded.is_ok(), relayed.is_ok(), "{:02x?}", message);
            if let Ok(r) = relayed {
                prop_assert_eq!(r.message_len(), message.len());
                let _ = (r.is_ok(), r.is_server_error());
            }
            let _ = ServeReply::parse(Bytes::from(raw), 16);
        }
    }
}
