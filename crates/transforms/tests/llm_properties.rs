//! Whatever bytes and headers an exchange carries, the transformer neither
//! panics nor emits anything but one line of valid JSON — the serde text of
//! the payload `Transformer::transform` gives, though the engine's path
//! writes it without building that payload.

use bytes::Bytes;
use proptest::prelude::*;
use std::collections::BTreeMap;
use switchyard_core::{Event, HttpExchange, Transform, Verdict};
use switchyard_transforms::llm::{DefaultTransformer, LlmConfig, LlmTransform, Transformer};

fn body() -> impl Strategy<Value = Option<Vec<u8>>> {
    prop_oneof![
        Just(None),
        proptest::collection::vec(any::<u8>(), 0..300).prop_map(Some),
        // Text that looks like the formats the transformer recognises, so the
        // interesting paths get random input too.
        "(data: [{}\\[\\]a-z:\" ,0-9\\n]{0,40}\n\n){0,6}(data: \\[DONE\\]\n\n)?"
            .prop_map(|s| Some(s.into_bytes())),
        "\\{(\"[a-z_]{1,8}\":[0-9\"a-z{}\\[\\], ]{0,12},?){0,6}\\}"
            .prop_map(|s| Some(s.into_bytes())),
        // A `model` of any text, escaped where JSON needs it or not at all.
        any::<String>().prop_map(|m| {
            let model = serde_json::to_string(&m).unwrap();
            Some(format!("{{\"model\":{model},\"user\":{model}}}").into_bytes())
        }),
        proptest::collection::vec(any::<u8>(), 0..200).prop_map(|mut v| {
            // gzip magic, then garbage
            let mut b = vec![0x1f, 0x8b, 0x08];
            b.append(&mut v);
            Some(b)
        }),
    ]
}

fn headers() -> impl Strategy<Value = Option<BTreeMap<String, Vec<String>>>> {
    let name = prop_oneof![
        Just("Content-Type".to_string()),
        Just("Content-Encoding".to_string()),
        Just("Authorization".to_string()),
        any::<String>(),
    ];
    let value = prop_oneof![
        Just("text/event-stream".to_string()),
        Just("multipart/form-data".to_string()),
        Just("application/json".to_string()),
        Just("gzip".to_string()),
        Just("br, gzip".to_string()),
        Just("deflate".to_string()),
        any::<String>(),
    ];
    proptest::option::of(proptest::collection::btree_map(
        name,
        proptest::collection::vec(value, 0..3),
        0..4,
    ))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn any_exchange_gives_one_line_of_valid_json(
        post in prop::bool::weighted(0.9),
        request_id in any::<String>(),
        path in any::<String>(),
        status in any::<i64>(),
        duration_ns in any::<i64>(),
        log_id in any::<i64>(),
        request in body(),
        response in body(),
        response_headers in headers(),
        verbose in any::<bool>(),
        seconds in proptest::option::of(0i64..4_000_000_000),
    ) {
        let x = HttpExchange {
            log_id,
            request_id,
            method: if post { "POST".into() } else { "GET".into() },
            path,
            status,
            duration_ns,
            response_headers,
            response_body: response.map(Bytes::from),
            request_body: request.map(Bytes::from),
            // Without a timestamp each path takes the time it runs at.
            timestamp: seconds.map(|s| time::OffsetDateTime::from_unix_timestamp(s).unwrap()),
        };
        let config = LlmConfig { verbose, max_body_bytes: 4096, ..LlmConfig::default() };
        let payload = DefaultTransformer::new(config.clone()).transform(&x);
        let mut event = Event::from(x);
        let verdict = LlmTransform::default_with(config).apply(&mut event);
        prop_assert_eq!(verdict == Verdict::Filter, !post);
        if post {
            let mut out = Vec::new();
            event.write_json(&mut out).unwrap();
            prop_assert!(!out.contains(&b'\n'));
            let payload = payload.expect("a POST is kept");
            if seconds.is_some() {
                prop_assert_eq!(
                    std::str::from_utf8(&out).unwrap(),
                    serde_json::to_string(&payload).unwrap()
                );
            }
            let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
            prop_assert_eq!(&v["type"], "llm");
            prop_assert!(v["runId"].is_string());
        }
    }
}
