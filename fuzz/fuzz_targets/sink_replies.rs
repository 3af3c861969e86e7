//! Error replies from Loki and the HTTP sinks: any status and body give a
//! one-line error whose class the status alone decides. Lunary's: its batch
//! results and its own answers (key, payload) never panic, and are one line.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard_core::SinkErrorKind;
use switchyard_sinks::http_common::classify::{classify_status, is_transient};

fuzz_target!(|data: &[u8]| {
    let Some((&[hi, lo], body)) = data.split_first_chunk::<2>() else {
        return;
    };
    let status = u16::from_be_bytes([hi, lo]) % 1000;
    for e in [
        classify_status("http", status, None, body),
        switchyard_sinks::loki::classify::classify(status, None, body),
    ] {
        assert_eq!(e.kind == SinkErrorKind::Transient, is_transient(status));
        assert!(!e.message.contains('\n'));
    }
    let lunary = switchyard_sinks::lunary::fuzzing::classify(status, None, body);
    assert!(!lunary.message.contains('\n'));
    if !is_transient(status) {
        assert_eq!(lunary.kind, SinkErrorKind::Permanent);
    }
    let _ = switchyard_sinks::lunary::fuzzing::failed_runs(body);
});
