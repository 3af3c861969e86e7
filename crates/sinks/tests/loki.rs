//! The Loki sink against a local server that reads pushes as Loki does —
//! snappy + protobuf or JSON (+ gzip) — and enforces Loki's rules: the
//! content type, the tenant header, credentials, label-name syntax, at least
//! one label, entries of a stream in time order within a push, and no entry
//! older than what the stream already holds (`400 entry out of order`).
//! Each test asserts the exact streams Loki stored.
//!
//! The protobuf messages are declared here again, from Loki's `push.proto`,
//! rather than borrowed from the sink: the test checks the wire, not the
//! sink's own reading of it.

mod common;

use common::{build, config, Answer, Seen, Server};
use std::collections::HashMap;
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use switchyard_core::{Event, LogRecord, Sink, SinkErrorKind};
use switchyard_sinks::loki::LokiSink;

mod wire {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PushRequest {
        #[prost(message, repeated, tag = "1")]
        pub streams: Vec<StreamAdapter>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct StreamAdapter {
        #[prost(string, tag = "1")]
        pub labels: String,
        #[prost(message, repeated, tag = "2")]
        pub entries: Vec<EntryAdapter>,
        #[prost(uint64, tag = "3")]
        pub hash: u64,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct EntryAdapter {
        #[prost(message, optional, tag = "1")]
        pub timestamp: Option<Timestamp>,
        #[prost(string, tag = "2")]
        pub line: String,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Timestamp {
        #[prost(int64, tag = "1")]
        pub seconds: i64,
        #[prost(int32, tag = "2")]
        pub nanos: i32,
    }
}

/// A stream as Loki stored it: label text, then (Unix ns, line) entries.
type Stored = (String, Vec<(i128, String)>);

/// What a Loki instance requires of its clients.
#[derive(Default, Clone)]
struct Rules {
    tenant: Option<&'static str>,
    authorization: Option<String>,
}

/// A stand-in Loki: checks each push, stores what it accepts.
#[derive(Default)]
struct Loki {
    rules: Rules,
    /// Newest timestamp per (tenant, stream).
    newest: Mutex<HashMap<(String, String), i128>>,
    /// Accepted entries per push, in arrival order.
    pushes: Mutex<Vec<Vec<Stored>>>,
}

impl Loki {
    fn new(rules: Rules) -> Arc<Self> {
        Arc::new(Self {
            rules,
            ..Self::default()
        })
    }

    fn pushes(&self) -> Vec<Vec<Stored>> {
        self.pushes.lock().unwrap().clone()
    }

    fn answer(&self, seen: &Seen) -> Answer {
        match self.check(seen) {
            Ok(()) => Answer::status(204, ""),
            Err(answer) => answer,
        }
    }

    fn check(&self, seen: &Seen) -> Result<(), Answer> {
        let bad = |msg: String| Answer::status(400, msg);
        if seen.path != "/loki/api/v1/push" {
            return Err(Answer::status(404, "404 page not found"));
        }
        if seen.header("authorization") != self.rules.authorization.as_deref() {
            return Err(Answer::status(401, "Unauthorized"));
        }
        let tenant = seen.header("x-scope-orgid").unwrap_or("fake");
        if let Some(want) = self.rules.tenant {
            if seen.header("x-scope-orgid") != Some(want) {
                return Err(Answer::status(401, "no org id"));
            }
        }
        let streams = match seen.header("content-type") {
            Some("application/x-protobuf") => decode_protobuf(&seen.body).map_err(bad)?,
            Some("application/json") => {
                let gzip = seen.header("content-encoding") == Some("gzip");
                decode_json(&seen.body, gzip).map_err(bad)?
            }
            other => {
                return Err(Answer::status(
                    415,
                    format!("unsupported content type {other:?}"),
                ))
            }
        };
        let mut accepted = Vec::new();
        let mut ignored = Vec::new();
        let mut newest = self.newest.lock().unwrap();
        let total: usize = streams.iter().map(|s| s.1.len()).sum();
        for (labels, entries) in streams {
            let pairs = parse_labels(&labels).map_err(bad)?;
            if pairs.is_empty() {
                return Err(bad(
                    "error at least one label pair is required per stream".into()
                ));
            }
            let mut names: Vec<&String> = pairs.iter().map(|(n, _)| n).collect();
            names.sort();
            names.dedup();
            if names.len() != pairs.len() {
                return Err(bad(format!("duplicate label name in {labels}")));
            }
            let key = (tenant.to_string(), labels.clone());
            let mut kept = Vec::new();
            for (ts, line) in entries {
                let last = newest.get(&key).copied().unwrap_or(i128::MIN);
                if ts < last {
                    ignored.push(format!(
                        "entry with timestamp {ts} ignored, reason: 'entry out of order' for stream: {labels}"
                    ));
                    continue;
                }
                newest.insert(key.clone(), ts);
                kept.push((ts, line));
            }
            if !kept.is_empty() {
                accepted.push((labels, kept));
            }
        }
        self.pushes.lock().unwrap().push(accepted);
        if ignored.is_empty() {
            Ok(())
        } else {
            Err(bad(format!(
                "{},\ntotal ignored: {} out of {total}",
                ignored.join(",\n"),
                ignored.len()
            )))
        }
    }
}

fn decode_protobuf(body: &[u8]) -> Result<Vec<Stored>, String> {
    let raw = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| format!("snappy: {e}"))?;
    let req = <wire::PushRequest as prost::Message>::decode(raw.as_slice())
        .map_err(|e| format!("protobuf: {e}"))?;
    Ok(req
        .streams
        .into_iter()
        .map(|s| {
            let entries = s
                .entries
                .into_iter()
                .map(|e| {
                    let t = e.timestamp.unwrap_or(wire::Timestamp {
                        seconds: 0,
                        nanos: 0,
                    });
                    (t.seconds as i128 * 1_000_000_000 + t.nanos as i128, e.line)
                })
                .collect();
            (s.labels, entries)
        })
        .collect())
}

fn decode_json(body: &[u8], gzip: bool) -> Result<Vec<Stored>, String> {
    let mut text = Vec::new();
    if gzip {
        flate2::read::GzDecoder::new(body)
            .read_to_end(&mut text)
            .map_err(|e| format!("gzip: {e}"))?;
    } else {
        text = body.to_vec();
    }
    let v: serde_json::Value = serde_json::from_slice(&text).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for s in v["streams"].as_array().ok_or("no streams")? {
        // Loki builds the label text from the object, keys sorted.
        let mut pairs: Vec<(String, String)> = s["stream"]
            .as_object()
            .ok_or("stream is not an object")?
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
            .collect();
        pairs.sort();
        let labels = format!(
            "{{{}}}",
            pairs
                .iter()
                .map(|(k, v)| format!("{k}={}", serde_json::to_string(v).unwrap()))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let mut entries = Vec::new();
        for pair in s["values"].as_array().ok_or("no values")? {
            let ts: i128 = pair[0]
                .as_str()
                .ok_or("timestamp is not a string")?
                .parse()
                .map_err(|_| "timestamp is not a number")?;
            entries.push((ts, pair[1].as_str().ok_or("line")?.to_string()));
        }
        out.push((labels, entries));
    }
    Ok(out)
}

/// Read `{a="x", b="y"}` as Loki's parser does, checking name syntax.
fn parse_labels(text: &str) -> Result<Vec<(String, String)>, String> {
    let inner = text
        .strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
        .ok_or_else(|| format!("parse error: {text}"))?;
    let mut out = Vec::new();
    let mut chars = inner.chars().peekable();
    loop {
        while chars.peek() == Some(&' ') {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(out);
        }
        let name: String = std::iter::from_fn(|| chars.next_if(|c| *c != '=')).collect();
        let valid = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(format!("invalid label name {name:?} in {text}"));
        }
        if chars.next() != Some('=') || chars.next() != Some('"') {
            return Err(format!("parse error: {text}"));
        }
        let mut value = String::new();
        loop {
            match chars.next().ok_or_else(|| format!("parse error: {text}"))? {
                '"' => break,
                '\\' => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(c) => value.push(c),
                    None => return Err(format!("parse error: {text}")),
                },
                c => value.push(c),
            }
        }
        out.push((name, value));
        match chars.next() {
            Some(',') | None => {}
            Some(c) => return Err(format!("unexpected {c:?} in {text}")),
        }
    }
}

async fn loki(rules: Rules) -> (Server, Arc<Loki>) {
    let loki = Loki::new(rules);
    let l = loki.clone();
    (Server::start(move |s, _| l.answer(s)).await, loki)
}

fn sink(server: &Server, pairs: &[(&str, &str)]) -> LokiSink {
    let base = server.url("");
    let mut all = vec![("endpoint", base.as_str())];
    all.extend_from_slice(pairs);
    let settings = config(&all)
        .read::<switchyard_sinks::loki::LokiConfig>()
        .and_then(switchyard_sinks::loki::LokiConfig::settings)
        .unwrap();
    LokiSink::new(settings).unwrap()
}

/// A log record at `ts` (Unix ns) with a label `app`, a level and a message.
fn rec(ts: i128, app: &str, level: &str, msg: &str) -> Event {
    let json =
        serde_json::json!({"ts": ts as i64, "labels": {"app": app}, "level": level, "msg": msg});
    Event::from(serde_json::from_str::<LogRecord>(&json.to_string()).unwrap())
}

fn entries(list: &[(i128, &str)]) -> Vec<(i128, String)> {
    list.iter().map(|(t, l)| (*t, l.to_string())).collect()
}

const T: i128 = 1_764_460_800_000_000_000; // 2025-11-30T00:00:00Z

#[tokio::test]
async fn protobuf_push_groups_sorts_and_names_streams_exactly() {
    let (server, loki) = loki(Rules {
        tenant: Some("team-a"),
        ..Rules::default()
    })
    .await;
    let s = sink(
        &server,
        &[
            ("labels", "app={app},level={level},env=prod"),
            ("line", "message"),
            ("tenant", "team-a"),
        ],
    );
    let batch = vec![
        rec(T + 3, "api", "info", "third"),
        rec(T + 1, "api", "error", "boom"),
        rec(T + 2, "web", "info", "page"),
        rec(T + 1, "api", "info", "first"),
        rec(T + 2, "api", "info", "second"),
    ];
    s.send(&batch).await.unwrap();
    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].header("content-type"),
        Some("application/x-protobuf")
    );
    assert_eq!(seen[0].header("x-scope-orgid"), Some("team-a"));
    assert_eq!(seen[0].header("authorization"), None);
    assert_eq!(
        loki.pushes(),
        vec![vec![
            (
                r#"{app="api", env="prod", level="info"}"#.to_string(),
                entries(&[(T + 1, "first"), (T + 2, "second"), (T + 3, "third")])
            ),
            (
                r#"{app="api", env="prod", level="error"}"#.to_string(),
                entries(&[(T + 1, "boom")])
            ),
            (
                r#"{app="web", env="prod", level="info"}"#.to_string(),
                entries(&[(T + 2, "page")])
            ),
        ]]
    );
}

#[tokio::test]
async fn a_missing_tenant_is_refused_like_loki_does() {
    let (server, loki) = loki(Rules {
        tenant: Some("team-a"),
        ..Rules::default()
    })
    .await;
    let err = sink(&server, &[])
        .send(&[rec(T, "a", "info", "m")])
        .await
        .unwrap_err();
    assert_eq!(err.kind, SinkErrorKind::Partial);
    let e = &err.failed[0].error;
    assert_eq!(e.kind, SinkErrorKind::Permanent);
    assert!(
        e.message.contains("HTTP 401") && e.message.contains("tenant"),
        "{e}"
    );
    assert!(loki.pushes().is_empty());
}

#[tokio::test]
async fn the_default_line_is_the_records_json_and_the_default_label_is_job() {
    let (server, loki) = loki(Rules::default()).await;
    let e = rec(T, "api", "info", "hello");
    let mut json = Vec::new();
    e.write_json(&mut json).unwrap();
    sink(&server, &[]).send(&[e]).await.unwrap();
    assert_eq!(
        loki.pushes(),
        vec![vec![(
            r#"{job="switchyard"}"#.to_string(),
            vec![(T, String::from_utf8(json).unwrap())]
        )]]
    );
}

#[tokio::test]
async fn json_encoding_with_gzip_and_basic_auth() {
    let (server, loki) = loki(Rules {
        // base64("12345:glc_secret")
        authorization: Some("Basic MTIzNDU6Z2xjX3NlY3JldA==".into()),
        ..Rules::default()
    })
    .await;
    let s = sink(
        &server,
        &[
            ("encoding", "json"),
            ("compression", "gzip"),
            ("auth.user", "12345"),
            ("auth.password", "glc_secret"),
            ("labels", "app={app},quote=a\"b"),
            ("line", "message"),
        ],
    );
    s.send(&[
        rec(T + 5, "api", "info", "b"),
        rec(T + 4, "api", "info", "a"),
    ])
    .await
    .unwrap();
    let seen = server.seen();
    assert_eq!(seen[0].header("content-type"), Some("application/json"));
    assert_eq!(seen[0].header("content-encoding"), Some("gzip"));
    assert_eq!(
        loki.pushes(),
        vec![vec![(
            r#"{app="api", quote="a\"b"}"#.to_string(),
            entries(&[(T + 4, "a"), (T + 5, "b")])
        )]]
    );
}

#[tokio::test]
async fn the_api_key_is_a_bearer_token() {
    let (server, loki) = loki(Rules {
        authorization: Some("Bearer loki-key-1".into()),
        ..Rules::default()
    })
    .await;
    sink(&server, &[("api-key", "loki-key-1"), ("line", "message")])
        .send(&[rec(T, "a", "info", "m")])
        .await
        .unwrap();
    assert_eq!(loki.pushes()[0][0].1, entries(&[(T, "m")]));
}

#[tokio::test]
async fn label_names_are_sanitized_before_loki_sees_them() {
    let (server, loki) = loki(Rules::default()).await;
    sink(
        &server,
        &[
            ("labels", "service.name={app},1zone=eu-1,k8s-ns=prod"),
            ("line", "message"),
        ],
    )
    .send(&[rec(T, "api", "info", "m")])
    .await
    .unwrap();
    assert_eq!(
        loki.pushes()[0][0].0,
        r#"{_1zone="eu-1", k8s_ns="prod", service_name="api"}"#
    );
}

#[tokio::test]
async fn pushes_bounded_in_entries_keep_each_stream_in_order() {
    let (server, loki) = loki(Rules::default()).await;
    let s = sink(
        &server,
        &[
            ("batch-max-events", "2"),
            ("line", "message"),
            ("labels", "app={app}"),
        ],
    );
    let batch: Vec<Event> = [4, 0, 3, 1, 2]
        .iter()
        .map(|i| rec(T + i, "api", "info", &format!("m{i}")))
        .collect();
    s.send(&batch).await.unwrap();
    let label = r#"{app="api"}"#.to_string();
    assert_eq!(
        loki.pushes(),
        vec![
            vec![(label.clone(), entries(&[(T, "m0"), (T + 1, "m1")]))],
            vec![(label.clone(), entries(&[(T + 2, "m2"), (T + 3, "m3")]))],
            vec![(label, entries(&[(T + 4, "m4")]))],
        ]
    );
}

/// A first batch up to T+20, then a batch with one entry older than that.
async fn late_entry(
    policy: &str,
) -> (
    Server,
    Arc<Loki>,
    LokiSink,
    Result<(), switchyard_core::SinkError>,
) {
    let (server, loki) = loki(Rules::default()).await;
    let s = sink(
        &server,
        &[
            ("out-of-order", policy),
            ("line", "message"),
            ("labels", "app={app}"),
        ],
    );
    s.send(&[
        rec(T + 10, "api", "info", "a"),
        rec(T + 20, "api", "info", "b"),
    ])
    .await
    .unwrap();
    let result = s
        .send(&[
            rec(T + 5, "api", "info", "late"),
            rec(T + 30, "api", "info", "c"),
        ])
        .await;
    (server, loki, s, result)
}

#[tokio::test]
async fn out_of_order_accept_lets_loki_reject_and_the_entries_fail_permanently() {
    let (server, loki, s, result) = late_entry("accept").await;
    let err = result.unwrap_err();
    assert_eq!(err.kind, SinkErrorKind::Partial);
    let idx: Vec<usize> = err.failed.iter().map(|f| f.index).collect();
    assert_eq!(idx, [0, 1], "the whole rejected push fails");
    for f in &err.failed {
        assert_eq!(
            f.error.kind,
            SinkErrorKind::Permanent,
            "no retry loop: {}",
            f.error
        );
        assert!(
            f.error.message.contains("entries out of order"),
            "{}",
            f.error
        );
    }
    assert_eq!(server.seen().len(), 2);
    assert_eq!(s.out_of_order_dropped(), 0);
    // Loki kept the entry that was in order.
    assert_eq!(
        loki.pushes()[1],
        vec![(r#"{app="api"}"#.to_string(), entries(&[(T + 30, "c")]))]
    );
}

#[tokio::test]
async fn out_of_order_drop_fails_the_late_entry_and_sends_the_rest() {
    let (_server, loki, s, result) = late_entry("drop").await;
    let err = result.unwrap_err();
    assert_eq!(err.failed.len(), 1);
    assert_eq!(err.failed[0].index, 0);
    assert_eq!(err.failed[0].error.kind, SinkErrorKind::Permanent);
    assert!(err.failed[0].error.message.contains("out-of-order=drop"));
    assert_eq!(s.out_of_order_dropped(), 1);
    assert_eq!(
        loki.pushes()[1],
        vec![(r#"{app="api"}"#.to_string(), entries(&[(T + 30, "c")]))]
    );
}

#[tokio::test]
async fn out_of_order_rewrite_sends_the_late_entry_at_the_last_time() {
    let (_server, loki, s, result) = late_entry("rewrite_timestamp").await;
    result.unwrap();
    assert_eq!(s.out_of_order_dropped(), 0);
    assert_eq!(
        loki.pushes()[1],
        vec![(
            r#"{app="api"}"#.to_string(),
            entries(&[(T + 20, "late"), (T + 30, "c")])
        )]
    );
}

#[tokio::test]
async fn a_rate_limit_is_transient_with_retry_after_and_holds_back_later_pushes() {
    let server = Server::start(|_, _| {
        Answer::status(429, "Ingestion rate limit exceeded").header("Retry-After", "7")
    })
    .await;
    let s = sink(&server, &[("batch-max-events", "1")]);
    let err = s
        .send(&[
            rec(T, "a", "info", "1"),
            rec(T + 1, "a", "info", "2"),
            rec(T + 2, "a", "info", "3"),
        ])
        .await
        .unwrap_err();
    assert_eq!(server.seen().len(), 1, "later pushes wait for the retry");
    assert_eq!(err.failed.len(), 3);
    assert!(err
        .failed
        .iter()
        .all(|f| f.error.kind == SinkErrorKind::Transient));
    assert_eq!(err.retry_after, Some(Duration::from_secs(7)));
}

#[tokio::test]
async fn a_failed_push_does_not_count_as_delivered_so_its_retry_is_not_dropped() {
    let (server, loki) = {
        let loki = Loki::new(Rules::default());
        let l = loki.clone();
        let server = Server::start(move |s, n| {
            if n == 0 {
                Answer::status(503, "ingester not ready")
            } else {
                l.answer(s)
            }
        })
        .await;
        (server, loki)
    };
    let s = sink(&server, &[("out-of-order", "drop"), ("line", "message")]);
    let batch = [rec(T + 1, "a", "info", "x"), rec(T + 2, "a", "info", "y")];
    let err = s.send(&batch).await.unwrap_err();
    assert!(err
        .failed
        .iter()
        .all(|f| f.error.kind == SinkErrorKind::Transient));
    s.send(&batch).await.unwrap();
    assert_eq!(server.seen().len(), 2);
    assert_eq!(
        loki.pushes()[0][0].1,
        entries(&[(T + 1, "x"), (T + 2, "y")])
    );
}

#[tokio::test]
async fn the_engine_does_not_retry_an_out_of_order_rejection() {
    let (server, loki) = loki(Rules::default()).await;
    let s = sink(&server, &[("line", "message"), ("labels", "app={app}")]);
    s.send(&[rec(T + 10, "api", "info", "a")]).await.unwrap();
    let c = common::through_engine(Box::new(s), vec![rec(T + 5, "api", "info", "late")]).await;
    assert_eq!((c.sent, c.dropped), (0, 1));
    assert_eq!(
        server.seen().len(),
        2,
        "one push for the first entry, one for the late one, no retry"
    );
    assert_eq!(loki.pushes().len(), 2);
}

#[tokio::test]
async fn an_llm_payload_is_a_json_line_labelled_by_model() {
    let (server, loki) = loki(Rules::default()).await;
    let calls = common::calls(1);
    let switchyard_core::Payload::Json(doc) = &calls[0].payload else {
        panic!("the transformer gives a JSON payload")
    };
    let line = doc.get().to_string();
    sink(
        &server,
        &[("labels", "model={name},status={metadata.status}")],
    )
    .send(&calls)
    .await
    .unwrap();
    // The exchange's time: 2024-05-01T12:00:05.5Z.
    assert_eq!(
        loki.pushes(),
        vec![vec![(
            r#"{model="gpt-4o-mini", status="200"}"#.to_string(),
            vec![(1_714_564_805_500_000_000, line.clone())]
        )]]
    );
    assert!(
        !line.contains("upstream-secret"),
        "the payload carries no credentials"
    );
}

#[tokio::test]
async fn bad_options_stop_the_sink_at_start_with_the_key_named() {
    let e = build(
        "loki",
        &[
            ("endpoint", "http://127.0.0.1:9"),
            ("labels", "rid={request_id}"),
        ],
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        e.starts_with("--sink-option labels: ") && e.contains("high cardinality"),
        "{e}"
    );
    let built = switchyard_sinks::builtin().build(
        "loki",
        &config(&[("endpoint", "http://127.0.0.1:9"), ("labels", "app={app}")]),
    );
    assert!(built.is_ok(), "registered as `loki`");
}
