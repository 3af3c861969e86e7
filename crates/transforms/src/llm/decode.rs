//! Content-Encoding: undo gzip, brotli and deflate before anything reads a
//! body, with a hard cap on the decoded size so that a small compressed body
//! cannot expand into gigabytes (a decompression bomb).

use std::borrow::Cow;
use std::io::Read;

/// What decoding a body gave.
#[derive(Debug, PartialEq)]
pub enum Decoded<'a> {
    /// The plain bytes (borrowed when the body was not encoded).
    Plain(Cow<'a, [u8]>),
    /// The decoded body would exceed the cap.
    TooLarge,
    /// The body does not decode as the named encoding says.
    Corrupt(&'static str),
    /// An encoding this transformer does not know.
    Unsupported(String),
}

/// Decode `body` as described by a `Content-Encoding` value (a comma-separated
/// list, applied in order, so undone in reverse). Without a header, a gzip
/// magic number is still recognised: requests carry no headers in the event.
pub fn decode<'a>(body: &'a [u8], content_encoding: Option<&str>, cap: usize) -> Decoded<'a> {
    let codings: Vec<&str> = match content_encoding {
        Some(list) => list
            .split(',')
            .map(str::trim)
            .filter(|c| !c.is_empty() && !c.eq_ignore_ascii_case("identity"))
            .collect(),
        None if body.starts_with(&[0x1f, 0x8b, 0x08]) => vec!["gzip"],
        None => Vec::new(),
    };
    if codings.is_empty() && body.len() > cap {
        return Decoded::TooLarge;
    }
    let mut current = Cow::Borrowed(body);
    for coding in codings.iter().rev() {
        let coding = coding.to_ascii_lowercase();
        let step = match coding.as_str() {
            "gzip" | "x-gzip" => {
                read_capped(flate2::read::GzDecoder::new(&current[..]), cap).map_err(|_| "gzip")
            }
            "br" => read_capped(
                brotli_decompressor::Decompressor::new(&current[..], 4096),
                cap,
            )
            .map_err(|_| "br"),
            // HTTP's "deflate" is zlib-wrapped; some servers send raw deflate.
            "deflate" => read_capped(flate2::read::ZlibDecoder::new(&current[..]), cap)
                .or_else(|_| read_capped(flate2::read::DeflateDecoder::new(&current[..]), cap))
                .map_err(|_| "deflate"),
            _ => return Decoded::Unsupported(coding),
        };
        match step {
            Ok(Some(bytes)) => current = Cow::Owned(bytes),
            Ok(None) => return Decoded::TooLarge,
            Err(name) => return Decoded::Corrupt(name),
        }
    }
    Decoded::Plain(current)
}

/// Read all of `r`, or `None` once more than `cap` bytes come out.
fn read_capped(r: impl Read, cap: usize) -> std::io::Result<Option<Vec<u8>>> {
    let mut out = Vec::new();
    r.take(cap as u64 + 1).read_to_end(&mut out)?;
    Ok((out.len() <= cap).then_some(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn plain_bodies_are_borrowed() {
        assert_eq!(
            decode(b"{}", None, 10),
            Decoded::Plain(Cow::Borrowed(&b"{}"[..]))
        );
        assert_eq!(
            decode(b"{}", Some("identity"), 10),
            Decoded::Plain(Cow::Borrowed(&b"{}"[..]))
        );
    }

    #[test]
    fn gzip_by_header_and_by_magic() {
        let z = gzip(b"hello");
        for header in [Some("gzip"), None] {
            assert_eq!(
                decode(&z, header, 100),
                Decoded::Plain(Cow::Owned(b"hello".to_vec()))
            );
        }
    }

    #[test]
    fn decompression_bomb_stops_at_the_cap() {
        let z = gzip(&vec![0u8; 1 << 20]);
        assert!(z.len() < 10_000);
        assert_eq!(decode(&z, Some("gzip"), 64 * 1024), Decoded::TooLarge);
    }

    #[test]
    fn corrupt_and_unknown_encodings_are_named() {
        assert_eq!(decode(b"nope", Some("gzip"), 100), Decoded::Corrupt("gzip"));
        assert_eq!(
            decode(b"x", Some("zstd"), 100),
            Decoded::Unsupported("zstd".into())
        );
    }
}
