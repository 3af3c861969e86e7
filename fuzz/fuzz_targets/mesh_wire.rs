//! Mesh bytes from callers and peers: a dispatch request is accepted exactly
//! when prost accepts it; reply frames and `grpc-message` values never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard_mesh::fuzzing;

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    match which % 3 {
        0 => fuzzing::dispatch_request(rest),
        1 => fuzzing::serve_reply(rest, 1 << 16),
        _ => fuzzing::grpc_message(rest),
    }
});
