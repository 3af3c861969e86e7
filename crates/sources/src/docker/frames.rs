//! Decoding a container's log stream into lines.
//!
//! Without a TTY, the Engine API multiplexes stdout and stderr into one byte
//! stream of frames: an 8-byte header (stream type, three zero bytes, the
//! payload length as a big-endian `u32`) and the payload. Frames and lines
//! are unrelated to the HTTP chunks that carry them, so the decoder is a
//! small state machine fed whatever bytes arrive: a header split over two
//! chunks, or a payload spread over many, decode the same. Payloads are never
//! held whole, only the current line is, so a huge frame costs no memory.
//! With a TTY the stream is raw text from the terminal, all of it stdout.

/// Which output a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

impl Output {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stdout => "stdout",
            Self::Stderr => "stderr",
        }
    }
}

/// A frame header the decoder cannot accept.
#[derive(Debug, PartialEq, Eq)]
pub struct BadFrame(pub String);

/// Largest frame payload accepted: the Engine cuts log messages at 16 KiB,
/// so a far larger length means the stream is not what it claims to be.
pub const MAX_FRAME: u32 = 16 * 1024 * 1024;

/// Turns stream bytes into complete lines, per output.
pub struct Decoder {
    multiplexed: bool,
    header: [u8; 8],
    header_len: usize,
    /// Output and bytes left of the frame being read.
    frame: Option<(Output, u32)>,
    stdout: LineBuf,
    stderr: LineBuf,
}

/// One output's partial line, bounded.
struct LineBuf {
    bytes: Vec<u8>,
    max: usize,
}

impl Decoder {
    /// A decoder for a multiplexed (no TTY) or raw (TTY) stream; lines longer
    /// than `max_line` are cut into pieces of that length.
    pub fn new(multiplexed: bool, max_line: usize) -> Self {
        let buf = || LineBuf {
            bytes: Vec::new(),
            max: max_line.max(1),
        };
        Self {
            multiplexed,
            header: [0; 8],
            header_len: 0,
            frame: None,
            stdout: buf(),
            stderr: buf(),
        }
    }

    /// Feed `data`; every completed line goes to `out` with its output. The
    /// count of lines cut at `max_line` is returned.
    pub fn feed(
        &mut self,
        mut data: &[u8],
        out: &mut impl FnMut(Output, &[u8]),
    ) -> Result<u64, BadFrame> {
        let mut cut = 0;
        if !self.multiplexed {
            return Ok(self.stdout.push(data, Output::Stdout, out));
        }
        while !data.is_empty() {
            match &mut self.frame {
                None => {
                    let take = (8 - self.header_len).min(data.len());
                    self.header[self.header_len..self.header_len + take]
                        .copy_from_slice(&data[..take]);
                    self.header_len += take;
                    data = &data[take..];
                    if self.header_len == 8 {
                        self.header_len = 0;
                        self.frame = Some(parse_header(&self.header)?);
                    }
                }
                Some((output, left)) => {
                    let take = (*left as usize).min(data.len());
                    let output = *output;
                    *left -= take as u32;
                    if *left == 0 {
                        self.frame = None;
                    }
                    let buf = match output {
                        Output::Stdout => &mut self.stdout,
                        Output::Stderr => &mut self.stderr,
                    };
                    cut += buf.push(&data[..take], output, out);
                    data = &data[take..];
                }
            }
        }
        Ok(cut)
    }
}

fn parse_header(h: &[u8; 8]) -> Result<(Output, u32), BadFrame> {
    let output = match h[0] {
        1 => Output::Stdout,
        2 => Output::Stderr,
        other => return Err(BadFrame(format!("unknown stream type {other}"))),
    };
    let len = u32::from_be_bytes([h[4], h[5], h[6], h[7]]);
    if len > MAX_FRAME {
        return Err(BadFrame(format!(
            "frame of {len} bytes (limit {MAX_FRAME})"
        )));
    }
    Ok((output, len))
}

impl LineBuf {
    fn push(
        &mut self,
        mut data: &[u8],
        output: Output,
        out: &mut impl FnMut(Output, &[u8]),
    ) -> u64 {
        let mut cut = 0;
        while !data.is_empty() {
            let room = self.max - self.bytes.len();
            match memchr::memchr(b'\n', data) {
                Some(nl) if nl <= room => {
                    self.bytes.extend_from_slice(&data[..nl]);
                    let line = self.bytes.strip_suffix(b"\r").unwrap_or(&self.bytes);
                    out(output, line);
                    self.bytes.clear();
                    data = &data[nl + 1..];
                }
                // A chunk that exactly fills the line is kept: whether it
                // is cut depends on the next byte, which may come later.
                _ if data.len() <= room => {
                    self.bytes.extend_from_slice(data);
                    data = &[];
                }
                _ => {
                    self.bytes.extend_from_slice(&data[..room]);
                    out(output, &self.bytes);
                    self.bytes.clear();
                    cut += 1;
                    data = &data[room..];
                }
            }
        }
        cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, payload: &str) -> Vec<u8> {
        let mut f = vec![kind, 0, 0, 0];
        f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        f.extend_from_slice(payload.as_bytes());
        f
    }

    fn decode(d: &mut Decoder, pieces: &[&[u8]]) -> Vec<(Output, String)> {
        let mut got = Vec::new();
        for p in pieces {
            d.feed(p, &mut |o, l| {
                got.push((o, String::from_utf8_lossy(l).into_owned()))
            })
            .unwrap();
        }
        got
    }

    #[test]
    fn frames_split_at_every_byte_decode_the_same() {
        let mut stream = frame(1, "out one\nout ");
        stream.extend(frame(2, "err one\n"));
        stream.extend(frame(1, "two\n"));
        let whole = decode(&mut Decoder::new(true, 1024), &[&stream]);
        let pieces: Vec<&[u8]> = stream.chunks(1).collect();
        let split = decode(&mut Decoder::new(true, 1024), &pieces);
        let want = vec![
            (Output::Stdout, "out one".to_string()),
            (Output::Stderr, "err one".to_string()),
            (Output::Stdout, "out two".to_string()),
        ];
        assert_eq!(whole, want);
        assert_eq!(split, want);
    }

    #[test]
    fn raw_tty_streams_are_stdout_lines_without_carriage_returns() {
        let got = decode(&mut Decoder::new(false, 1024), &[b"a\r\nb", b"c\r\n"]);
        assert_eq!(
            got,
            [(Output::Stdout, "a".into()), (Output::Stdout, "bc".into())]
        );
    }

    #[test]
    fn long_lines_are_cut_and_counted() {
        let mut d = Decoder::new(false, 4);
        let mut got = Vec::new();
        let cut = d
            .feed(b"abcdefghij\n", &mut |_, l| got.push(l.to_vec()))
            .unwrap();
        assert_eq!(got, [b"abcd".to_vec(), b"efgh".to_vec(), b"ij".to_vec()]);
        assert_eq!(cut, 2);
    }

    #[test]
    fn a_line_of_exactly_max_line_bytes_is_not_cut_when_its_newline_comes_later() {
        // Found by the split property: the line filled the buffer in one
        // chunk and was cut there (plus an empty line for the newline that
        // followed), although in one chunk it was a whole line.
        let whole = decode(&mut Decoder::new(false, 3), &[b"abc\n"]);
        let split = decode(&mut Decoder::new(false, 3), &[b"abc", b"\n"]);
        assert_eq!(whole, [(Output::Stdout, "abc".into())]);
        assert_eq!(split, whole);
        let mut d = Decoder::new(false, 1);
        assert_eq!(d.feed(b"\r", &mut |_, _| {}), Ok(0));
        let mut got = Vec::new();
        assert_eq!(d.feed(b"\n", &mut |_, l| got.push(l.to_vec())), Ok(0));
        assert_eq!(got, [Vec::<u8>::new()]);
    }

    #[test]
    fn unknown_stream_types_and_huge_frames_are_refused() {
        let mut d = Decoder::new(true, 16);
        assert!(d.feed(&frame(7, "x"), &mut |_, _| {}).is_err());
        let mut d = Decoder::new(true, 16);
        let huge = [1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff];
        let err = d.feed(&huge, &mut |_, _| {}).unwrap_err();
        assert!(err.0.contains("limit"), "{err:?}");
    }
}

#[cfg(test)]
mod props {
    //! The log stream comes from the Engine in chunks that know nothing of
    //! frames or lines: whatever the bytes and wherever they are split, the
    //! decoder must not panic, must hold at most one line per output, and
    //! must give the same lines (and cut count) as from one chunk.
    use super::*;
    use proptest::prelude::*;

    /// Everything one decoder gives: the lines, then the cut count, or the
    /// error that stopped it.
    type Run = (Vec<(Output, Vec<u8>)>, Result<u64, BadFrame>);

    /// Feed `stream` cut at `splits` (positions, any order, clamped).
    fn run(multiplexed: bool, max_line: usize, stream: &[u8], splits: &[usize]) -> Run {
        let mut cuts: Vec<usize> = splits.iter().map(|s| s % (stream.len() + 1)).collect();
        cuts.push(0);
        cuts.push(stream.len());
        cuts.sort_unstable();
        let mut d = Decoder::new(multiplexed, max_line);
        let mut lines = Vec::new();
        let mut cut = 0;
        for w in cuts.windows(2) {
            let r = d.feed(&stream[w[0]..w[1]], &mut |o, l| lines.push((o, l.to_vec())));
            assert!(d.stdout.bytes.len() <= max_line.max(1));
            assert!(d.stderr.bytes.len() <= max_line.max(1));
            match r {
                Ok(n) => cut += n,
                Err(e) => return (lines, Err(e)),
            }
        }
        (lines, Ok(cut))
    }

    /// Frames of type 1 or 2 around arbitrary payloads (newlines, `\r`,
    /// non-UTF-8 bytes included).
    fn frames() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(
            (
                1u8..=2,
                proptest::collection::vec(
                    prop_oneof![Just(b'\n'), Just(b'\r'), any::<u8>()],
                    0..40,
                ),
            ),
            0..8,
        )
        .prop_map(|fs| {
            let mut out = Vec::new();
            for (kind, payload) in fs {
                out.extend_from_slice(&[kind, 0, 0, 0]);
                out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
                out.extend_from_slice(&payload);
            }
            out
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn arbitrary_bytes_in_arbitrary_chunks_never_panic(
            stream in proptest::collection::vec(any::<u8>(), 0..256),
            splits in proptest::collection::vec(any::<usize>(), 0..8),
            multiplexed in any::<bool>(),
            max_line in 0usize..64,
        ) {
            let _ = run(multiplexed, max_line, &stream, &splits);
        }

        #[test]
        fn valid_frames_decode_the_same_however_split(
            stream in frames(),
            splits in proptest::collection::vec(any::<usize>(), 0..8),
            max_line in 1usize..24,
        ) {
            let whole = run(true, max_line, &stream, &[]);
            prop_assert!(whole.1.is_ok());
            prop_assert_eq!(run(true, max_line, &stream, &splits), whole);
        }

        #[test]
        fn raw_text_decodes_the_same_however_split(
            stream in proptest::collection::vec(
                prop_oneof![Just(b'\n'), Just(b'\r'), any::<u8>()], 0..200),
            splits in proptest::collection::vec(any::<usize>(), 0..8),
            max_line in 1usize..24,
        ) {
            let whole = run(false, max_line, &stream, &[]);
            prop_assert_eq!(run(false, max_line, &stream, &splits), whole);
        }
    }
}
