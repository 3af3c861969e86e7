//! The realistic mix both transformer benchmarks use: chat completions of
//! 1–2 KB (request + response), one in five streamed as Server-Sent Events.

use bytes::Bytes;
use std::collections::BTreeMap;
use switchyard_core::HttpExchange;

const WORDS: [&str; 8] = [
    "latency", "budget", "river", "compile", "orbit", "ledger", "quartz", "harbor",
];

fn sentence(seed: usize, words: usize) -> String {
    (0..words)
        .map(|i| WORDS[(seed * 7 + i * 3) % WORDS.len()])
        .collect::<Vec<_>>()
        .join(" ")
}

/// The `i`-th exchange of the mix.
pub fn exchange(i: usize) -> HttpExchange {
    let words = 40 + (i % 5) * 25; // bodies from ~1 KB to ~2 KB in total
    let request = format!(
        r#"{{"model":"gpt-4o-mini","messages":[{{"role":"system","content":"You are a helpful assistant."}},{{"role":"user","content":"{}"}}],"temperature":0.7,"user":"user-{}"}}"#,
        sentence(i, words),
        i % 100
    );
    let answer = sentence(i + 1, words);
    let streamed = i.is_multiple_of(5);
    let (body, content_type) = if streamed {
        let mut s = String::new();
        for (n, word) in answer.split(' ').enumerate() {
            let piece = if n == 0 {
                word.to_string()
            } else {
                format!(" {word}")
            };
            s.push_str(&format!(
                "data: {{\"id\":\"chatcmpl-{i}\",\"object\":\"chat.completion.chunk\",\"created\":1714564800,\"model\":\"gpt-4o-mini\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{piece}\"}},\"finish_reason\":null}}]}}\n\n"
            ));
        }
        s.push_str(&format!("data: {{\"id\":\"chatcmpl-{i}\",\"object\":\"chat.completion.chunk\",\"created\":1714564800,\"model\":\"gpt-4o-mini\",\"choices\":[],\"usage\":{{\"prompt_tokens\":{words},\"completion_tokens\":{words},\"total_tokens\":{}}}}}\n\ndata: [DONE]\n\n", 2 * words));
        (s, "text/event-stream")
    } else {
        (
            format!(
                r#"{{"id":"chatcmpl-{i}","object":"chat.completion","created":1714564800,"model":"gpt-4o-mini","choices":[{{"index":0,"message":{{"role":"assistant","content":"{answer}"}},"finish_reason":"stop"}}],"usage":{{"prompt_tokens":{words},"completion_tokens":{words},"total_tokens":{}}}}}"#,
                2 * words
            ),
            "application/json",
        )
    };
    let mut headers = BTreeMap::new();
    headers.insert("Content-Type".to_string(), vec![content_type.to_string()]);
    HttpExchange {
        log_id: i as i64,
        request_id: format!("req-{i}"),
        method: "POST".into(),
        path: "/v1/chat/completions".into(),
        status: 200,
        duration_ns: 850_000_000,
        response_headers: Some(headers),
        response_body: Some(Bytes::from(body)),
        request_body: Some(Bytes::from(request)),
        timestamp: Some(time::OffsetDateTime::UNIX_EPOCH),
    }
}
