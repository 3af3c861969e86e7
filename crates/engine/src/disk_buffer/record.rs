//! One record on disk: `magic (4) | length (u32 LE) | CRC32 (u32 LE) | body`.
//!
//! The CRC covers the length and the body, so a flipped bit anywhere in a
//! record is caught, including in its length. The magic lets a reader find
//! the next record after damage: it scans forward for the magic and accepts
//! the first candidate whose checksum holds, so one bad record costs that
//! record, not the rest of the segment. (CRC32 is the IEEE polynomial, via
//! `crc32fast`, which uses the CPU's carry-less multiply.)

use switchyard_core::{event_codec, Event};

/// Marks the start of every record.
pub(crate) const MAGIC: [u8; 4] = *b"SYr1";
/// Bytes before the body.
pub(crate) const HEADER: usize = 12;

/// Append `event` as one record to `out`.
pub(crate) fn encode(event: &Event, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&[0; 8]);
    event_codec::encode(event, out);
    let body_len = out.len() - start - HEADER;
    // Events are bounded far below 4 GiB by every source's body limit.
    let len = u32::try_from(body_len).expect("an event is shorter than 4 GiB");
    out[start + 4..start + 8].copy_from_slice(&len.to_le_bytes());
    let crc = checksum(&len.to_le_bytes(), &out[start + HEADER..]);
    out[start + 8..start + 12].copy_from_slice(&crc.to_le_bytes());
}

fn checksum(len: &[u8], body: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(len);
    h.update(body);
    h.finalize()
}

/// What the bytes at a record boundary hold.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Parsed<'a> {
    /// A whole, intact record of `len` bytes (header included).
    Record { body: &'a [u8], len: usize },
    /// The record may be intact but needs this many bytes in all.
    NeedMore(usize),
    /// Not a valid record.
    Corrupt,
}

/// Read the record at the start of `buf`. `at_end` says `buf` reaches the end
/// of the readable data, so a short record is damage (a torn write), not a
/// reason to read more.
pub(crate) fn parse(buf: &[u8], at_end: bool) -> Parsed<'_> {
    let short = |need| {
        if at_end {
            Parsed::Corrupt
        } else {
            Parsed::NeedMore(need)
        }
    };
    if buf.len() < HEADER {
        return short(HEADER);
    }
    if buf[..4] != MAGIC {
        return Parsed::Corrupt;
    }
    let len_bytes: [u8; 4] = buf[4..8].try_into().expect("4 bytes");
    let crc = u32::from_le_bytes(buf[8..12].try_into().expect("4 bytes"));
    let total = HEADER + u32::from_le_bytes(len_bytes) as usize;
    if buf.len() < total {
        return short(total);
    }
    let body = &buf[HEADER..total];
    if checksum(&len_bytes, body) != crc {
        return Parsed::Corrupt;
    }
    Parsed::Record { body, len: total }
}

/// Where the next intact record starts in `buf` (which reaches the end of the
/// readable data), skipping offset 0, which is known bad.
pub(crate) fn resync(buf: &[u8]) -> Option<usize> {
    (1..buf.len().saturating_sub(HEADER - 1))
        .filter(|&i| buf[i..].starts_with(&MAGIC))
        .find(|&i| matches!(parse(&buf[i..], true), Parsed::Record { .. }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_core::LogRecord;

    fn records(n: usize) -> (Vec<u8>, Vec<usize>) {
        let mut buf = Vec::new();
        let mut starts = Vec::new();
        for i in 0..n {
            starts.push(buf.len());
            encode(&LogRecord::new(format!("event {i}")).into(), &mut buf);
        }
        (buf, starts)
    }

    #[test]
    fn intact_records_parse_in_sequence() {
        let (buf, starts) = records(3);
        let mut at = 0;
        for &start in &starts {
            assert_eq!(at, start);
            match parse(&buf[at..], true) {
                Parsed::Record { body, len } => {
                    assert!(event_codec::decode(body).is_ok());
                    at += len;
                }
                other => panic!("expected a record at {at}, got {other:?}"),
            }
        }
        assert_eq!(at, buf.len());
    }

    #[test]
    fn a_short_read_asks_for_more_unless_at_the_end() {
        let (buf, _) = records(1);
        assert_eq!(parse(&buf[..5], false), Parsed::NeedMore(HEADER));
        assert_eq!(parse(&buf[..20], false), Parsed::NeedMore(buf.len()));
        assert_eq!(parse(&buf[..20], true), Parsed::Corrupt);
    }

    #[test]
    fn any_flipped_byte_is_caught_and_the_next_record_is_found() {
        let (buf, starts) = records(3);
        for i in starts[1]..starts[2] {
            let mut bad = buf.clone();
            bad[i] ^= 0x40;
            assert_eq!(
                parse(&bad[starts[1]..], true),
                Parsed::Corrupt,
                "flip at {i}"
            );
            let next = resync(&bad[starts[1]..]).expect("the third record is intact");
            assert_eq!(starts[1] + next, starts[2], "flip at {i}");
        }
    }
}
