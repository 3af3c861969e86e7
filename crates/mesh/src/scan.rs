//! Reading protobuf messages in place, as strictly as prost decodes them:
//! the pieces the hop's relaying needs (see `call` and `relay`).

use prost::encoding::{decode_key, decode_varint, skip_field, DecodeContext, WireType};
use prost::DecodeError;
use std::fmt;

/// Why a message is not well formed.
#[derive(Debug)]
pub(crate) struct Malformed(String);

impl From<DecodeError> for Malformed {
    fn from(e: DecodeError) -> Self {
        Self(e.to_string())
    }
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The bytes of a length-delimited field, taken off `buf`.
pub(crate) fn field<'a>(wire_type: WireType, buf: &mut &'a [u8]) -> Result<&'a [u8], Malformed> {
    expect(wire_type, WireType::LengthDelimited)?;
    let len = decode_varint(buf)?;
    if len > buf.len() as u64 {
        return Err(Malformed("buffer underflow".into()));
    }
    let (field, rest) = buf.split_at(len as usize);
    *buf = rest;
    Ok(field)
}

/// A varint field's value, taken off `buf`.
pub(crate) fn varint(wire_type: WireType, buf: &mut &[u8]) -> Result<u64, Malformed> {
    expect(wire_type, WireType::Varint)?;
    Ok(decode_varint(buf)?)
}

/// Skip a field this reader does not need.
pub(crate) fn skip(wire_type: WireType, tag: u32, buf: &mut &[u8]) -> Result<(), Malformed> {
    Ok(skip_field(wire_type, tag, buf, DecodeContext::default())?)
}

fn expect(actual: WireType, expected: WireType) -> Result<(), Malformed> {
    if actual == expected {
        Ok(())
    } else {
        Err(Malformed(format!(
            "invalid wire type: {actual:?} (expected {expected:?})"
        )))
    }
}

/// A string field's bytes, checked to be UTF-8.
pub(crate) fn text(bytes: &[u8]) -> Result<&str, Malformed> {
    std::str::from_utf8(bytes)
        .map_err(|_| Malformed("invalid string value: data is not UTF-8 encoded".into()))
}

/// A `google.protobuf.Any`: type_url = 1 (string), value = 2 (bytes).
pub(crate) fn any(mut buf: &[u8]) -> Result<(), Malformed> {
    while !buf.is_empty() {
        let (tag, wire_type) = decode_key(&mut buf)?;
        match tag {
            1 => drop(text(field(wire_type, &mut buf)?)?),
            2 => drop(field(wire_type, &mut buf)?),
            _ => skip(wire_type, tag, &mut buf)?,
        }
    }
    Ok(())
}

/// Test inputs for a reader that must accept exactly what prost accepts:
/// every prefix of `good`, each of its bytes replaced by values that are
/// keys, lengths or UTF-8 breakers, and `good` with each of `extras`
/// appended.
#[cfg(test)]
pub(crate) fn damaged(good: &[u8], extras: &[&[u8]]) -> Vec<Vec<u8>> {
    let mut cases: Vec<Vec<u8>> = (0..=good.len()).map(|n| good[..n].to_vec()).collect();
    for i in 0..good.len() {
        for b in [
            0x00, 0x01, 0x02, 0x08, 0x0A, 0x12, 0x1A, 0x7F, 0x80, 0xC3, 0xFF,
        ] {
            let mut bad = good.to_vec();
            bad[i] = b;
            cases.push(bad);
        }
    }
    for extra in extras {
        let mut with = good.to_vec();
        with.extend_from_slice(extra);
        cases.push(with);
    }
    cases
}
