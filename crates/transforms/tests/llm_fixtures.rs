//! The LLM payload transformer on exchanges shaped like real API traffic,
//! asserting the exact JSON each one becomes.

use bytes::Bytes;
use std::collections::BTreeMap;
use std::io::Write;
use switchyard_core::{Event, HttpExchange, LogRecord, Payload, Transform, Verdict};
use switchyard_transforms::llm::{LlmConfig, LlmTransform};
use time::macros::datetime;

fn exchange(path: &str, status: i64, request: &[u8], response: &[u8]) -> HttpExchange {
    HttpExchange {
        log_id: 0,
        request_id: "req-1".into(),
        method: "POST".into(),
        path: path.into(),
        status,
        duration_ns: 1_234_567_890,
        response_headers: Some(headers(&[("Content-Type", "application/json")])),
        response_body: Some(Bytes::copy_from_slice(response)),
        request_body: Some(Bytes::copy_from_slice(request)),
        timestamp: Some(datetime!(2024-05-01 12:00:05.5 UTC)),
    }
}

fn headers(pairs: &[(&str, &str)]) -> BTreeMap<String, Vec<String>> {
    let mut h: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in pairs {
        h.entry(k.to_string()).or_default().push(v.to_string());
    }
    h
}

fn run(x: HttpExchange, config: LlmConfig) -> Option<String> {
    let mut event = Event::from(x);
    match LlmTransform::default_with(config).apply(&mut event) {
        Verdict::Filter => None,
        Verdict::Keep => {
            let mut out = Vec::new();
            event.write_json(&mut out).unwrap();
            let text = String::from_utf8(out).unwrap();
            serde_json::from_str::<serde_json::Value>(&text).expect("valid JSON");
            assert!(!text.contains('\n'), "one JSONL line");
            Some(text)
        }
    }
}

fn transform(x: HttpExchange) -> String {
    run(x, LlmConfig::default()).expect("kept")
}

const RUN_ID: &str = "RUNID";
const META: &str = r#""metadata":{"method":"POST","path":"PATH","status":STATUS,"duration_ms":1234,"request_id":"req-1"},"log_id":0}"#;

/// The expected text, with the run id of `req-1` and the common metadata.
fn expect(head: &str, path: &str, status: i64) -> String {
    let run_id = switchyard_transforms::llm::run_id::run_id("req-1");
    format!(
        "{}{}",
        head.replace(RUN_ID, &run_id),
        META.replace("PATH", path)
            .replace("STATUS", &status.to_string())
    )
}

const CHAT_REQUEST: &str = r#"{"model":"gpt-4o-mini","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Say hello"}],"temperature":0.2,"user":"user-42"}"#;
const CHAT_RESPONSE: &str = r#"{
  "id": "chatcmpl-9abc",
  "object": "chat.completion",
  "created": 1714564800,
  "model": "gpt-4o-mini-2024-07-18",
  "choices": [
    {"index": 0, "message": {"role": "assistant", "content": "Hello!"}, "logprobs": null, "finish_reason": "stop"}
  ],
  "usage": {"prompt_tokens": 19, "completion_tokens": 3, "total_tokens": 22},
  "system_fingerprint": "fp_0ba0d124f1"
}
"#;
const CHAT_OUTPUT: &str = r#"{  "id": "chatcmpl-9abc",  "object": "chat.completion",  "created": 1714564800,  "model": "gpt-4o-mini-2024-07-18",  "choices": [    {"index": 0, "message": {"role": "assistant", "content": "Hello!"}, "logprobs": null, "finish_reason": "stop"}  ],  "usage": {"prompt_tokens": 19, "completion_tokens": 3, "total_tokens": 22},  "system_fingerprint": "fp_0ba0d124f1"}"#;

fn chat_expected() -> String {
    expect(
        &format!(
            r#"{{"type":"llm","event":"end","runId":"RUNID","name":"gpt-4o-mini","timestamp":"2024-05-01T12:00:05.500Z","input":{CHAT_REQUEST},"output":{CHAT_OUTPUT},"userId":"user-42","tokensUsage":{{"completion":3,"prompt":19}},"#
        ),
        "/v1/chat/completions",
        200,
    )
}

#[test]
fn chat_completion_json() {
    let x = exchange(
        "/v1/chat/completions",
        200,
        CHAT_REQUEST.as_bytes(),
        CHAT_RESPONSE.as_bytes(),
    );
    assert_eq!(transform(x), chat_expected());
}

#[test]
fn gzip_response_body() {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(CHAT_RESPONSE.as_bytes()).unwrap();
    let mut x = exchange(
        "/v1/chat/completions",
        200,
        CHAT_REQUEST.as_bytes(),
        &e.finish().unwrap(),
    );
    x.response_headers = Some(headers(&[
        ("Content-Encoding", "gzip"),
        ("Content-Type", "application/json"),
    ]));
    assert_eq!(transform(x), chat_expected());
}

#[test]
fn brotli_response_body() {
    let mut compressed = Vec::new();
    {
        let mut w = brotli::CompressorWriter::new(&mut compressed, 4096, 5, 22);
        w.write_all(CHAT_RESPONSE.as_bytes()).unwrap();
    }
    let mut x = exchange(
        "/v1/chat/completions",
        200,
        CHAT_REQUEST.as_bytes(),
        &compressed,
    );
    x.response_headers = Some(headers(&[
        ("content-encoding", "br"),
        ("content-type", "application/json; charset=utf-8"),
    ]));
    assert_eq!(transform(x), chat_expected());
}

#[test]
fn sse_stream_ending_with_usage_chunk() {
    let request = r#"{"model":"gpt-4o","messages":[{"role":"user","content":"Hi"}],"stream":true,"stream_options":{"include_usage":true}}"#;
    let stream = concat!(
        "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1714564800,\"model\":\"gpt-4o-2024-08-06\",\"system_fingerprint\":\"fp_1\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n",
        "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1714564800,\"model\":\"gpt-4o-2024-08-06\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n",
        "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1714564800,\"model\":\"gpt-4o-2024-08-06\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\" there!\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n",
        "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1714564800,\"model\":\"gpt-4o-2024-08-06\",\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":\"stop\"}],\"usage\":null}\n\n",
        "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1714564800,\"model\":\"gpt-4o-2024-08-06\",\"choices\":[],\"usage\":{\"prompt_tokens\":8,\"completion_tokens\":3,\"total_tokens\":11}}\n\n",
        "data: [DONE]\n\n"
    );
    let mut x = exchange(
        "/v1/chat/completions",
        200,
        request.as_bytes(),
        stream.as_bytes(),
    );
    x.response_headers = Some(headers(&[(
        "Content-Type",
        "text/event-stream; charset=utf-8",
    )]));
    let output = r#"{"id":"chatcmpl-1","object":"chat.completion","created":1714564800,"model":"gpt-4o-2024-08-06","choices":[{"index":0,"message":{"role":"assistant","content":"Hello there!"},"finish_reason":"stop"}],"usage":{"prompt_tokens":8,"completion_tokens":3,"total_tokens":11}}"#;
    assert_eq!(
        transform(x),
        expect(
            &format!(
                r#"{{"type":"llm","event":"end","runId":"RUNID","name":"gpt-4o","timestamp":"2024-05-01T12:00:05.500Z","input":{request},"output":{output},"tokensUsage":{{"completion":3,"prompt":8}},"#
            ),
            "/v1/chat/completions",
            200
        )
    );
}

#[test]
fn embeddings() {
    let request = r#"{"input":"The food was delicious","model":"text-embedding-3-small","encoding_format":"float"}"#;
    let response = r#"{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.0023,-0.0093]}],"model":"text-embedding-3-small","usage":{"prompt_tokens":5,"total_tokens":5}}"#;
    let x = exchange(
        "/v1/embeddings",
        200,
        request.as_bytes(),
        response.as_bytes(),
    );
    assert_eq!(
        transform(x),
        expect(
            &format!(
                r#"{{"type":"llm","event":"end","runId":"RUNID","name":"text-embedding-3-small","timestamp":"2024-05-01T12:00:05.500Z","input":{request},"output":{response},"tokensUsage":{{"completion":0,"prompt":5}},"#
            ),
            "/v1/embeddings",
            200
        )
    );
}

#[test]
fn input_tokens_and_output_tokens_api() {
    let request = r#"{"model":"gpt-4.1","input":"Write a haiku."}"#;
    let response = r#"{"id":"resp_1","object":"response","created_at":1714564800,"status":"completed","model":"gpt-4.1-2025-04-14","output":[{"type":"message","role":"assistant","content":[{"type":"output_text","text":"Quiet pond"}]}],"usage":{"input_tokens":11,"output_tokens":9,"total_tokens":20}}"#;
    let x = exchange(
        "/v1/responses",
        200,
        request.as_bytes(),
        response.as_bytes(),
    );
    assert_eq!(
        transform(x),
        expect(
            &format!(
                r#"{{"type":"llm","event":"end","runId":"RUNID","name":"gpt-4.1","timestamp":"2024-05-01T12:00:05.500Z","input":{request},"output":{response},"tokensUsage":{{"completion":9,"prompt":11}},"#
            ),
            "/v1/responses",
            200
        )
    );
}

#[test]
fn multipart_request_and_plain_text_response() {
    let request = b"--------------------------d74496d66958873e\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.mp3\"\r\nContent-Type: audio/mpeg\r\n\r\nID3\x04\x00\x00\xff\xfb\r\n--------------------------d74496d66958873e\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n--------------------------d74496d66958873e--\r\n";
    let mut x = exchange(
        "/v1/audio/transcriptions",
        200,
        request,
        b"Hello from the recording.\n",
    );
    x.response_headers = Some(headers(&[("Content-Type", "text/plain; charset=utf-8")]));
    assert_eq!(
        transform(x),
        expect(
            r#"{"type":"llm","event":"end","runId":"RUNID","timestamp":"2024-05-01T12:00:05.500Z","input":"<multipart omitted>","output":"Hello from the recording.\n","#,
            "/v1/audio/transcriptions",
            200
        )
    );
}

#[test]
fn binary_response() {
    let request = r#"{"model":"tts-1","input":"Hi","voice":"alloy"}"#;
    let mut x = exchange(
        "/v1/audio/speech",
        200,
        request.as_bytes(),
        b"\xff\xfb\x90\x64\x00\x00\x00",
    );
    x.response_headers = Some(headers(&[("Content-Type", "audio/mpeg")]));
    assert_eq!(
        transform(x),
        expect(
            &format!(
                r#"{{"type":"llm","event":"end","runId":"RUNID","name":"tts-1","timestamp":"2024-05-01T12:00:05.500Z","input":{request},"output":"<binary omitted>","#
            ),
            "/v1/audio/speech",
            200
        )
    );
}

#[test]
fn invalid_utf8_bodies() {
    // A JSON-looking request with a stray byte, and an undeclared body that
    // is not UTF-8: neither can be JSON text.
    let mut x = exchange(
        "/v1/chat/completions",
        502,
        b"{\"model\":\"gpt-4o\xff\"}",
        b"\xc3\x28 upstream",
    );
    x.response_headers = None;
    assert_eq!(
        transform(x),
        expect(
            r#"{"type":"llm","event":"error","runId":"RUNID","timestamp":"2024-05-01T12:00:05.500Z","input":"<binary omitted>","output":"<binary omitted>","#,
            "/v1/chat/completions",
            502
        )
    );
}

#[test]
fn error_status_is_an_error_event() {
    let request = r#"{"model":"gpt-4o","messages":[]}"#;
    let response = r#"{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}"#;
    let x = exchange(
        "/v1/chat/completions",
        429,
        request.as_bytes(),
        response.as_bytes(),
    );
    assert_eq!(
        transform(x),
        expect(
            &format!(
                r#"{{"type":"llm","event":"error","runId":"RUNID","name":"gpt-4o","timestamp":"2024-05-01T12:00:05.500Z","input":{request},"output":{response},"#
            ),
            "/v1/chat/completions",
            429
        )
    );
}

#[test]
fn get_is_filtered() {
    let mut x = exchange("/v1/models", 200, b"", br#"{"data":[]}"#);
    x.method = "GET".into();
    assert_eq!(run(x, LlmConfig::default()), None);
}

#[test]
fn verbose_adds_headers_with_secrets_redacted() {
    let mut x = exchange("/v1/chat/completions", 200, b"", b"");
    x.response_headers = Some(headers(&[
        ("Content-Type", "application/json"),
        ("Set-Cookie", "__cf_bm=abc; path=/"),
        ("Set-Cookie", "_cfuvid=def; path=/"),
        ("X-Api-Key", "sk-live-123"),
        ("X-Request-Id", "req_abc"),
    ]));
    let config = LlmConfig {
        verbose: true,
        ..LlmConfig::default()
    };
    let out = run(x, config).unwrap();
    let run_id = switchyard_transforms::llm::run_id::run_id("req-1");
    assert_eq!(
        out,
        format!(
            r#"{{"type":"llm","event":"end","runId":"{run_id}","timestamp":"2024-05-01T12:00:05.500Z","metadata":{{"method":"POST","path":"/v1/chat/completions","status":200,"duration_ms":1234,"request_id":"req-1","response_headers":{{"Content-Type":"application/json","Set-Cookie":["[REDACTED]","[REDACTED]"],"X-Api-Key":"[REDACTED]","X-Request-Id":"req_abc"}}}},"log_id":0}}"#
        )
    );
    assert!(!out.contains("sk-live"));
}

#[test]
fn log_records_pass_through_unchanged() {
    let record = LogRecord::new("hello");
    let mut event = Event::from(record.clone());
    let t = LlmTransform::default_with(LlmConfig::default());
    assert_eq!(t.apply(&mut event), Verdict::Keep);
    assert_eq!(event.payload, Payload::Log(record));
}

#[test]
fn same_request_id_same_run_id() {
    let a = transform(exchange("/v1/chat/completions", 200, b"{}", b"{}"));
    let b = transform(exchange("/v1/chat/completions", 200, b"{}", b"{}"));
    assert_eq!(a, b);
}

#[test]
fn gzip_request_is_recognised_and_bodies_over_the_cap_become_a_placeholder() {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(CHAT_REQUEST.as_bytes()).unwrap();
    let x = exchange(
        "/v1/chat/completions",
        200,
        &e.finish().unwrap(),
        CHAT_RESPONSE.as_bytes(),
    );
    assert_eq!(transform(x.clone()), chat_expected());
    let small = LlmConfig {
        max_body_bytes: 100,
        ..LlmConfig::default()
    };
    let out: serde_json::Value = serde_json::from_str(&run(x, small).unwrap()).unwrap();
    assert_eq!(out["input"], "<body omitted: over 100 bytes>");
    assert_eq!(out["output"], "<body omitted: over 100 bytes>");
}
