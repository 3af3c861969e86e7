//! A filter condition from any text: parsed or refused, and a parsed one
//! evaluates on a record without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard_core::LogRecord;
use switchyard_transforms::condition::Condition;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(c) = Condition::parse(&text) {
        let mut rec = LogRecord::new(text.as_ref());
        rec.level = Some("error".into());
        c.holds(&rec);
    }
});
