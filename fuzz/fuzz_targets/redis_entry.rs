//! A Redis reply parsed by the redis crate, then taken apart as stream
//! entries; and any bytes as an entry's (or a LIST element's) JSON event.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use switchyard_bus::redis::entry::{autoclaim_reply, entries, read_reply};
use switchyard_bus::redis::{decode, RawEntry, StreamId};

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = redis::parse_redis_value(data) {
        let _ = entries(v.clone());
        let _ = read_reply(v.clone());
        let _ = autoclaim_reply(v);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = text.parse::<StreamId>();
    }
    let _ = decode::json(data);
    let entry = RawEntry {
        id: StreamId {
            ms: u64::MAX,
            seq: 1,
        },
        fields: Some(vec![(
            Bytes::from_static(decode::DATA_FIELD),
            Bytes::copy_from_slice(data),
        )]),
    };
    let _ = decode::stream_entry(&entry);
});
