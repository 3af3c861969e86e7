//! A container log stream in arbitrary chunks: no panic, and the same lines
//! as from one chunk when the stream is valid.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard_sources::docker::frames::Decoder;

type Lines = (Vec<(&'static str, Vec<u8>)>, Option<u64>);

fn run(multiplexed: bool, max_line: usize, stream: &[u8], chunk: usize) -> Lines {
    let mut d = Decoder::new(multiplexed, max_line);
    let mut lines = Vec::new();
    let mut cut = 0;
    for piece in stream.chunks(chunk.max(1)) {
        match d.feed(piece, &mut |o, l| lines.push((o.as_str(), l.to_vec()))) {
            Ok(n) => cut += n,
            Err(_) => return (lines, None),
        }
    }
    (lines, Some(cut))
}

fuzz_target!(|data: &[u8]| {
    let Some((&[mode, max_line, chunk], stream)) = data.split_first_chunk::<3>() else {
        return;
    };
    let multiplexed = mode & 1 == 1;
    let max_line = usize::from(max_line).max(1);
    let whole = run(multiplexed, max_line, stream, stream.len());
    let split = run(multiplexed, max_line, stream, usize::from(chunk));
    if whole.1.is_some() {
        assert_eq!(whole, split);
    }
});
