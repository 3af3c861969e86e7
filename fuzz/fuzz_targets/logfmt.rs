//! A log line as logfmt: pairs or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = switchyard_transforms::remap::logfmt(&String::from_utf8_lossy(data));
});
