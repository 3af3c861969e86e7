//! Stream replies read straight from the RESP bytes: one buffer per reply,
//! entries that borrow slices of it.
//!
//! The redis crate parses every reply into its generic `Value` tree: a
//! heap-allocated node and a copied byte vector per element, through a
//! general parser combinator. For `XREADGROUP` replies of a thousand 5 KB
//! entries that was about 15 % of the Redis → file path's instructions, and
//! the entry bytes were copied twice more on the way. Here a reply is first
//! delimited (a resumable scan that skips bulk strings by their length), then
//! walked once, handing out [`Bytes`] slices of the reply.
//!
//! Only RESP2 is spoken: the reader connection never sends `HELLO 3`.

use super::entry::{RawEntry, StreamId};
use bytes::Bytes;
use redis::{RedisError, RedisResult};

/// Finds where one reply ends, across partial reads: remembers how far it
/// got and the element counts of the arrays it is inside.
#[derive(Debug, Default)]
pub struct FrameScan {
    pos: usize,
    /// Elements still to come in each open array, innermost last.
    open: Vec<u64>,
}

impl FrameScan {
    /// The length of the reply at the start of `buf` once all of it is
    /// there; `None` while more bytes are needed (call again with the same
    /// buffer grown). Resets itself after a complete reply.
    pub fn scan(&mut self, buf: &[u8]) -> Result<Option<usize>, String> {
        loop {
            let Some((kind, number, after)) = header(buf, self.pos)? else {
                return Ok(None);
            };
            let end = match kind {
                b'+' | b'-' | b':' => after,
                b'$' if number < 0 => after,
                b'$' => {
                    let end = after + number as usize + 2;
                    if buf.len() < end {
                        return Ok(None);
                    }
                    if &buf[end - 2..end] != b"\r\n" {
                        return Err("bulk string without its line end".into());
                    }
                    end
                }
                b'*' if number > 0 => {
                    self.open.push(number as u64);
                    self.pos = after;
                    continue;
                }
                b'*' => after,
                other => return Err(format!("unexpected RESP type byte {other:#04x}")),
            };
            self.pos = end;
            // One element done: close every array it completes.
            loop {
                match self.open.last_mut() {
                    None => {
                        let len = self.pos;
                        self.pos = 0;
                        return Ok(Some(len));
                    }
                    Some(left) => {
                        *left -= 1;
                        if *left > 0 {
                            break;
                        }
                        self.open.pop();
                    }
                }
            }
        }
    }
}

/// The element header at `at`: its type byte, the number on its line (0 for
/// simple strings, errors and integers — not needed), and where the line
/// ends. `None` when the line is not complete yet.
fn header(buf: &[u8], at: usize) -> Result<Option<(u8, i64, usize)>, String> {
    let Some(nl) = buf.get(at..).and_then(|rest| memchr::memchr(b'\n', rest)) else {
        return Ok(None);
    };
    let line = &buf[at..at + nl];
    let after = at + nl + 1;
    let Some((&kind, rest)) = line
        .split_last()
        .filter(|(&cr, _)| cr == b'\r')
        .and_then(|(_, l)| l.split_first())
    else {
        return Err("RESP line without \\r\\n".into());
    };
    let number = match kind {
        b'$' | b'*' => parse_len(rest)
            .ok_or_else(|| format!("bad RESP length `{}`", String::from_utf8_lossy(rest)))?,
        _ => 0,
    };
    Ok(Some((kind, number, after)))
}

/// `-1` or a non-negative length.
fn parse_len(digits: &[u8]) -> Option<i64> {
    if digits == b"-1" {
        return Some(-1);
    }
    if digits.is_empty() || digits.len() > 18 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        digits
            .iter()
            .fold(0i64, |n, d| n * 10 + i64::from(d - b'0')),
    )
}

/// A walk over one complete reply.
struct Walk {
    frame: Bytes,
    pos: usize,
}

/// One element, as far as stream replies need them.
enum Item {
    Nil,
    Array(usize),
    Bulk(Bytes),
    Other,
}

impl Walk {
    fn next(&mut self) -> Result<Item, String> {
        let (kind, number, after) = header(&self.frame, self.pos)?.ok_or("reply ends early")?;
        self.pos = after;
        Ok(match kind {
            b'*' | b'$' if number < 0 => Item::Nil,
            b'*' => Item::Array(number as usize),
            b'$' => {
                let end = after + number as usize;
                if self.frame.len() < end + 2 {
                    return Err("reply ends inside a string".into());
                }
                self.pos = end + 2;
                Item::Bulk(self.frame.slice(after..end))
            }
            _ => Item::Other,
        })
    }

    /// Room to reserve for `n` elements: no more than the rest of the
    /// reply can hold (every element takes at least 4 bytes, `:0\r\n`), so
    /// a count that lies costs an error, not an allocation.
    fn room_for(&self, n: usize) -> usize {
        n.min(self.frame.len().saturating_sub(self.pos) / 4)
    }

    fn array(&mut self) -> Result<usize, String> {
        match self.next()? {
            Item::Array(n) => Ok(n),
            _ => Err("expected an array".into()),
        }
    }

    fn bulk(&mut self) -> Result<Bytes, String> {
        match self.next()? {
            Item::Bulk(b) => Ok(b),
            _ => Err("expected a bulk string".into()),
        }
    }
}

/// The entries of one `XREADGROUP` reply (a complete frame): nil on a
/// timeout, else `[[stream, [[id, [field, value, ...] | nil], ...]]]`. An
/// error reply becomes the redis crate's error, so callers see the same
/// codes (`NOGROUP`, ...) as from its connections.
pub fn read_reply(frame: Bytes) -> RedisResult<Vec<RawEntry>> {
    if frame.first() == Some(&b'-') {
        return Err(match redis::parse_redis_value(&frame)?.extract_error() {
            Err(e) => e,
            Ok(_) => protocol("unreadable error reply".into()),
        });
    }
    entries_of(frame).map_err(protocol)
}

fn entries_of(frame: Bytes) -> Result<Vec<RawEntry>, String> {
    let mut w = Walk { frame, pos: 0 };
    let streams = match w.next()? {
        Item::Nil => return Ok(Vec::new()),
        Item::Array(n) => n,
        _ => return Err("expected an array of streams".into()),
    };
    if streams == 0 {
        return Ok(Vec::new());
    }
    if w.array()? != 2 {
        return Err("a stream is not [name, entries]".into());
    }
    let _name = w.bulk()?;
    let count = w.array()?;
    let mut entries = Vec::with_capacity(w.room_for(count));
    for _ in 0..count {
        let parts = w.array()?;
        if parts == 0 {
            return Err("entry without id".into());
        }
        let id = w.bulk()?;
        let id: StreamId = std::str::from_utf8(&id)
            .map_err(|_| "stream id is not UTF-8".to_string())?
            .parse()?;
        let fields = match if parts > 1 { w.next()? } else { Item::Nil } {
            Item::Nil => None,
            Item::Array(n) if n % 2 == 0 => {
                let mut pairs = Vec::with_capacity(w.room_for(n) / 2);
                for _ in 0..n / 2 {
                    pairs.push((w.bulk()?, w.bulk()?));
                }
                Some(pairs)
            }
            Item::Array(_) => return Err("odd number of field items".into()),
            _ => return Err("entry fields are not an array".into()),
        };
        entries.push(RawEntry { id, fields });
    }
    Ok(entries)
}

fn protocol(msg: String) -> RedisError {
    RedisError::from((redis::ErrorKind::ParseError, "unexpected stream reply", msg))
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPLY: &[u8] = b"*1\r\n*2\r\n$1\r\ns\r\n*2\r\n*2\r\n$3\r\n1-0\r\n*2\r\n$4\r\ndata\r\n$2\r\n{}\r\n*2\r\n$3\r\n2-5\r\n*-1\r\n";

    #[test]
    fn a_reply_is_found_whole_however_it_arrives() {
        for cut in 0..REPLY.len() {
            let mut scan = FrameScan::default();
            assert_eq!(scan.scan(&REPLY[..cut]).unwrap(), None, "cut at {cut}");
            assert_eq!(scan.scan(REPLY).unwrap(), Some(REPLY.len()), "cut at {cut}");
        }
        // Followed by the start of another, and reused after a reply.
        let mut two = REPLY.to_vec();
        two.extend_from_slice(b"*-1\r\n");
        let mut scan = FrameScan::default();
        assert_eq!(scan.scan(&two).unwrap(), Some(REPLY.len()));
        assert_eq!(scan.scan(&two[REPLY.len()..]).unwrap(), Some(5));
        assert_eq!(scan.scan(b"*0\r\n").unwrap(), Some(4));
        assert_eq!(scan.scan(b"-NOGROUP x\r\n").unwrap(), Some(12));
    }

    #[test]
    fn entries_borrow_the_reply_and_deleted_ones_have_no_fields() {
        let got = read_reply(Bytes::from_static(REPLY)).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].id, "1-0".parse().unwrap());
        assert_eq!(got[0].field(b"data"), Some(&b"{}"[..]));
        assert_eq!(got[1].id, "2-5".parse().unwrap());
        assert_eq!(got[1].fields, None);
        assert!(read_reply(Bytes::from_static(b"*-1\r\n"))
            .unwrap()
            .is_empty());
        assert!(read_reply(Bytes::from_static(b"*0\r\n"))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn the_same_entries_as_the_value_parser() {
        let value = redis::parse_redis_value(REPLY).unwrap();
        assert_eq!(
            super::super::entry::read_reply(value).unwrap(),
            read_reply(Bytes::from_static(REPLY)).unwrap()
        );
    }

    #[test]
    fn error_replies_keep_their_code() {
        let e = read_reply(Bytes::from_static(b"-NOGROUP No such key\r\n")).unwrap_err();
        assert_eq!(e.code(), Some("NOGROUP"));
        let e = read_reply(Bytes::from_static(b"-ERR wrong\r\n")).unwrap_err();
        assert_eq!(e.code(), Some("ERR"));
    }

    #[test]
    fn a_reply_claiming_more_entries_than_it_holds_is_an_error_not_an_allocation() {
        // Counts are read before the elements: a reply (or a bug upstream)
        // claiming 10^17 entries or fields must not reserve room for them.
        for reply in [
            &b"*1\r\n*2\r\n$1\r\ns\r\n*999999999999999999\r\n"[..],
            b"*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n1-0\r\n*999999999999999998\r\n",
        ] {
            assert!(read_reply(Bytes::from_static(reply)).is_err());
        }
    }

    #[test]
    fn malformed_replies_are_errors() {
        let mut scan = FrameScan::default();
        assert!(scan.scan(b"?\r\n").is_err());
        assert!(FrameScan::default().scan(b"$3\r\nabcd\r\n").is_err());
        assert!(FrameScan::default().scan(b"*x\r\n").is_err());
        assert!(read_reply(Bytes::from_static(
            b"*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$1\r\nx\r\n*0\r\n"
        ))
        .is_err());
        assert!(read_reply(Bytes::from_static(
            b"*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n1-0\r\n*1\r\n$1\r\na\r\n"
        ))
        .is_err());
    }
}

#[cfg(test)]
mod props {
    //! Replies come off a socket: any bytes must scan and walk to a length,
    //! `None` or an error, never a panic; real replies come back entry for
    //! entry, however they arrive.
    use super::*;
    use proptest::prelude::*;

    fn bulk(out: &mut Vec<u8>, b: &[u8]) {
        out.extend_from_slice(format!("${}\r\n", b.len()).as_bytes());
        out.extend_from_slice(b);
        out.extend_from_slice(b"\r\n");
    }

    /// The `XREADGROUP` reply Redis would send for `entries`.
    fn encode(stream: &[u8], entries: &[RawEntry]) -> Vec<u8> {
        let mut out = b"*1\r\n*2\r\n".to_vec();
        bulk(&mut out, stream);
        out.extend_from_slice(format!("*{}\r\n", entries.len()).as_bytes());
        for e in entries {
            out.extend_from_slice(b"*2\r\n");
            bulk(&mut out, e.id.to_string().as_bytes());
            match &e.fields {
                None => out.extend_from_slice(b"*-1\r\n"),
                Some(pairs) => {
                    out.extend_from_slice(format!("*{}\r\n", pairs.len() * 2).as_bytes());
                    for (k, v) in pairs {
                        bulk(&mut out, k);
                        bulk(&mut out, v);
                    }
                }
            }
        }
        out
    }

    fn bytes() -> impl Strategy<Value = Bytes> {
        proptest::collection::vec(any::<u8>(), 0..24).prop_map(Bytes::from)
    }

    fn entry() -> impl Strategy<Value = RawEntry> {
        (
            any::<u64>(),
            any::<u64>(),
            proptest::option::of(proptest::collection::vec((bytes(), bytes()), 0..4)),
        )
            .prop_map(|(ms, seq, fields)| RawEntry {
                id: StreamId { ms, seq },
                fields,
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..256)) {
            let mut scan = FrameScan::default();
            if let Ok(Some(len)) = scan.scan(&data) {
                prop_assert!(len <= data.len());
            }
            let _ = read_reply(Bytes::from(data));
        }

        /// A real reply with bytes replaced or counts damaged: still no panic.
        #[test]
        fn damaged_replies_never_panic(
            entries in proptest::collection::vec(entry(), 0..4),
            at in any::<prop::sample::Index>(),
            with in proptest::collection::vec(
                prop_oneof![Just(b'*'), Just(b'$'), Just(b'-'), Just(b'9'), Just(b'\r'), Just(b'\n'), any::<u8>()],
                1..24),
        ) {
            let mut reply = encode(b"s", &entries);
            let i = at.index(reply.len());
            reply.splice(i..(i + 1).min(reply.len()), with);
            let mut scan = FrameScan::default();
            if let Ok(Some(len)) = scan.scan(&reply) {
                prop_assert!(len <= reply.len());
                let _ = read_reply(Bytes::copy_from_slice(&reply[..len]));
            }
            let _ = read_reply(Bytes::from(reply));
        }

        /// Encode → scan (from every prefix) → walk gives back the entries,
        /// the same as the redis crate's value parser does.
        #[test]
        fn replies_round_trip(
            stream in proptest::collection::vec(any::<u8>(), 0..12),
            entries in proptest::collection::vec(entry(), 0..5),
            cut in any::<prop::sample::Index>(),
        ) {
            let reply = encode(&stream, &entries);
            let mut scan = FrameScan::default();
            prop_assert_eq!(scan.scan(&reply[..cut.index(reply.len())]), Ok(None));
            prop_assert_eq!(scan.scan(&reply), Ok(Some(reply.len())));
            let got = read_reply(Bytes::from(reply.clone())).unwrap();
            prop_assert_eq!(&got, &entries);
            let value = redis::parse_redis_value(&reply).unwrap();
            prop_assert_eq!(super::super::entry::read_reply(value).unwrap(), entries);
        }
    }
}
