//! Syslog over TCP: arbitrary bytes in arbitrary reads through the framer
//! (newline and octet-counted), each frame through the RFC 5424/3164 parser.
//! No panic; frames stay within the bound; a line that does not parse is
//! kept whole.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard_sources::net::{syslog, Framer};

fuzz_target!(|data: &[u8]| {
    let Some((&[max, chunk, octets], stream)) = data.split_first_chunk::<3>() else {
        return;
    };
    let max = usize::from(max).max(1) * 4;
    let mut framer = Framer::new(max, octets & 1 == 1);
    let mut frames = Vec::new();
    for piece in stream.chunks(usize::from(chunk).max(1)) {
        framer.feed(piece, &mut frames);
    }
    framer.finish(&mut frames);
    let now = time::OffsetDateTime::UNIX_EPOCH;
    for frame in &frames {
        let (record, error) = syslog::parse(frame, now);
        if error.is_some() {
            assert_eq!(record.message.as_deref(), Some(frame.as_str()));
        }
    }
    // The datagram path: the whole input as one message.
    let text = String::from_utf8_lossy(stream);
    let _ = syslog::parse(&text, now);
});
