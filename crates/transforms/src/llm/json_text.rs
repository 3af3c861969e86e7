//! JSON strings and integers written exactly as `serde_json` writes them,
//! but scanning a string with vector searches: `serde_json` looks every byte
//! up in a table, which made escaping the payload's strings the largest
//! single cost of the Redis → file path with 2 KB bodies.
//!
//! Exactness matters: payloads written here must be byte-identical to the
//! serde form, so that documents, fixtures and deduplicating backends see the
//! same text whichever way it was produced. The tests compare with
//! `serde_json` over arbitrary strings.

use super::scan::next_special;

/// Append `s` as a JSON string (with its quotes): `"` and `\` escaped with a
/// backslash, the control characters with their short form where JSON has
/// one and as `\u00XX` (lower-case hex) otherwise; everything else verbatim.
pub(crate) fn push_str(out: &mut String, s: &str) {
    out.reserve(s.len() + 2);
    out.push('"');
    let bytes = s.as_bytes();
    let mut start = 0;
    loop {
        let i = next_special(bytes, start);
        // Every byte that needs escaping is ASCII, so `i` is a char boundary.
        out.push_str(&s[start..i]);
        let Some(&b) = bytes.get(i) else { break };
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x08 => out.push_str("\\b"),
            0x0c => out.push_str("\\f"),
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.push_str("\\u00");
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 0xf)]));
            }
        }
        start = i + 1;
    }
    out.push('"');
}

/// Append a signed integer in decimal.
pub(crate) fn push_i64(out: &mut String, n: i64) {
    if n < 0 {
        out.push('-');
    }
    push_u64(out, n.unsigned_abs());
}

/// Append an unsigned integer in decimal.
pub(crate) fn push_u64(out: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &d in &digits[at..] {
        out.push(char::from(d));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn escaped(s: &str) -> String {
        let mut out = String::new();
        push_str(&mut out, s);
        out
    }

    #[test]
    fn every_ascii_byte_as_serde_writes_it() {
        for b in 0u8..=127 {
            let s = format!("a{}b", char::from(b));
            assert_eq!(escaped(&s), serde_json::to_string(&s).unwrap(), "byte {b}");
        }
        assert_eq!(escaped(""), r#""""#);
    }

    #[test]
    fn integers_as_serde_writes_them() {
        for n in [0, 1, -1, 9, 10, 1234, i64::MAX, i64::MIN] {
            let mut out = String::new();
            push_i64(&mut out, n);
            assert_eq!(out, n.to_string());
        }
        let mut out = String::new();
        push_u64(&mut out, u64::MAX);
        assert_eq!(out, u64::MAX.to_string());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        /// Any text, with escapes at every position relative to the 8-byte
        /// steps, and non-ASCII characters next to them.
        #[test]
        fn strings_as_serde_writes_them(s in "(\\PC|[\"\\\\\\x00-\\x1f\\x7f]|é|😀){0,40}") {
            prop_assert_eq!(escaped(&s), serde_json::to_string(&s).unwrap());
        }

        #[test]
        fn any_integer(n in any::<i64>(), u in any::<u64>()) {
            let mut out = String::new();
            push_i64(&mut out, n);
            out.push(' ');
            push_u64(&mut out, u);
            prop_assert_eq!(out, format!("{n} {u}"));
        }
    }
}
