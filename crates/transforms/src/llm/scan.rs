//! A JSON walker for the hot paths: it steps over values and hands back the
//! text of the ones asked for, building nothing.
//!
//! It accepts exactly the JSON grammar (RFC 8259), as `serde_json` does, and
//! gives up (`None`) on anything it is not sure of. Callers keep the serde
//! reading as their fallback, so giving up is always safe and accepting is
//! only done when `serde_json` would accept too: strings with escapes are
//! checked as `serde_json` checks the strings it skips, keys with escapes are
//! refused (serde matches keys after unescaping), and very deep nesting is
//! refused rather than recursed into.

use switchyard_core::json_string::next_special;

/// Nesting deeper than this is left to serde (whose own limit is 128).
const MAX_DEPTH: u32 = 64;

/// A cursor over JSON text.
pub(crate) struct Scanner<'a> {
    text: &'a str,
    pos: usize,
    depth: u32,
    /// The text is known to be valid JSON: strings need no checking, only
    /// their end found.
    valid: bool,
    /// Whether any string stepped over so far contained an escape.
    pub escapes: bool,
}

const ONES: u64 = u64::from_ne_bytes([1; 8]);
const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);

/// The index of the first `"` or `\` at or after `i`, in text known to be
/// valid JSON: two words at a time first, as keys and short values end
/// before a vector search would have paid for its set-up; then memchr.
fn quote_or_backslash_from(bytes: &[u8], mut i: usize) -> Option<usize> {
    let zero_byte = |x: u64| x.wrapping_sub(ONES) & !x;
    for _ in 0..2 {
        let Some(word) = bytes.get(i..).and_then(<[u8]>::first_chunk::<8>) else {
            break;
        };
        let w = u64::from_le_bytes(*word);
        let hits = (zero_byte(w ^ (ONES * u64::from(b'"')))
            | zero_byte(w ^ (ONES * u64::from(b'\\'))))
            & HIGHS;
        if hits != 0 {
            return Some(i + (hits.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    memchr::memchr2(b'"', b'\\', bytes.get(i..)?).map(|k| i + k)
}

impl<'a> Scanner<'a> {
    pub fn new(text: &'a str) -> Self {
        Self {
            text,
            pos: 0,
            depth: 0,
            valid: false,
            escapes: false,
        }
    }

    /// A scanner over JSON that serde has already validated (a `RawValue`
    /// is only ever made from valid JSON): strings are then only searched
    /// for their end, and nested arrays and objects are stepped over by
    /// their brackets.
    pub fn of_valid(json: &'a serde_json::value::RawValue) -> Self {
        Self {
            valid: true,
            ..Self::new(json.get())
        }
    }

    /// Byte offset of the cursor.
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// Move the cursor to `pos`, a point the caller knows this text reaches in
    /// the same state (see the chunk reader's pattern).
    pub fn seek(&mut self, pos: usize) {
        self.pos = pos;
    }

    /// The text from `start` to the cursor.
    pub fn since(&self, start: usize) -> &'a str {
        &self.text[start..self.pos]
    }

    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    pub fn peek(&self) -> Option<u8> {
        self.bytes().get(self.pos).copied()
    }

    /// Skip JSON whitespace.
    pub fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.pos += 1;
        }
    }

    /// Consume `b` if it is next.
    pub fn eat(&mut self, b: u8) -> bool {
        let hit = self.peek() == Some(b);
        self.pos += usize::from(hit);
        hit
    }

    /// Only whitespace remains.
    pub fn at_end(&mut self) -> bool {
        self.ws();
        self.pos == self.text.len()
    }

    /// A string at the cursor; returns its text between the quotes, escapes
    /// undecoded, and whether it had any.
    pub fn string(&mut self) -> Option<(&'a str, bool)> {
        let bytes = self.bytes();
        if bytes.get(self.pos) != Some(&b'"') {
            return None;
        }
        let start = self.pos + 1;
        let mut i = start;
        let mut escaped = false;
        if self.valid {
            loop {
                i = quote_or_backslash_from(bytes, i)?;
                if bytes[i] == b'"' {
                    self.pos = i + 1;
                    self.escapes |= escaped;
                    return Some((&self.text[start..i], escaped));
                }
                escaped = true;
                i += 2;
            }
        }
        loop {
            i = next_special(bytes, i);
            match *bytes.get(i)? {
                b'"' => {
                    self.pos = i + 1;
                    self.escapes |= escaped;
                    return Some((&self.text[start..i], escaped));
                }
                b'\\' => {
                    escaped = true;
                    i += 1;
                    match *bytes.get(i)? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => i += 1,
                        b'u' => {
                            let hex = bytes.get(i + 1..i + 5)?;
                            if !hex.iter().all(u8::is_ascii_hexdigit) {
                                return None;
                            }
                            i += 5;
                        }
                        _ => return None,
                    }
                }
                // A raw control character: not allowed inside JSON strings.
                _ => return None,
            }
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.pos + word.len();
        (self.bytes().get(self.pos..end)? == word).then(|| self.pos = end)
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        self.pos - start
    }

    fn number(&mut self) -> Option<()> {
        self.eat(b'-');
        match self.peek()? {
            b'0' => {
                self.pos += 1;
                if let Some(b'0'..=b'9') = self.peek() {
                    return None;
                }
            }
            b'1'..=b'9' => {
                self.digits();
            }
            _ => return None,
        }
        if self.eat(b'.') && self.digits() == 0 {
            return None;
        }
        if self.eat(b'e') || self.eat(b'E') {
            if !self.eat(b'+') {
                self.eat(b'-');
            }
            if self.digits() == 0 {
                return None;
            }
        }
        Some(())
    }

    /// Step over one value (the cursor is on its first byte, whitespace
    /// already skipped); returns its text.
    pub fn value(&mut self) -> Option<&'a str> {
        let start = self.pos;
        match self.peek()? {
            b'"' => {
                self.string()?;
            }
            b'{' | b'[' if self.valid => self.container()?,
            b'{' => self.object(|s, _| s.value().map(drop))?,
            b'[' => self.array(|s, _| s.value().map(drop))?,
            b't' => self.literal(b"true")?,
            b'f' => self.literal(b"false")?,
            b'n' => self.literal(b"null")?,
            b'-' | b'0'..=b'9' => self.number()?,
            _ => return None,
        }
        Some(&self.text[start..self.pos])
    }

    /// In valid JSON: step over the array or object at the cursor by its
    /// brackets alone, strings skipped whole, members not looked at. Still
    /// refuses deep nesting and notes escapes, as the member-by-member walk
    /// would.
    fn container(&mut self) -> Option<()> {
        let bytes = self.bytes();
        let mut i = self.pos;
        let mut depth = 0;
        loop {
            match *bytes.get(i)? {
                b'"' => loop {
                    i = quote_or_backslash_from(bytes, i + 1)?;
                    if bytes[i] == b'"' {
                        break;
                    }
                    self.escapes = true;
                    i += 1;
                },
                b'[' | b'{' => {
                    depth += 1;
                    if self.depth + depth > MAX_DEPTH {
                        return None;
                    }
                }
                b']' | b'}' => {
                    depth -= 1;
                    if depth == 0 {
                        self.pos = i + 1;
                        return Some(());
                    }
                }
                _ => {}
            }
            i += 1;
        }
    }

    /// An object at the cursor: calls `member(scanner, key)` with the cursor on
    /// each value, which it must consume. Keys with escapes are refused.
    pub fn object(
        &mut self,
        mut member: impl FnMut(&mut Self, &'a str) -> Option<()>,
    ) -> Option<()> {
        if !self.eat(b'{') {
            return None;
        }
        self.enter()?;
        self.ws();
        if !self.eat(b'}') {
            loop {
                self.ws();
                let (key, escaped) = self.string()?;
                if escaped {
                    return None;
                }
                self.ws();
                if !self.eat(b':') {
                    return None;
                }
                self.ws();
                member(self, key)?;
                self.ws();
                if self.eat(b'}') {
                    break;
                }
                if !self.eat(b',') {
                    return None;
                }
            }
        }
        self.depth -= 1;
        Some(())
    }

    /// An array at the cursor: calls `element(scanner, index)` with the cursor
    /// on each element, which it must consume.
    pub fn array(&mut self, mut element: impl FnMut(&mut Self, usize) -> Option<()>) -> Option<()> {
        if !self.eat(b'[') {
            return None;
        }
        self.enter()?;
        self.ws();
        if !self.eat(b']') {
            let mut index = 0;
            loop {
                self.ws();
                element(self, index)?;
                index += 1;
                self.ws();
                if self.eat(b']') {
                    break;
                }
                if !self.eat(b',') {
                    return None;
                }
            }
        }
        self.depth -= 1;
        Some(())
    }

    fn enter(&mut self) -> Option<()> {
        self.depth += 1;
        (self.depth <= MAX_DEPTH).then_some(())
    }
}

/// Whether the scanner takes `text` as one JSON value.
#[cfg(test)]
pub(crate) fn accepts(text: &str) -> bool {
    let mut s = Scanner::new(text);
    s.ws();
    s.value().is_some() && s.at_end()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn grammar_edges() {
        for good in [
            "0",
            "-0.5e+3",
            "1E9",
            r#""a\"\\\/\b\f\n\r\tz\u00e9""#,
            " {\"a\" : [1, {}, [], null, true, false] }\n",
            "[[[]]]",
        ] {
            assert!(accepts(good), "{good}");
        }
        for bad in [
            "01",
            "-",
            "1.",
            "1e",
            ".5",
            "+1",
            "[1,]",
            "{\"a\":1,}",
            "{\"a\"}",
            "\"\t\"",
            "\"\\x\"",
            "\"\\u12\"",
            "tru",
            "nul",
            "[1 2]",
            "{1:2}",
            "1 2",
            "\"",
        ] {
            assert!(!accepts(bad), "{bad}");
        }
    }

    #[test]
    fn deep_nesting_is_left_to_serde() {
        let deep = format!("{}{}", "[".repeat(100), "]".repeat(100));
        assert!(!accepts(&deep));
        assert!(serde_json::from_str::<serde::de::IgnoredAny>(&deep).is_ok());
    }

    /// JSON-ish text built from tokens, so that a good share of it is valid.
    fn tokens() -> impl Strategy<Value = String> {
        let token = prop_oneof![
            Just("{"),
            Just("}"),
            Just("["),
            Just("]"),
            Just(","),
            Just(":"),
            Just(" "),
            Just("\"a\""),
            Just("\"\\u00e9\\n\""),
            Just("\"\\q\""),
            Just("\"\u{1}\""),
            Just("1"),
            Just("-0"),
            Just("01"),
            Just("1.5e-3"),
            Just("2."),
            Just("true"),
            Just("null"),
            Just("nul"),
        ];
        proptest::collection::vec(token, 0..16).prop_map(|t| t.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20000))]

        /// The scanner and serde_json agree on what is JSON.
        #[test]
        fn agrees_with_serde(text in tokens()) {
            let serde = serde_json::from_str::<serde::de::IgnoredAny>(&text).is_ok();
            prop_assert_eq!(accepts(&text), serde, "{:?}", text);
        }

        /// Over valid JSON, the trusting scanner steps over exactly the value.
        #[test]
        fn trusting_scanner_steps_over_the_value(text in tokens()) {
            if let Ok(raw) = serde_json::from_str::<&serde_json::value::RawValue>(&text) {
                let mut s = Scanner::of_valid(raw);
                prop_assert_eq!(s.value(), Some(raw.get()));
                prop_assert!(s.at_end());
            }
        }
    }
}
