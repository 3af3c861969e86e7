//! The one JSON string writer: every JSON string Switchyard writes by hand
//! (log records, HTTP exchanges, LLM payloads, Loki's JSON push) goes
//! through [`push_str`] or [`write_str`].
//!
//! The output is byte for byte what `serde_json` writes — documents,
//! fixtures and deduplicating backends see the same text whichever way it
//! was produced — but the string is scanned with word-at-a-time and vector
//! searches: `serde_json` looks every byte up in a table, which made escaping
//! the largest single cost of the Redis → file path with 2 KB bodies. The
//! tests compare with `serde_json` over arbitrary strings.

const ONES: u64 = u64::from_ne_bytes([1; 8]);
const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);

/// The high bit of the lowest byte of `w` that ends a run of plain string
/// text (`"`, `\` or a control character) is set; bits above it may be
/// set spuriously (borrows), which is why only the lowest one is used.
fn special(w: u64) -> u64 {
    let quote = w ^ (ONES * u64::from(b'"'));
    let slash = w ^ (ONES * u64::from(b'\\'));
    let zero_byte = |x: u64| x.wrapping_sub(ONES) & !x;
    (zero_byte(quote) | zero_byte(slash) | (w.wrapping_sub(ONES * 0x20) & !w)) & HIGHS
}

/// The index of the first `"`, `\` or control byte at or after `i` (or the
/// length): eight bytes per step, as most strings are plain text.
fn special_from(bytes: &[u8], mut i: usize) -> usize {
    while let Some(word) = bytes.get(i..).and_then(<[u8]>::first_chunk::<8>) {
        let hits = special(u64::from_le_bytes(*word));
        if hits != 0 {
            return i + (hits.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while let Some(&b) = bytes.get(i) {
        if b == b'"' || b == b'\\' || b < 0x20 {
            break;
        }
        i += 1;
    }
    i
}

/// The index of the first byte at or after `i` that needs escaping in a JSON
/// string — `"`, `\` or a control character — or the length.
///
/// Most strings have none: one vector search for `"` and `\`, and one pass
/// taking the minimum of the bytes in between (which compiles to vector
/// minimums) to rule out control characters; only when there is one does
/// the word-at-a-time search find it. Several times faster than a byte loop
/// on strings of a few hundred bytes or more; the first two words are still
/// looked at one by one, as keys and short values end there, before a
/// vector search would have paid for its set-up. JSON scanners use it too,
/// to find where a string's plain text ends.
pub fn next_special(bytes: &[u8], mut i: usize) -> usize {
    for _ in 0..2 {
        let Some(word) = bytes.get(i..).and_then(<[u8]>::first_chunk::<8>) else {
            return special_from(bytes, i);
        };
        let hits = special(u64::from_le_bytes(*word));
        if hits != 0 {
            return i + (hits.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    let rest = &bytes[i..];
    let end = memchr::memchr2(b'"', b'\\', rest).unwrap_or(rest.len());
    if rest[..end].iter().fold(u8::MAX, |low, &b| low.min(b)) >= 0x20 {
        return i + end;
    }
    special_from(bytes, i)
}

/// Where escaped text goes: a `String` or a byte buffer.
trait Out {
    fn reserve_more(&mut self, n: usize);
    fn put(&mut self, s: &str);
}

impl Out for String {
    fn reserve_more(&mut self, n: usize) {
        self.reserve(n);
    }
    fn put(&mut self, s: &str) {
        self.push_str(s);
    }
}

impl Out for Vec<u8> {
    fn reserve_more(&mut self, n: usize) {
        self.reserve(n);
    }
    fn put(&mut self, s: &str) {
        self.extend_from_slice(s.as_bytes());
    }
}

/// The escape of each ASCII control character, `\u00XX` with lower-case
/// hex where JSON has no short form.
fn control(b: u8) -> [u8; 6] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    [
        b'\\',
        b'u',
        b'0',
        b'0',
        HEX[usize::from(b >> 4)],
        HEX[usize::from(b & 0xf)],
    ]
}

fn escape_into<O: Out>(out: &mut O, s: &str) {
    out.reserve_more(s.len() + 2);
    out.put("\"");
    let bytes = s.as_bytes();
    let mut start = 0;
    loop {
        let i = next_special(bytes, start);
        // Every byte that needs escaping is ASCII, so `i` is a char boundary.
        out.put(&s[start..i]);
        let Some(&b) = bytes.get(i) else { break };
        match b {
            b'"' => out.put("\\\""),
            b'\\' => out.put("\\\\"),
            b'\n' => out.put("\\n"),
            b'\r' => out.put("\\r"),
            b'\t' => out.put("\\t"),
            0x08 => out.put("\\b"),
            0x0c => out.put("\\f"),
            _ => {
                let esc = control(b);
                // Only ASCII was written into `esc`.
                out.put(std::str::from_utf8(&esc).expect("ASCII"));
            }
        }
        start = i + 1;
    }
    out.put("\"");
}

/// Append `s` as a JSON string (with its quotes) to `out`: `"` and `\`
/// escaped with a backslash, the control characters with their short form
/// where JSON has one and as `\u00XX` (lower-case hex) otherwise;
/// everything else verbatim — exactly as `serde_json` writes it.
pub fn push_str(out: &mut String, s: &str) {
    escape_into(out, s);
}

/// [`push_str`] into a byte buffer.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    escape_into(out, s);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn escaped(s: &str) -> String {
        let mut out = String::new();
        push_str(&mut out, s);
        let mut bytes = Vec::new();
        write_str(&mut bytes, s);
        assert_eq!(out.as_bytes(), bytes, "both forms write the same");
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
    fn next_special_finds_the_first_byte_to_escape() {
        let long = "x".repeat(100);
        for (text, want) in [
            ("", 0),
            ("abc", 3),
            ("a\"b", 1),
            ("abcdefghijklmnop\\", 16),
            (&format!("{long}\u{1}"), 100),
            (&format!("{long}é\t"), 102),
        ] {
            assert_eq!(next_special(text.as_bytes(), 0), want, "{text:?}");
        }
        assert_eq!(next_special(b"\"ab\"", 1), 3);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        /// Any text, with escapes at every position relative to the 8-byte
        /// steps, and non-ASCII characters next to them.
        #[test]
        fn strings_as_serde_writes_them(s in "(\\PC|[\"\\\\\\x00-\\x1f\\x7f]|é|😀){0,40}") {
            prop_assert_eq!(escaped(&s), serde_json::to_string(&s).unwrap());
        }

        /// Whatever the string, serde reads back exactly the string written.
        #[test]
        fn any_string_parses_back_to_itself(s in any::<String>()) {
            let text = escaped(&s);
            prop_assert_eq!(serde_json::from_str::<String>(&text).unwrap(), s);
        }

        /// Long strings take the vector path: still what serde writes.
        #[test]
        fn long_strings_parse_back(s in "(\\PC|[\"\\\\\\x00-\\x1f]){0,400}") {
            let text = escaped(&s);
            prop_assert_eq!(&text, &serde_json::to_string(&s).unwrap());
            prop_assert_eq!(serde_json::from_str::<String>(&text).unwrap(), s);
        }
    }
}
