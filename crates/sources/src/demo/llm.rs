//! LLM proxy exchanges: a chat completion request and its answer, as the
//! proxy captures them (`POST /v1/chat/completions`, JSON or Server-Sent
//! Events), so the LLM payload transformer reads them like real traffic.

use super::logs::pick;
use bytes::Bytes;
use serde_json::json;
use std::collections::BTreeMap;
use switchyard_core::HttpExchange;
use time::OffsetDateTime;

const MODELS: &[&str] = &[
    "gpt-4o-mini",
    "gpt-4o",
    "claude-3-5-sonnet",
    "llama-3.1-70b",
];
const USERS: &[&str] = &["alice", "bob", "carol", "dave", "erin"];
const QUESTIONS: &[&str] = &[
    "Summarise the last deployment log.",
    "Translate 'good morning' into French.",
    "Which HTTP status means too many requests?",
    "Write a haiku about message queues.",
    "Explain backpressure in one sentence.",
];
const ANSWERS: &[&str] = &[
    "The deployment finished without errors.",
    "Bonjour.",
    "429 Too Many Requests.",
    "Queues fill, then they drain / a consumer slowly reads / nothing is lost here.",
    "A slow reader makes its writers wait instead of dropping their work.",
];

/// Exchange number `n` (its request id is derived from `n`, so ids are
/// unique within a run and the same across runs with the same seed).
pub fn exchange(rng: &mut fastrand::Rng, n: u64) -> HttpExchange {
    let model = pick(rng, MODELS);
    let q = rng.usize(..QUESTIONS.len());
    let (question, answer) = (QUESTIONS[q], ANSWERS[q]);
    let prompt_tokens = 12 + question.len() as u64 / 4 + rng.u64(0..20);
    let completion_tokens = 1 + answer.len() as u64 / 4;
    let request = json!({
        "model": model,
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": question},
        ],
        "temperature": (rng.u8(0..=10) as f64) / 10.0,
        "user": pick(rng, USERS),
    });
    let streamed = rng.u8(0..5) == 0;
    let id = format!("chatcmpl-{:012x}", rng.u64(..1 << 48));
    let created = OffsetDateTime::now_utc().unix_timestamp();
    let (content_type, body) = if streamed {
        ("text/event-stream", sse_body(&id, model, created, answer))
    } else {
        let body = json!({
            "id": id,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": answer},
                "finish_reason": "stop",
            }],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        });
        ("application/json", body.to_string())
    };
    let status = if rng.u8(0..50) == 0 { 429 } else { 200 };
    let duration_ms = if streamed {
        rng.u64(800..6000)
    } else {
        rng.u64(150..2500)
    };
    let headers = BTreeMap::from([
        ("Content-Type".to_owned(), vec![content_type.to_owned()]),
        ("X-Request-Id".to_owned(), vec![format!("demo-{n}")]),
    ]);
    HttpExchange {
        log_id: 0,
        request_id: format!("demo-{n}"),
        method: "POST".into(),
        path: "/v1/chat/completions".into(),
        status,
        duration_ns: (duration_ms * 1_000_000) as i64,
        response_headers: Some(headers),
        response_body: Some(Bytes::from(body)),
        request_body: Some(Bytes::from(request.to_string())),
        timestamp: Some(OffsetDateTime::now_utc()),
    }
}

/// The answer streamed word by word as `chat.completion.chunk` events.
fn sse_body(id: &str, model: &str, created: i64, answer: &str) -> String {
    let mut out = String::new();
    let mut words = answer.split_inclusive(' ').peekable();
    while let Some(word) = words.next() {
        let finish = words.peek().is_none().then_some("stop");
        let chunk = json!({
            "id": id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": {"content": word}, "finish_reason": finish}],
        });
        out.push_str(&format!("data: {chunk}\n\n"));
    }
    out.push_str("data: [DONE]\n\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exchanges_look_like_chat_completions() {
        let mut rng = fastrand::Rng::with_seed(3);
        let (mut json_seen, mut sse_seen) = (false, false);
        for n in 0..100 {
            let x = exchange(&mut rng, n);
            assert_eq!(x.method, "POST");
            assert_eq!(x.request_id, format!("demo-{n}"));
            let req: serde_json::Value =
                serde_json::from_slice(x.request_body.as_deref().unwrap()).unwrap();
            assert_eq!(req["messages"][1]["role"], "user");
            let ct = &x.response_headers.as_ref().unwrap()["Content-Type"][0];
            let body = std::str::from_utf8(x.response_body.as_deref().unwrap()).unwrap();
            if ct == "text/event-stream" {
                sse_seen = true;
                assert!(body.ends_with("data: [DONE]\n\n"));
            } else {
                json_seen = true;
                let v: serde_json::Value = serde_json::from_str(body).unwrap();
                assert_eq!(v["object"], "chat.completion");
            }
        }
        assert!(json_seen && sse_seen);
    }
}
