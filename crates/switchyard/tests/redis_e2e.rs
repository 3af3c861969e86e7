//! End to end with Redis: real `switchyard dispatcher` processes reading a
//! private `redis-server`, writing JSONL files; events published with the
//! library's publisher, results checked in the files and with raw commands.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use switchyard_bus::redis::{Publisher, PublisherConfig, RedisTarget, Wire};
use switchyard_core::{Event, HttpExchange};
use switchyard_testkit::RedisServer;

mod common;

use common::{dispatcher_command, final_counters, free_port, spawn_listening, stop_with_output};

const STREAM: &str = "llm-proxy-events";
const GROUP: &str = "llm-proxy-dispatchers";

/// A dispatcher on the Redis bus writing to `out`.
fn dispatcher(server: &RedisServer, bus: &str, out: &Path, extra: &[&str]) -> Child {
    let port = free_port();
    let mut cmd = dispatcher_command(port);
    cmd.args(["--event-bus", bus, "--service", "file"])
        .args(["--endpoint", out.to_str().unwrap()])
        .args(["--redis-url", &server.url()])
        .args(["--batch-size", "500", "--flush-interval", "50ms"])
        .args(["--file-sync", "false"])
        .args(["--redis-stream-block-time", "200ms"])
        .args(extra)
        .stderr(Stdio::null());
    spawn_listening(&mut cmd, port)
}

/// SIGTERM, wait, and return the final counters as name → value.
fn stop(child: Child) -> HashMap<String, u64> {
    final_counters(&stop_with_output(child).0)
}

/// Request ids in the JSONL files (a torn last line after kill -9 is skipped).
fn delivered(files: &[&PathBuf]) -> Vec<String> {
    let mut ids = Vec::new();
    for f in files {
        let Ok(text) = std::fs::read_to_string(f) else {
            continue;
        };
        for line in text.lines() {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(line) {
                // Lines are LLM payloads (the default transform); the request id
                // is in their metadata.
                let id = v["metadata"]["request_id"]
                    .as_str()
                    .or(v["RequestID"].as_str());
                ids.push(id.unwrap_or_default().to_string());
            }
        }
    }
    ids
}

fn unique(ids: &[String]) -> usize {
    ids.iter().collect::<std::collections::HashSet<_>>().len()
}

fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn pending(server: &RedisServer) -> u64 {
    let summary = server.command(&["XPENDING", STREAM, GROUP]).unwrap();
    summary.lines().next().unwrap().parse().unwrap()
}

fn consumers(server: &RedisServer) -> usize {
    server
        .command(&["XINFO", "CONSUMERS", STREAM, GROUP])
        .map(|r| r.lines().filter(|l| *l == "name").count())
        .unwrap_or(0)
}

/// Publish `n` HTTP exchanges to the stream through the library publisher.
fn publish(server: &RedisServer, n: usize) {
    publish_range(server, 0..n);
}

/// Publish `req-<i>` for each `i` in `range`.
fn publish_range(server: &RedisServer, range: std::ops::Range<usize>) {
    let n = range.len();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let target = RedisTarget::new(Some(&server.url()), "", None).unwrap();
        let publisher = Publisher::start(
            &target,
            PublisherConfig {
                // Large enough that nothing is trimmed before it is read.
                wire: Wire::Stream {
                    stream: STREAM.into(),
                    max_len: 1_000_000,
                },
                buffer: n,
                pipeline: 512,
            },
        )
        .unwrap();
        let accepted = publisher.publish_all(range.map(|i| -> Event {
            HttpExchange {
                request_id: format!("req-{i}"),
                method: "POST".into(),
                path: "/v1/chat/completions".into(),
                status: 200,
                duration_ns: 1_000_000,
                ..Default::default()
            }
            .into()
        }));
        assert_eq!(accepted, n);
        let stats = publisher.close(Duration::from_secs(60)).await;
        assert_eq!(stats.written, n as u64, "{stats:?}");
    });
}

/// Two processes in one group split the stream; every event lands exactly once.
#[test]
fn two_dispatchers_share_one_group_each_event_delivered_once() {
    const N: usize = 100_000;
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let (a_out, b_out) = (dir.path().join("a.jsonl"), dir.path().join("b.jsonl"));
    let a = dispatcher(&server, "redis", &a_out, &[]);
    let b = dispatcher(&server, "redis-streams", &b_out, &[]);
    wait_until("both consumers joined", Duration::from_secs(20), || {
        consumers(&server) == 2
    });
    publish(&server, N);
    wait_until("every event delivered", Duration::from_secs(90), || {
        delivered(&[&a_out, &b_out]).len() >= N && pending(&server) == 0
    });
    let (ca, cb) = (stop(a), stop(b));
    let ids = delivered(&[&a_out, &b_out]);
    assert_eq!(ids.len(), N, "no duplicates");
    assert_eq!(unique(&ids), N, "no losses");
    assert!(
        ca["sent"] > 0 && cb["sent"] > 0,
        "both took a share: {ca:?} {cb:?}"
    );
    assert_eq!(ca["redis_acked"] + cb["redis_acked"], N as u64);
    assert_eq!(pending(&server), 0);
}

/// kill -9 one of two dispatchers mid-stream: the other claims what it left
/// pending; everything Redis accepted is delivered, duplicates are counted.
#[test]
fn kill_9_mid_stream_loses_nothing() {
    const N: usize = 50_000;
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let (a_out, b_out) = (dir.path().join("a.jsonl"), dir.path().join("b.jsonl"));
    let claim = ["--redis-stream-claim-time", "1s"];
    let mut a = dispatcher(&server, "redis", &a_out, &claim);
    let b = dispatcher(&server, "redis", &b_out, &claim);
    wait_until("both consumers joined", Duration::from_secs(20), || {
        consumers(&server) == 2
    });
    publish(&server, N);
    wait_until("the victim delivered some", Duration::from_secs(60), || {
        !delivered(&[&a_out]).is_empty()
    });
    a.kill().unwrap(); // SIGKILL
    a.wait().unwrap();
    wait_until("every event delivered", Duration::from_secs(90), || {
        unique(&delivered(&[&a_out, &b_out])) >= N && pending(&server) == 0
    });
    let cb = stop(b);
    let ids = delivered(&[&a_out, &b_out]);
    assert_eq!(unique(&ids), N, "total delivered = published");
    let duplicates = (ids.len() - N) as u64;
    assert!(
        duplicates <= cb["redis_claimed"],
        "duplicates ({duplicates}) are bounded by the claimed entries: {cb:?}"
    );
}

/// `--event-bus redis-list`: reads the LIST log incrementally, in LogID order,
/// and keeps the offset under the spec's key.
#[test]
fn list_bus_delivers_in_order_and_keeps_the_offset_key() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("l.jsonl");
    for i in 1..=300 {
        let id = server.command(&["INCR", "llm-proxy-events:seq"]).unwrap();
        let json = format!(
            r#"{{"LogID":{id},"RequestID":"req-{i}","Method":"POST","Path":"/p","Status":200,"Duration":5}}"#
        );
        server
            .command(&["LPUSH", "llm-proxy-events", &json])
            .unwrap();
    }
    let d = dispatcher(&server, "redis-list", &out, &[]);
    wait_until("300 events", Duration::from_secs(60), || {
        delivered(&[&out]).len() >= 300
    });
    wait_until("the offset", Duration::from_secs(30), || {
        server
            .command(&["GET", "llm-proxy-dispatcher:file:last_id"])
            .unwrap()
            == "300"
    });
    let c = stop(d);
    let ids = delivered(&[&out]);
    let expected: Vec<String> = (1..=300).map(|i| format!("req-{i}")).collect();
    assert_eq!(ids, expected);
    assert_eq!(c["redis_lost"], 0);
}

/// Redis down when the dispatcher starts, then restarted mid-stream: the
/// dispatcher reconnects with backoff and every event Redis kept is delivered.
#[test]
fn redis_down_at_start_and_restarted_mid_stream_loses_nothing() {
    const N: usize = 20_000;
    let mut server = RedisServer::start();
    server.stop();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.jsonl");
    let d = dispatcher(&server, "redis", &out, &["--redis-stream-claim-time", "1s"]);
    server.start_again();
    wait_until("the consumer joined", Duration::from_secs(30), || {
        consumers(&server) == 1
    });
    publish_range(&server, 0..N / 2);
    wait_until("some delivered", Duration::from_secs(60), || {
        !delivered(&[&out]).is_empty()
    });
    server.restart_keeping_data();
    publish_range(&server, N / 2..N);
    wait_until("every event delivered", Duration::from_secs(90), || {
        unique(&delivered(&[&out])) >= N && pending(&server) == 0
    });
    let c = stop(d);
    let ids = delivered(&[&out]);
    assert_eq!(unique(&ids), N);
    assert_eq!(
        ids.len() as u64,
        c["redis_read"] + c["redis_redelivered"] + c["redis_claimed"],
        "every delivery is accounted for: {c:?}"
    );
}

/// The proxy's environment variables configure the dispatcher alone.
#[test]
fn configured_by_the_proxy_environment_variables() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("env.jsonl");
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .arg("dispatcher")
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args([
            "--endpoint",
            out.to_str().unwrap(),
            "--flush-interval",
            "50ms",
        ])
        .env("LLM_PROXY_EVENT_BUS", "redis")
        .env("REDIS_ADDR", server.addr())
        .env("REDIS_DB", "3")
        .env("REDIS_STREAM_KEY", "custom-events")
        .env("REDIS_CONSUMER_GROUP", "custom-group")
        .env("REDIS_CONSUMER_NAME", "custom-consumer")
        .env("REDIS_STREAM_BLOCK_TIME", "100")
        .env("REDIS_STREAM_CLAIM_TIME", "5000")
        .env("REDIS_STREAM_BATCH_SIZE", "7")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The raw helper opens a fresh connection per command (database 0); a
    // script can SELECT database 3 for the one command it runs.
    let select_db = |args: &[&str]| {
        let mut full = vec![
            "EVAL",
            "redis.call('SELECT', 3) return redis.call(unpack(ARGV))",
            "0",
        ];
        full.extend_from_slice(args);
        server.command(&full)
    };
    wait_until("the group in db 3", Duration::from_secs(30), || {
        select_db(&["XINFO", "CONSUMERS", "custom-events", "custom-group"])
            .map(|r| r.contains("custom-consumer"))
            .unwrap_or(false)
    });
    for i in 0..20 {
        let json = format!(
            r#"{{"LogID":0,"RequestID":"env-{i}","Method":"POST","Path":"/p","Status":200,"Duration":1}}"#
        );
        select_db(&["XADD", "custom-events", "*", "data", &json]).unwrap();
    }
    wait_until("20 events", Duration::from_secs(30), || {
        delivered(&[&out]).len() >= 20
    });
    let c = stop(child);
    assert_eq!(c["redis_acked"], 20);
    assert_eq!(unique(&delivered(&[&out])), 20);
}

/// Ten good entries and one the sink refuses for good (`req-refused`), in
/// one read; returns the refused entry's id.
fn publish_with_one_refused(server: &RedisServer) -> String {
    let entry = |id: &str| {
        format!(
            r#"{{"LogID":0,"RequestID":"{id}","Method":"POST","Path":"/v1/chat/completions","Status":200,"Duration":1000,"ResponseHeaders":null,"ResponseBody":null,"RequestBody":null}}"#
        )
    };
    let mut refused = String::new();
    for i in 0..11 {
        let id = if i == 5 {
            "req-refused".to_string()
        } else {
            format!("req-{i}")
        };
        let entry_id = server
            .command(&["XADD", STREAM, "*", "data", &entry(&id)])
            .unwrap();
        if i == 5 {
            refused = entry_id;
        }
    }
    refused
}

/// A dispatcher sending each event to `sink_port` over HTTP (one event per
/// request, so the refusal hits one event only), a claim time short enough
/// that a wrongly pending entry would come back during the test.
fn http_dispatcher(server: &RedisServer, sink_port: u16, extra: &[&str]) -> Child {
    let port = free_port();
    let endpoint = format!("http://127.0.0.1:{sink_port}/ingest");
    let mut cmd = dispatcher_command(port);
    cmd.args(["--event-bus", "redis", "--service", "http"])
        .args(["--endpoint", &endpoint])
        .args(["--redis-url", &server.url()])
        .args(["--batch-size", "1", "--flush-interval", "20ms"])
        .args(["--retry-backoff", "10ms"])
        .args(["--redis-stream-block-time", "100ms"])
        .args(["--redis-stream-claim-time", "300ms"])
        .args(extra)
        .stderr(Stdio::null());
    spawn_listening(&mut cmd, port)
}

/// The refused event is kept in the dispatcher's DLQ, so its entry is
/// settled: acknowledged, nothing pending, nothing in `<stream>:dead`.
#[test]
fn a_permanently_refused_event_with_a_dlq_is_dead_lettered_and_acknowledged() {
    let server = RedisServer::start();
    publish_with_one_refused(&server);
    let (sink_port, accepted) = common::refusing_server("req-refused");
    let dir = tempfile::tempdir().unwrap();
    let queue = dir.path().join("dlq");
    let d = http_dispatcher(
        &server,
        sink_port,
        &[
            "--dlq-dir",
            queue.to_str().unwrap(),
            "--dlq-auto-retry",
            "false",
        ],
    );
    wait_until("ten events accepted", Duration::from_secs(60), || {
        accepted.lock().unwrap().len() >= 10
    });
    wait_until("nothing pending", Duration::from_secs(30), || {
        pending(&server) == 0
    });
    // Several claim times: a wrongly pending entry would be delivered again.
    std::thread::sleep(Duration::from_millis(1500));
    let c = stop(d);
    assert_eq!(accepted.lock().unwrap().len(), 10, "no duplicates: {c:?}");
    assert_eq!(c["redis_dead_lettered"], 1, "{c:?}");
    assert_eq!((c["redis_delivered"], c["redis_acked"]), (10, 11), "{c:?}");
    assert_eq!((c["redis_dropped"], c["redis_claimed"]), (0, 0), "{c:?}");
    assert_eq!(pending(&server), 0);
    let dead_key = format!("{STREAM}:dead");
    assert_eq!(server.command(&["XLEN", &dead_key]).unwrap(), "0");
    let list = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["dlq", "list", "--dir", queue.to_str().unwrap()])
        .output()
        .unwrap();
    let list = String::from_utf8(list.stdout).unwrap();
    assert_eq!(
        list.lines().skip(1).count(),
        1,
        "one record in the DLQ: {list}"
    );
    assert!(list.contains("HTTP 400"), "{list}");
}

/// Without a DLQ the refused event is dropped by the engine; the source
/// keeps its entry in `<stream>:dead` and acknowledges it, so it neither
/// stays pending nor comes back with its neighbours.
#[test]
fn a_permanently_refused_event_without_a_dlq_is_kept_in_the_dead_stream_and_acknowledged() {
    let server = RedisServer::start();
    let refused = publish_with_one_refused(&server);
    let (sink_port, accepted) = common::refusing_server("req-refused");
    let d = http_dispatcher(&server, sink_port, &["--no-dlq"]);
    let dead_key = format!("{STREAM}:dead");
    wait_until("the refused entry kept", Duration::from_secs(60), || {
        server.command(&["XLEN", &dead_key]).unwrap() == "1"
    });
    wait_until("nothing pending", Duration::from_secs(30), || {
        pending(&server) == 0
    });
    std::thread::sleep(Duration::from_millis(1500));
    let c = stop(d);
    assert_eq!(accepted.lock().unwrap().len(), 10, "no duplicates: {c:?}");
    assert_eq!((c["redis_dropped"], c["redis_delivered"]), (1, 10), "{c:?}");
    assert_eq!((c["redis_acked"], c["redis_claimed"]), (11, 0), "{c:?}");
    assert_eq!(pending(&server), 0);
    let dead = server.command(&["XRANGE", &dead_key, "-", "+"]).unwrap();
    let fields: Vec<&str> = dead.lines().skip(1).collect();
    assert_eq!(
        fields[..4],
        [
            "id",
            refused.as_str(),
            "reason",
            "dropped after delivery failed"
        ],
        "{dead}"
    );
    assert_eq!(fields[4], "data");
    assert!(
        fields[5].contains("req-refused"),
        "the original entry: {dead}"
    );
}

/// `switchyard bench redis-publish` and `redis-dispatch` move every event
/// through a real Redis server and say so; `--print-sample` prints the
/// event it publishes.
#[test]
fn bench_redis_publish_and_dispatch_move_every_event() {
    let server = RedisServer::start();
    let url = server.url();

    let sample = common::bench(&["redis-publish", "--print-sample", "--body-bytes", "64"]);
    let sample: serde_json::Value = serde_json::from_str(&sample).unwrap();
    assert_eq!(sample["RequestID"], "req-0", "{sample}");

    let out = common::bench(&["redis-publish", "--redis-url", &url, "--events", "1000"]);
    assert_eq!(common::number_after(&out, "events:   "), 1000, "{out}");
    assert!(out.contains("events/s: "), "{out}");

    let out = common::bench(&[
        "redis-dispatch",
        "--redis-url",
        &url,
        "--events",
        "1000",
        "--body-bytes",
        "256",
        "--sync",
        "false",
    ]);
    assert_eq!(
        common::number_after(&out, "events:          "),
        1000,
        "{out}"
    );
    assert_eq!(
        common::number_after(&out, "lines on disk:   "),
        1000,
        "{out}"
    );
    assert!(out.contains("dispatcher CPU:  "), "{out}");
    assert!(
        out.contains("final counters: received=1000 sent=1000"),
        "{out}"
    );
}
