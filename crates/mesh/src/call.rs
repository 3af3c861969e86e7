//! A Dispatch request read in place, and the Serve it is forwarded as.
//!
//! Fields 1 to 4 of `DispatchRequest` and `ServeRequest` are the same
//! (namespace, service, method_name, input), so the Serve a node forwards is
//! those fields' bytes as they came, plus one `execution_context` entry (the
//! hop's `traceparent`). A node that forwards therefore reads only what it
//! routes by (namespace, service and method names, target, the hash key of
//! the routing hints) and builds no messages; it checks the request as
//! strictly as decoding it would. Only a call run on this node is decoded.

use crate::balance::HASH_KEY_HINT;
use crate::pb;
use crate::scan::{field, skip, text, Malformed};
use crate::trace::TRACEPARENT;
use crate::wire::PREFIX;
use bytes::{BufMut, Bytes, BytesMut};
use prost::encoding::{decode_key, encode_key, encode_varint, encoded_len_varint, WireType};
use prost::Message;
use std::ops::Range;

/// A checked `DispatchRequest`, by byte ranges into its message.
#[derive(Debug, Clone)]
pub(crate) struct DispatchCall {
    message: Bytes,
    namespace: Range<usize>,
    /// Set once a `service` field was seen (even an empty one).
    service: Option<Range<usize>>,
    method: Range<usize>,
    target: Range<usize>,
    hash_key: Option<Range<usize>>,
    /// Fields 1 to 4, each with its key, in the order they came.
    head: Vec<Range<usize>>,
    head_len: usize,
}

impl DispatchCall {
    /// `message`: an encoded `DispatchRequest`.
    pub(crate) fn parse(message: Bytes) -> Result<Self, Malformed> {
        let mut call = Self::empty();
        let all = &message[..];
        let mut buf = all;
        while !buf.is_empty() {
            let start = all.len() - buf.len();
            let (tag, wire_type) = decode_key(&mut buf)?;
            match tag {
                1 | 3 | 5 => {
                    let value = text(field(wire_type, &mut buf)?)?;
                    let range = offset(all, value);
                    match tag {
                        1 => call.namespace = range,
                        3 => call.method = range,
                        _ => call.target = range,
                    }
                }
                2 => {
                    // ServiceTypeRef: namespace = 1, service_name = 2.
                    let mut service = field(wire_type, &mut buf)?;
                    let mut name = call.service.take().unwrap_or(0..0);
                    while !service.is_empty() {
                        let (tag, wire_type) = decode_key(&mut service)?;
                        match tag {
                            1 => drop(text(field(wire_type, &mut service)?)?),
                            2 => name = offset(all, text(field(wire_type, &mut service)?)?),
                            _ => skip(wire_type, tag, &mut service)?,
                        }
                    }
                    call.service = Some(name);
                }
                4 => crate::scan::any(field(wire_type, &mut buf)?)?,
                6 => {
                    // map<string, string> entry: key = 1, value = 2.
                    let mut entry = field(wire_type, &mut buf)?;
                    let (mut key, mut value) = (&b""[..], 0..0);
                    while !entry.is_empty() {
                        let (tag, wire_type) = decode_key(&mut entry)?;
                        match tag {
                            1 => key = text(field(wire_type, &mut entry)?)?.as_bytes(),
                            2 => value = offset(all, text(field(wire_type, &mut entry)?)?),
                            _ => skip(wire_type, tag, &mut entry)?,
                        }
                    }
                    if key == HASH_KEY_HINT.as_bytes() {
                        call.hash_key = Some(value);
                    }
                }
                _ => skip(wire_type, tag, &mut buf)?,
            }
            if (1..=4).contains(&tag) {
                let end = all.len() - buf.len();
                call.head_len += end - start;
                call.head.push(start..end);
            }
        }
        call.message = message;
        Ok(call)
    }

    /// The request as sent to [`crate::Dispatcher::dispatch`].
    pub(crate) fn of(request: &pb::DispatchRequest) -> Self {
        // What prost encodes, it decodes.
        Self::parse(request.encode_to_vec().into()).unwrap_or_else(|_| Self::empty())
    }

    fn empty() -> Self {
        Self {
            message: Bytes::new(),
            namespace: 0..0,
            service: None,
            method: 0..0,
            target: 0..0,
            hash_key: None,
            head: Vec::new(),
            head_len: 0,
        }
    }

    fn str(&self, range: &Range<usize>) -> &str {
        // Checked to be UTF-8 in `parse`.
        std::str::from_utf8(&self.message[range.clone()]).unwrap_or_default()
    }

    pub(crate) fn namespace(&self) -> &str {
        self.str(&self.namespace)
    }

    /// The service name; `None` without a `service` field.
    pub(crate) fn service_name(&self) -> Option<&str> {
        self.service.as_ref().map(|r| self.str(r))
    }

    pub(crate) fn method(&self) -> &str {
        self.str(&self.method)
    }

    pub(crate) fn target(&self) -> &str {
        self.str(&self.target)
    }

    /// The routing hint that picks a peer by consistent hash.
    pub(crate) fn hash_key(&self) -> Option<&str> {
        self.hash_key.as_ref().map(|r| self.str(r))
    }

    /// Size of the request message.
    pub(crate) fn len(&self) -> usize {
        self.message.len()
    }

    /// The call as a Serve to run on this node.
    pub(crate) fn into_serve_request(self) -> pb::ServeRequest {
        // Checked in `parse`, so this decodes.
        let request = pb::DispatchRequest::decode(self.message).unwrap_or_default();
        pb::ServeRequest {
            namespace: request.namespace,
            service: request.service,
            method_name: request.method_name,
            input: request.input,
            execution_context: Default::default(),
        }
    }

    /// The framed `ServeRequest` this call is forwarded as, with
    /// `traceparent` in its `execution_context`.
    pub(crate) fn serve_frame(&self, traceparent: &str) -> Bytes {
        let entry_len = 2
            + encoded_len_varint(TRACEPARENT.len() as u64)
            + TRACEPARENT.len()
            + encoded_len_varint(traceparent.len() as u64)
            + traceparent.len();
        let len = self.head_len + 1 + encoded_len_varint(entry_len as u64) + entry_len;
        let mut frame = BytesMut::with_capacity(PREFIX + len);
        frame.put_u8(0);
        frame.put_u32(len as u32);
        for range in &self.head {
            frame.put_slice(&self.message[range.clone()]);
        }
        encode_key(5, WireType::LengthDelimited, &mut frame);
        encode_varint(entry_len as u64, &mut frame);
        for (tag, value) in [(1, TRACEPARENT), (2, traceparent)] {
            encode_key(tag, WireType::LengthDelimited, &mut frame);
            encode_varint(value.len() as u64, &mut frame);
            frame.put_slice(value.as_bytes());
        }
        frame.freeze()
    }
}

/// Where `part` (a slice of `all`) lies in `all`.
fn offset(all: &[u8], part: &str) -> Range<usize> {
    let start = part.as_ptr() as usize - all.as_ptr() as usize;
    start..start + part.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost_types::Any;
    use std::collections::HashMap;

    fn full() -> pb::DispatchRequest {
        pb::DispatchRequest {
            namespace: "orders".into(),
            service: Some(pb::ServiceTypeRef {
                namespace: "orders".into(),
                service_name: "Billing".into(),
            }),
            method_name: "Charge".into(),
            input: Some(Any {
                type_url: "type.googleapis.com/x.Y".into(),
                value: vec![1, 2, 3, 0xFF],
            }),
            target_collector_id: "node-b".into(),
            routing_hints: HashMap::from([
                (HASH_KEY_HINT.to_string(), "tenant-7".to_string()),
                ("other".to_string(), "x".to_string()),
            ]),
        }
    }

    #[test]
    fn reads_what_routing_needs() {
        let call = DispatchCall::of(&full());
        assert_eq!(call.namespace(), "orders");
        assert_eq!(call.service_name(), Some("Billing"));
        assert_eq!(call.method(), "Charge");
        assert_eq!(call.target(), "node-b");
        assert_eq!(call.hash_key(), Some("tenant-7"));
        assert_eq!(call.len(), full().encoded_len());
        let bare = DispatchCall::of(&pb::DispatchRequest::default());
        assert_eq!(bare.service_name(), None);
        assert_eq!(bare.hash_key(), None);
        let empty_service = DispatchCall::of(&pb::DispatchRequest {
            service: Some(pb::ServiceTypeRef::default()),
            ..Default::default()
        });
        assert_eq!(empty_service.service_name(), Some(""));
    }

    #[test]
    fn the_forwarded_serve_has_the_same_fields_and_the_trace() {
        let request = full();
        let frame = DispatchCall::of(&request).serve_frame("00-aa-bb-01");
        let serve: pb::ServeRequest = crate::wire::decode(&frame, 1 << 20, "request").unwrap();
        assert_eq!(serve.namespace, request.namespace);
        assert_eq!(serve.service, request.service);
        assert_eq!(serve.method_name, request.method_name);
        assert_eq!(serve.input, request.input);
        assert_eq!(
            serve.execution_context,
            HashMap::from([(TRACEPARENT.to_string(), "00-aa-bb-01".to_string())])
        );
        let local = DispatchCall::of(&request).into_serve_request();
        assert_eq!(local.namespace, "orders");
        assert_eq!(local.input, request.input);
        assert!(local.execution_context.is_empty());
    }

    /// Whatever prost refuses to decode as a `DispatchRequest`, this refuses
    /// too, and what it accepts, this accepts and reads the same way:
    /// checked over every prefix of a full request and over single-byte
    /// corruptions of it.
    #[test]
    fn accepts_exactly_what_decoding_accepts() {
        let good = full().encode_to_vec();
        // An unknown field (7) of each wire type, and an invalid tag.
        let extras = [
            &[0x38, 0x05][..],
            &[0x3A, 0x01, 0xFF],
            &[0x3D, 1, 2, 3, 4],
            &[0x00],
        ];
        let mut cases = crate::scan::damaged(&good, &extras);
        // A repeated string field: the last one wins.
        let mut twice = good.clone();
        twice.extend_from_slice(&[0x0A, 0x01, b'z']);
        cases.push(twice);
        let (mut accepted, mut refused) = (0, 0);
        for case in cases {
            let decoded = pb::DispatchRequest::decode(&case[..]);
            let read = DispatchCall::parse(case.clone().into());
            assert_eq!(
                decoded.is_ok(),
                read.is_ok(),
                "{case:02x?}: prost {decoded:?}, read {read:?}"
            );
            let (Ok(d), Ok(r)) = (decoded, read) else {
                refused += 1;
                continue;
            };
            accepted += 1;
            assert_eq!(r.namespace(), d.namespace);
            assert_eq!(
                r.service_name(),
                d.service.as_ref().map(|s| s.service_name.as_str())
            );
            assert_eq!(r.method(), d.method_name);
            assert_eq!(r.target(), d.target_collector_id);
            assert_eq!(
                r.hash_key(),
                d.routing_hints.get(HASH_KEY_HINT).map(String::as_str)
            );
            let serve: pb::ServeRequest =
                crate::wire::decode(&r.serve_frame("t"), 1 << 20, "request").unwrap();
            assert_eq!(serve.namespace, d.namespace);
            assert_eq!(serve.service, d.service);
            assert_eq!(serve.method_name, d.method_name);
            assert_eq!(serve.input, d.input);
        }
        assert!(accepted > 50 && refused > 50, "{accepted} / {refused}");
    }
}

#[cfg(test)]
mod props {
    //! A dispatch request comes from a caller: any bytes are accepted
    //! exactly when prost would accept them, and an accepted request's
    //! fields read back as prost reads them.
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        #[test]
        fn arbitrary_bytes_are_accepted_exactly_as_prost_accepts_them(
            bytes in proptest::collection::vec(
                prop_oneof![Just(0x0Au8), Just(0x12), Just(0x1A), Just(0x22), Just(0x2A),
                            Just(0x32), Just(0x01), Just(0x80), any::<u8>()],
                0..64),
        ) {
            let decoded = pb::DispatchRequest::decode(&bytes[..]);
            let scanned = DispatchCall::parse(Bytes::from(bytes.clone()));
            prop_assert_eq!(decoded.is_ok(), scanned.is_ok(), "{:02x?}", bytes);
            if let (Ok(d), Ok(s)) = (decoded, scanned) {
                prop_assert_eq!(s.namespace(), d.namespace.as_str());
                prop_assert_eq!(s.method(), d.method_name.as_str());
                let _ = (s.service_name(), s.target(), s.hash_key(), s.len());
            }
        }
    }
}
