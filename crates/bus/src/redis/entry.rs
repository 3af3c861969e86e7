//! Stream entries as Redis returns them (RESP arrays), parsed by hand from
//! `redis::Value` (`XRANGE`, `XAUTOCLAIM`; `XREADGROUP` replies are taken
//! apart from their bytes by [`resp`](super::resp)): the crate's typed
//! stream replies cannot represent the entries a poison-tolerant reader must
//! see — a pending entry that was deleted comes back as `[id, nil]`, and
//! field values need not be UTF-8.

use bytes::Bytes;
use redis::Value;
use std::fmt;
use std::str::FromStr;

/// A stream entry id, `<ms>-<seq>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamId {
    /// Milliseconds part: the server time when it was added.
    pub ms: u64,
    /// Sequence within that millisecond.
    pub seq: u64,
}

impl StreamId {
    /// `0-0`, the id before every entry.
    pub const ZERO: StreamId = StreamId { ms: 0, seq: 0 };
}

impl FromStr for StreamId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (ms, seq) = s.split_once('-').unwrap_or((s, "0"));
        match (ms.parse(), seq.parse()) {
            (Ok(ms), Ok(seq)) => Ok(Self { ms, seq }),
            _ => Err(format!("`{s}` is not a stream id")),
        }
    }
}

/// As a command argument, written without the formatting machinery: an
/// `XACK` carries a thousand ids, and `to_string` cost about 1 000
/// instructions each (a tenth of the argument's share of the ack path).
impl redis::ToRedisArgs for StreamId {
    fn write_redis_args<W>(&self, out: &mut W)
    where
        W: ?Sized + redis::RedisWrite,
    {
        let mut ms = itoa::Buffer::new();
        let mut seq = itoa::Buffer::new();
        let (ms, seq) = (
            ms.format(self.ms).as_bytes(),
            seq.format(self.seq).as_bytes(),
        );
        // `u64::MAX` is 20 digits: 20 + 1 + 20.
        let mut arg = [0u8; 41];
        arg[..ms.len()].copy_from_slice(ms);
        arg[ms.len()] = b'-';
        arg[ms.len() + 1..][..seq.len()].copy_from_slice(seq);
        out.write_arg(&arg[..ms.len() + 1 + seq.len()]);
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// One entry: its id and its field/value pairs, or `None` when the entry was
/// deleted (trimmed) while it was pending.
#[derive(Debug, Clone, PartialEq)]
pub struct RawEntry {
    /// The entry id.
    pub id: StreamId,
    /// Field/value pairs in stream order (slices of the reply they came in).
    pub fields: Option<Vec<(Bytes, Bytes)>>,
}

impl RawEntry {
    /// The value of the first field named `name`.
    pub fn field(&self, name: &[u8]) -> Option<&[u8]> {
        self.fields
            .as_ref()?
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| &v[..])
    }
}

fn bytes(v: Value) -> Result<Vec<u8>, String> {
    match v {
        Value::BulkString(b) => Ok(b),
        Value::SimpleString(s) => Ok(s.into_bytes()),
        Value::Int(i) => Ok(i.to_string().into_bytes()),
        other => Err(format!("expected a string, got {other:?}")),
    }
}

fn array(v: Value) -> Result<Vec<Value>, String> {
    match v {
        Value::Array(a) | Value::Set(a) => Ok(a),
        other => Err(format!("expected an array, got {other:?}")),
    }
}

/// Parse a stream id reply.
pub fn stream_id(v: Value) -> Result<StreamId, String> {
    String::from_utf8(bytes(v)?)
        .map_err(|_| "stream id is not UTF-8".to_string())?
        .parse()
}

/// `[[id, [f, v, ...]], ...]` — the entry list of XRANGE, XREADGROUP and
/// XAUTOCLAIM.
pub fn entries(v: Value) -> Result<Vec<RawEntry>, String> {
    array(v)?
        .into_iter()
        .map(|e| {
            let mut parts = array(e)?.into_iter();
            let id = stream_id(parts.next().ok_or("entry without id")?)?;
            let fields = match parts.next() {
                None | Some(Value::Nil) => None,
                Some(f) => {
                    let flat = array(f)?;
                    let mut pairs = Vec::with_capacity(flat.len() / 2);
                    let mut it = flat.into_iter();
                    while let Some(k) = it.next() {
                        let v = it.next().ok_or("odd number of field items")?;
                        pairs.push((Bytes::from(bytes(k)?), Bytes::from(bytes(v)?)));
                    }
                    Some(pairs)
                }
            };
            Ok(RawEntry { id, fields })
        })
        .collect()
}

/// The XREADGROUP reply for one stream: nil (timeout) or
/// `[[stream, entries]]`.
pub fn read_reply(v: Value) -> Result<Vec<RawEntry>, String> {
    match v {
        Value::Nil => Ok(Vec::new()),
        Value::Map(m) => match m.into_iter().next() {
            Some((_, e)) => entries(e),
            None => Ok(Vec::new()),
        },
        v => match array(v)?.into_iter().next() {
            None => Ok(Vec::new()),
            Some(stream) => {
                let mut parts = array(stream)?.into_iter();
                let _name = parts.next();
                entries(parts.next().ok_or("stream without entries")?)
            }
        },
    }
}

/// The XAUTOCLAIM reply: next cursor, claimed entries, and (Redis ≥ 7) the
/// ids that were pending but no longer exist.
pub struct AutoClaim {
    /// Where the next scan starts; `0-0` when the scan is complete.
    pub cursor: StreamId,
    /// Entries now owned by the caller.
    pub entries: Vec<RawEntry>,
    /// Pending ids whose entries were trimmed; Redis dropped them from the PEL.
    pub deleted: Vec<StreamId>,
}

/// Parse an XAUTOCLAIM reply.
pub fn autoclaim_reply(v: Value) -> Result<AutoClaim, String> {
    let mut parts = array(v)?.into_iter();
    let cursor = stream_id(parts.next().ok_or("XAUTOCLAIM without cursor")?)?;
    let entries = entries(parts.next().ok_or("XAUTOCLAIM without entries")?)?;
    let deleted = match parts.next() {
        Some(d) => array(d)?
            .into_iter()
            .map(stream_id)
            .collect::<Result<_, _>>()?,
        None => Vec::new(),
    };
    Ok(AutoClaim {
        cursor,
        entries,
        deleted,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn ids_order_numerically_and_round_trip() {
        let a: StreamId = "9-1".parse().unwrap();
        let b: StreamId = "10-0".parse().unwrap();
        assert!(a < b);
        assert_eq!(b.to_string(), "10-0");
        assert!("x-1".parse::<StreamId>().is_err());
    }

    #[test]
    fn an_id_as_a_command_argument_is_its_text() {
        use redis::ToRedisArgs;
        for id in [
            StreamId::ZERO,
            StreamId {
                ms: 1_700_000_000_123,
                seq: 7,
            },
            StreamId {
                ms: u64::MAX,
                seq: u64::MAX,
            },
        ] {
            assert_eq!(id.to_redis_args(), vec![id.to_string().into_bytes()]);
        }
    }

    #[test]
    fn deleted_pending_entry_has_no_fields() {
        let reply = Value::Array(vec![Value::Array(vec![
            bulk("s"),
            Value::Array(vec![
                Value::Array(vec![
                    bulk("1-0"),
                    Value::Array(vec![bulk("data"), bulk("{}")]),
                ]),
                Value::Array(vec![bulk("2-0"), Value::Nil]),
            ]),
        ])]);
        let got = read_reply(reply).unwrap();
        assert_eq!(got[0].field(b"data"), Some(&b"{}"[..]));
        assert_eq!(got[1].fields, None);
        assert!(read_reply(Value::Nil).unwrap().is_empty());
    }
}

#[cfg(test)]
mod props {
    //! Ids and entry lists come from the server: any reply must parse or be
    //! refused, never panic, and every id reads back as written.
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn ids_round_trip_and_any_text_parses_or_is_refused(
            ms in any::<u64>(),
            seq in any::<u64>(),
            text in any::<String>(),
        ) {
            let id = StreamId { ms, seq };
            prop_assert_eq!(id.to_string().parse::<StreamId>(), Ok(id));
            let _ = text.parse::<StreamId>();
        }

        #[test]
        fn arbitrary_replies_never_panic(data in proptest::collection::vec(any::<u8>(), 0..256)) {
            if let Ok(v) = redis::parse_redis_value(&data) {
                let _ = entries(v.clone());
                let _ = read_reply(v.clone());
                let _ = autoclaim_reply(v);
            }
        }
    }
}
