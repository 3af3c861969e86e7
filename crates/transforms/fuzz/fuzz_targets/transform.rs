//! Arbitrary request and response bytes and a content type: the transformer
//! must return valid JSON on one line, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;
use switchyard_core::{Event, HttpExchange, Transform};
use switchyard_transforms::llm::{LlmConfig, LlmTransform};

const CONTENT_TYPES: [&str; 5] = [
    "application/json",
    "text/event-stream",
    "multipart/form-data",
    "text/plain",
    "",
];
const ENCODINGS: [&str; 4] = ["", "gzip", "br", "deflate"];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let split = rest.len() / 3;
    let (request, response) = rest.split_at(split);
    let mut headers = BTreeMap::new();
    headers.insert(
        "Content-Type".to_string(),
        vec![CONTENT_TYPES[selector as usize % 5].to_string()],
    );
    headers.insert(
        "Content-Encoding".to_string(),
        vec![ENCODINGS[(selector as usize / 5) % 4].to_string()],
    );
    let x = HttpExchange {
        method: "POST".into(),
        request_id: "fuzz".into(),
        response_headers: Some(headers),
        request_body: Some(bytes::Bytes::copy_from_slice(request)),
        response_body: Some(bytes::Bytes::copy_from_slice(response)),
        ..Default::default()
    };
    let mut event = Event::from(x);
    LlmTransform::default_with(LlmConfig::default()).apply(&mut event);
    let mut out = Vec::new();
    event.write_json(&mut out).unwrap();
    assert!(!out.contains(&b'\n'));
    serde_json::from_slice::<serde_json::Value>(&out).unwrap();
});
