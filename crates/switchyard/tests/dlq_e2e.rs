//! End to end: a poison event (permanent 400 from the sink) lands in the
//! dead-letter queue with its reason while the rest keeps flowing; `switchyard
//! dlq` lists and shows it, and `dlq replay` to a working sink delivers it and
//! empties the queue.

mod common;

use common::{dispatcher_command, final_counters, free_port, spawn_listening, stop_with_output};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Output};

fn post(port: u16, body: &str) -> u16 {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "POST /v1/logs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out[9..12].parse().unwrap()
}

fn dlq(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .arg("dlq")
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "dlq {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[test]
fn a_poison_event_is_dead_lettered_and_replayed_to_a_working_sink() {
    let (sink_port, accepted) = common::refusing_server("poison");
    let dir = tempfile::tempdir().unwrap();
    let queue = dir.path().join("dlq");
    let queue = queue.to_str().unwrap();
    let endpoint = format!("http://127.0.0.1:{sink_port}/ingest");
    let port = free_port();
    let child = spawn_listening(
        dispatcher_command(port).args([
            "--service",
            "http",
            "--endpoint",
            &endpoint,
            "--batch-size",
            "1",
            "--flush-interval",
            "20ms",
            "--retry-backoff",
            "10ms",
            "--dlq-dir",
            queue,
            "--dlq-auto-retry",
            "false",
        ]),
        port,
    );
    let body = r#"[{"msg":"ok-1"},{"msg":"poison","level":"error"},{"msg":"ok-2"}]"#;
    assert_eq!(post(port, body), 202);
    let (out, _) = stop_with_output(child);
    let c = final_counters(&out);
    assert_eq!(
        (c["received"], c["sent"], c["dead_lettered"], c["dropped"]),
        (3, 2, 1, 0),
        "{out}"
    );
    let bodies = accepted.lock().unwrap().join("\n");
    assert!(
        bodies.contains("ok-1") && bodies.contains("ok-2"),
        "{bodies}"
    );

    let list = stdout(&dlq(&["list", "--dir", queue]));
    let rows: Vec<&str> = list.lines().skip(1).collect();
    assert_eq!(rows.len(), 1, "{list}");
    assert!(rows[0].starts_with("1 "), "{list}");
    assert!(
        rows[0].contains("http") && rows[0].contains("permanent"),
        "{list}"
    );
    assert!(rows[0].contains("HTTP 400"), "{list}");

    let show: serde_json::Value =
        serde_json::from_str(&stdout(&dlq(&["show", "1", "--dir", queue]))).unwrap();
    assert_eq!(show["sink"], "http");
    assert_eq!(show["error_kind"], "permanent");
    assert_eq!(show["attempts"], 1, "a permanent error is not retried");
    assert_eq!(show["event"]["msg"], "poison");
    assert_eq!(show["event"]["level"], "error");

    let out_file = dir.path().join("replayed.jsonl");
    let replay = dlq(&[
        "replay",
        "--all",
        "--to",
        "file",
        "--endpoint",
        out_file.to_str().unwrap(),
        "--dir",
        queue,
    ]);
    assert_eq!(stdout(&replay).trim(), "replayed 1, failed 0");
    let replayed = std::fs::read_to_string(&out_file).unwrap();
    let lines: Vec<serde_json::Value> = replayed
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{replayed}");
    assert_eq!(lines[0]["msg"], "poison");

    let list = stdout(&dlq(&["list", "--dir", queue]));
    assert_eq!(list.lines().count(), 1, "only the header is left: {list}");
}

#[test]
fn purge_removes_what_it_is_told_and_replay_of_a_missing_id_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let queue = dir.path().join("dlq");
    let queue = queue.to_str().unwrap();
    let out = dlq(&["purge", "--all", "--dir", queue]);
    assert_eq!(stdout(&out).trim(), "purged 0");
    let missing = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args([
            "dlq",
            "replay",
            "--id",
            "7",
            "--to",
            "blackhole",
            "--dir",
            queue,
        ])
        .output()
        .unwrap();
    assert!(!missing.status.success());
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(err.contains("no record 7"), "{err}");
}

#[test]
fn a_replay_that_fails_transiently_is_listed_as_such_not_as_permanent() {
    let (sink_port, _) = common::refusing_server("poison");
    let dir = tempfile::tempdir().unwrap();
    let queue = dir.path().join("dlq");
    let queue = queue.to_str().unwrap();
    let endpoint = format!("http://127.0.0.1:{sink_port}/ingest");
    let port = free_port();
    let child = spawn_listening(
        dispatcher_command(port).args([
            "--service",
            "http",
            "--endpoint",
            &endpoint,
            "--batch-size",
            "1",
            "--flush-interval",
            "20ms",
            "--dlq-dir",
            queue,
            "--dlq-auto-retry",
            "false",
        ]),
        port,
    );
    assert_eq!(post(port, r#"{"msg":"poison"}"#), 202);
    let (out, _) = stop_with_output(child);
    assert_eq!(final_counters(&out)["dead_lettered"], 1, "{out}");
    assert!(stdout(&dlq(&["list", "--dir", queue])).contains("permanent"));

    // The service is down now: the replay fails for a transient reason.
    let down = format!("http://127.0.0.1:{}/ingest", free_port());
    let replay = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args([
            "dlq",
            "replay",
            "--all",
            "--endpoint",
            &down,
            "--dir",
            queue,
        ])
        .env("RUST_LOG", "error")
        .output()
        .unwrap();
    assert!(!replay.status.success());
    assert_eq!(stdout(&replay).trim(), "replayed 0, failed 1");
    let list = stdout(&dlq(&["list", "--dir", queue]));
    let row = list.lines().nth(1).unwrap();
    assert!(
        row.contains("retries_exhausted") && !row.contains("permanent"),
        "{list}"
    );
    assert!(
        row.split_whitespace().any(|w| w == "2"),
        "two attempts: {list}"
    );
}
