//! A log record from any bytes: an accepted one writes back valid JSON that
//! reads back and writes the same again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard_core::LogRecord;

fuzz_target!(|data: &[u8]| {
    let Ok(first) = serde_json::from_slice::<LogRecord>(data) else {
        return;
    };
    let mut once = Vec::new();
    first.write_json(&mut once).unwrap();
    let second: LogRecord = serde_json::from_slice(&once).unwrap();
    let mut twice = Vec::new();
    second.write_json(&mut twice).unwrap();
    assert_eq!(once, twice);
});
