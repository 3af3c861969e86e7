//! An ingest body, as JSON, array or NDJSON: items or an error naming where,
//! never a panic; an error's response body is valid JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard_core::{HttpExchange, LogRecord};
use switchyard_sources::http::parse_batch;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, body)) = data.split_first() else {
        return;
    };
    let ndjson = flags & 1 == 1;
    if let Err(e) = parse_batch::<LogRecord>(body, ndjson) {
        serde_json::to_vec(&e.to_json()).unwrap();
    }
    let _ = parse_batch::<HttpExchange>(body, ndjson);
});
