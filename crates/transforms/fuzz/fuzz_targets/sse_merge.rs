//! Arbitrary bytes as a Server-Sent-Event stream: a merge, when there is one,
//! is valid JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(merged) = switchyard_transforms::llm::sse::merge_to_string(data) {
        serde_json::from_str::<serde_json::Value>(&merged).unwrap();
    }
});
