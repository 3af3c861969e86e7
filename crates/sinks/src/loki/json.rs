//! Loki's JSON push body, for proxies and tools that cannot read protobuf:
//! `{"streams":[{"stream":{<label>:<value>},"values":[["<unix ns>","<line>"]]}]}`,
//! gzip-compressed when asked.

use super::batch::Slice;
use std::io::Write;
use switchyard_core::json_string::write_str;

/// One push as JSON text, gzipped if `gzip`.
pub fn encode(push: &[Slice<'_>], gzip: bool) -> Vec<u8> {
    let size: usize = push
        .iter()
        .map(|s| s.stream.labels.len() + s.entries.iter().map(|e| e.line.len() + 32).sum::<usize>())
        .sum();
    let mut out = Vec::with_capacity(size + 16);
    out.extend_from_slice(b"{\"streams\":[");
    for (i, s) in push.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"stream\":{");
        for (j, (name, value)) in s.stream.pairs.iter().enumerate() {
            if j > 0 {
                out.push(b',');
            }
            write_str(&mut out, name);
            out.push(b':');
            write_str(&mut out, value);
        }
        out.extend_from_slice(b"},\"values\":[");
        for (j, e) in s.entries.iter().enumerate() {
            if j > 0 {
                out.push(b',');
            }
            // Writing into a Vec cannot fail.
            let _ = write!(out, "[\"{}\",", e.ts);
            write_str(&mut out, &e.line);
            out.push(b']');
        }
        out.extend_from_slice(b"]}");
    }
    out.extend_from_slice(b"]}");
    if !gzip {
        return out;
    }
    let mut gz = flate2::write::GzEncoder::new(
        Vec::with_capacity(out.len() / 4),
        flate2::Compression::fast(),
    );
    // Writing into a Vec cannot fail.
    gz.write_all(&out).expect("writing to memory");
    gz.finish().expect("writing to memory")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loki::batch::Stream;
    use crate::loki::entry::Entry;
    use std::io::Read;

    fn stream() -> Stream {
        Stream {
            labels: r#"{app="a", env="p\"q"}"#.into(),
            pairs: vec![("app".into(), "a".into()), ("env".into(), "p\"q".into())],
            entries: vec![
                Entry {
                    index: 0,
                    ts: 1_700_000_000_000_000_001,
                    line: "one \"1\"".into(),
                },
                Entry {
                    index: 1,
                    ts: 1_700_000_000_000_000_002,
                    line: "two".into(),
                },
            ],
        }
    }

    #[test]
    fn streams_and_values_as_loki_reads_them() {
        let s = stream();
        let body = encode(
            &[Slice {
                stream: &s,
                entries: &s.entries,
            }],
            false,
        );
        assert_eq!(
            String::from_utf8(body).unwrap(),
            r#"{"streams":[{"stream":{"app":"a","env":"p\"q"},"values":[["1700000000000000001","one \"1\""],["1700000000000000002","two"]]}]}"#
        );
    }

    #[test]
    fn gzip_round_trips() {
        let s = stream();
        let plain = encode(
            &[Slice {
                stream: &s,
                entries: &s.entries,
            }],
            false,
        );
        let gz = encode(
            &[Slice {
                stream: &s,
                entries: &s.entries,
            }],
            true,
        );
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(gz.as_slice())
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, plain);
    }
}
