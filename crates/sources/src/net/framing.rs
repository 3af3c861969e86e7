//! Splitting a byte stream into messages: newline-delimited, or (for syslog
//! over TCP, RFC 6587) octet-counted `LEN SP MSG` when a frame starts with a
//! digit. Frames are bounded: an over-long line is cut at the bound (the rest
//! up to its newline is discarded), an over-long counted frame is skipped.

/// Stream framer with a bounded buffer.
pub struct Framer {
    buf: Vec<u8>,
    max: usize,
    octet_counting: bool,
    /// Bytes of an over-long counted frame still to skip.
    skip: usize,
    /// Discard up to the next newline (the rest of an over-long line).
    skip_line: bool,
    /// Frames cut or skipped for being too long.
    pub too_long: u64,
}

impl Framer {
    /// A framer for frames up to `max` bytes; `octet_counting` enables the
    /// `LEN SP MSG` form.
    pub fn new(max: usize, octet_counting: bool) -> Self {
        Self {
            buf: Vec::new(),
            max: max.max(1),
            octet_counting,
            skip: 0,
            skip_line: false,
            too_long: 0,
        }
    }

    /// Feed bytes; complete frames are appended to `out`.
    pub fn feed(&mut self, data: &[u8], out: &mut Vec<String>) {
        self.buf.extend_from_slice(data);
        let mut at = 0;
        loop {
            let rest = &self.buf[at..];
            if rest.is_empty() {
                break;
            }
            if self.skip > 0 {
                let n = self.skip.min(rest.len());
                self.skip -= n;
                at += n;
                continue;
            }
            if self.skip_line {
                match memchr::memchr(b'\n', rest) {
                    Some(i) => {
                        at += i + 1;
                        self.skip_line = false;
                        continue;
                    }
                    None => {
                        at = self.buf.len();
                        break;
                    }
                }
            }
            if self.octet_counting && rest[0].is_ascii_digit() {
                match counted(rest) {
                    Counted::Frame { header, len } if len > self.max => {
                        self.too_long += 1;
                        self.skip = len;
                        at += header;
                        continue;
                    }
                    Counted::Frame { header, len } => {
                        if rest.len() < header + len {
                            break;
                        }
                        push(out, &rest[header..header + len]);
                        at += header + len;
                        continue;
                    }
                    Counted::NeedMore => break,
                    Counted::Plain => {}
                }
            }
            match memchr::memchr(b'\n', rest) {
                Some(i) if i <= self.max => {
                    push(out, &rest[..i]);
                    at += i + 1;
                }
                found => {
                    if found.is_none() && rest.len() <= self.max {
                        break;
                    }
                    // Longer than allowed: keep the first `max` bytes.
                    self.too_long += 1;
                    push(out, &rest[..self.max]);
                    at += self.max;
                    self.skip_line = true;
                }
            }
        }
        self.buf.drain(..at);
    }

    /// The stream ended: what is left is the last frame.
    pub fn finish(&mut self, out: &mut Vec<String>) {
        if !self.skip_line && self.skip == 0 {
            push(out, &self.buf);
        }
        self.buf.clear();
    }
}

enum Counted {
    Frame { header: usize, len: usize },
    NeedMore,
    Plain,
}

/// `LEN SP` at the start of `s`.
fn counted(s: &[u8]) -> Counted {
    let digits = s.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits > 9 {
        return Counted::Plain;
    }
    match s.get(digits) {
        None => Counted::NeedMore,
        Some(b' ') => match std::str::from_utf8(&s[..digits])
            .ok()
            .and_then(|d| d.parse().ok())
        {
            Some(len) => Counted::Frame {
                header: digits + 1,
                len,
            },
            None => Counted::Plain,
        },
        Some(_) => Counted::Plain,
    }
}

fn push(out: &mut Vec<String>, frame: &[u8]) {
    let frame = frame.strip_suffix(b"\n").unwrap_or(frame);
    let frame = frame.strip_suffix(b"\r").unwrap_or(frame);
    if frame.is_empty() {
        return;
    }
    out.push(match std::str::from_utf8(frame) {
        Ok(s) => s.to_owned(),
        Err(_) => String::from_utf8_lossy(frame).into_owned(),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(f: &mut Framer, pieces: &[&[u8]]) -> Vec<String> {
        let mut out = Vec::new();
        for p in pieces {
            f.feed(p, &mut out);
        }
        out
    }

    #[test]
    fn newline_frames_across_reads_and_crlf() {
        let mut f = Framer::new(100, false);
        let out = frames(&mut f, &[b"one\r\ntw", b"o\n\nthr", b"ee"]);
        assert_eq!(out, ["one", "two"]);
        let mut rest = Vec::new();
        f.finish(&mut rest);
        assert_eq!(rest, ["three"]);
    }

    #[test]
    fn octet_counted_and_newline_frames_mix() {
        let mut f = Framer::new(100, true);
        let out = frames(
            &mut f,
            &[b"12 <13>1 - - x", b"y11 <13>hello\nz\n<14>line\n"],
        );
        assert_eq!(out, ["<13>1 - - xy", "<13>hello\nz", "<14>line"]);
    }

    #[test]
    fn over_long_frames_are_bounded() {
        let mut f = Framer::new(5, true);
        let out = frames(&mut f, &[b"abcdefgh", b"ij\nok\n", b"9 123456789<1>x\n"]);
        assert_eq!(out, ["abcde", "ok", "<1>x"]);
        assert_eq!(f.too_long, 2);
        assert!(f.buf.is_empty());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(1000))]

        /// Any bytes in any pieces: no panic, the buffer stays bounded, and
        /// no frame is longer than the bound (before text conversion).
        #[test]
        fn any_bytes_any_pieces_stay_bounded(
            data in proptest::collection::vec(proptest::num::u8::ANY, 0..600),
            cuts in proptest::collection::vec(0usize..600, 0..8),
            max in 1usize..64,
            octets in proptest::bool::ANY,
        ) {
            let mut f = Framer::new(max, octets);
            let mut out = Vec::new();
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(data.len())).collect();
            cuts.sort_unstable();
            let mut at = 0;
            for c in cuts.into_iter().chain([data.len()]) {
                f.feed(&data[at..c], &mut out);
                at = c;
                proptest::prop_assert!(f.buf.len() <= max + 10, "buffer {} > {}", f.buf.len(), max + 10);
            }
            f.finish(&mut out);
            for frame in &out {
                // U+FFFD stands for each invalid byte: count it as one byte.
                let raw = frame.chars().map(|c| if c == '\u{fffd}' { 1 } else { c.len_utf8() }).sum::<usize>();
                proptest::prop_assert!(raw <= max, "frame of {raw} bytes > {max}");
            }
        }

        /// Newline framing does not depend on where the reads end.
        #[test]
        fn newline_frames_do_not_depend_on_read_boundaries(
            lines in proptest::collection::vec("[^\n\r]{0,20}", 0..10),
            cut in 0usize..400,
        ) {
            let data = lines.iter().map(|l| format!("{l}\n")).collect::<String>().into_bytes();
            let cut = cut.min(data.len());
            let whole = {
                let mut f = Framer::new(1024, false);
                let mut out = Vec::new();
                f.feed(&data, &mut out);
                f.finish(&mut out);
                out
            };
            let mut f = Framer::new(1024, false);
            let mut out = Vec::new();
            f.feed(&data[..cut], &mut out);
            f.feed(&data[cut..], &mut out);
            f.finish(&mut out);
            proptest::prop_assert_eq!(out, whole);
        }
    }
}
