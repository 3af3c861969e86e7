//! Loki's native push body: `logproto.PushRequest` in protobuf, snappy
//! block-compressed.
//!
//! The messages are written by hand as prost derive structs instead of being
//! generated from `.proto` files, so the build needs no `protoc`; the tags
//! and types follow Loki's `logproto` (`push.proto`) and
//! `google/protobuf/timestamp.proto` field for field.

use super::batch::Slice;

/// `logproto.PushRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PushRequest {
    /// One per label set.
    #[prost(message, repeated, tag = "1")]
    pub streams: Vec<StreamAdapter>,
}

/// `logproto.StreamAdapter`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StreamAdapter {
    /// The label set in Prometheus text form, `{app="x", level="info"}`.
    #[prost(string, tag = "1")]
    pub labels: String,
    /// Entries, oldest first.
    #[prost(message, repeated, tag = "2")]
    pub entries: Vec<EntryAdapter>,
    /// Set by Loki internally; clients send 0.
    #[prost(uint64, tag = "3")]
    pub hash: u64,
}

/// `logproto.EntryAdapter`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct EntryAdapter {
    /// When the line was logged.
    #[prost(message, optional, tag = "1")]
    pub timestamp: Option<Timestamp>,
    /// The log line.
    #[prost(string, tag = "2")]
    pub line: String,
    /// Per-entry metadata that is not indexed (unused by this sink).
    #[prost(message, repeated, tag = "3")]
    pub structured_metadata: Vec<LabelPairAdapter>,
}

/// `logproto.LabelPairAdapter`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LabelPairAdapter {
    /// Name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Value.
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `google.protobuf.Timestamp`.
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct Timestamp {
    /// Seconds since the Unix epoch.
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    /// Sub-second part, 0..=999_999_999 (also for times before 1970).
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

impl Timestamp {
    /// From Unix nanoseconds.
    pub fn from_nanos(ns: i128) -> Self {
        Self {
            seconds: ns.div_euclid(1_000_000_000) as i64,
            nanos: ns.rem_euclid(1_000_000_000) as i32,
        }
    }
}

/// One push as a snappy-compressed `PushRequest`.
pub fn encode(push: &[Slice<'_>]) -> Vec<u8> {
    let request = PushRequest {
        streams: push
            .iter()
            .map(|s| StreamAdapter {
                labels: s.stream.labels.clone(),
                entries: s
                    .entries
                    .iter()
                    .map(|e| EntryAdapter {
                        timestamp: Some(Timestamp::from_nanos(e.ts)),
                        line: e.line.clone(),
                        structured_metadata: Vec::new(),
                    })
                    .collect(),
                hash: 0,
            })
            .collect(),
    };
    let raw = prost::Message::encode_to_vec(&request);
    // Snappy's block format compresses any input; an error is only possible
    // for inputs over ~4 GiB, far beyond `batch-max-bytes`.
    snap::raw::Encoder::new()
        .compress_vec(&raw)
        .expect("a push is far below snappy's block size limit")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loki::batch::Stream;
    use crate::loki::entry::Entry;
    use prost::Message;

    #[test]
    fn timestamps_split_into_seconds_and_nanos() {
        assert_eq!(
            Timestamp::from_nanos(1_700_000_000_123_456_789),
            Timestamp {
                seconds: 1_700_000_000,
                nanos: 123_456_789
            }
        );
        assert_eq!(
            Timestamp::from_nanos(-1),
            Timestamp {
                seconds: -1,
                nanos: 999_999_999
            }
        );
    }

    #[test]
    fn body_is_snappy_protobuf() {
        let stream = Stream {
            labels: r#"{app="a"}"#.into(),
            pairs: vec![("app".into(), "a".into())],
            entries: vec![Entry {
                index: 0,
                ts: 1_500_000_000,
                line: "hello".into(),
            }],
        };
        let body = encode(&[Slice {
            stream: &stream,
            entries: &stream.entries,
        }]);
        let raw = snap::raw::Decoder::new().decompress_vec(&body).unwrap();
        let req = PushRequest::decode(raw.as_slice()).unwrap();
        assert_eq!(req.streams.len(), 1);
        assert_eq!(req.streams[0].labels, r#"{app="a"}"#);
        let e = &req.streams[0].entries[0];
        assert_eq!(
            e.timestamp,
            Some(Timestamp {
                seconds: 1,
                nanos: 500_000_000
            })
        );
        assert_eq!(e.line, "hello");
    }
}
