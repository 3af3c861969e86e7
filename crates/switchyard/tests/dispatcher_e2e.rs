//! End to end: the real binary, real HTTP, real file.

mod common;

use common::{dispatcher_command, free_port, spawn_listening, stop_with_output};

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

fn start(args: &[&str], port: u16) -> Child {
    spawn_listening(dispatcher_command(port).args(args), port)
}

/// Minimal HTTP/1.1 POST; returns (status, body).
fn post(port: u16, path: &str, body: &[u8], extra: &str) -> (u16, String) {
    common::http_with(port, "POST", path, body, extra)
}

fn stop(child: Child) -> String {
    stop_with_output(child).0
}

fn counter(line: &str, name: &str) -> u64 {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
        .unwrap()
        .parse()
        .unwrap()
}

/// A dispatcher writing to a fresh temp file; returns (dir guard, file, port, child).
fn start_to_file(extra: &[&str]) -> (tempfile::TempDir, std::path::PathBuf, u16, Child) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.jsonl");
    let port = free_port();
    let mut args = vec!["--endpoint", out.to_str().unwrap()];
    args.extend_from_slice(extra);
    let child = start(&args, port);
    (dir, out, port, child)
}

#[test]
fn ten_thousand_events_over_several_connections_land_exactly_once() {
    let (_dir, out, port, child) = start_to_file(&["--flush-interval", "100ms"]);
    let threads: Vec<_> = (0..4)
        .map(|t| {
            std::thread::spawn(move || {
                for chunk in 0..25 {
                    let records: Vec<String> = (0..100)
                        .map(|i| {
                            format!(
                                r#"{{"msg":"hello","level":"info","seq":{}}}"#,
                                t * 10_000 + chunk * 100 + i
                            )
                        })
                        .collect();
                    let body = format!("[{}]", records.join(","));
                    let (status, resp) = post(port, "/v1/logs", body.as_bytes(), "");
                    assert_eq!(status, 202, "{resp}");
                    assert_eq!(resp, r#"{"accepted":100}"#);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let stdout = stop(child);
    let line = stdout
        .lines()
        .find(|l| l.starts_with("final counters:"))
        .expect(&stdout);
    assert_eq!(counter(line, "received"), 10_000);
    assert_eq!(counter(line, "sent"), 10_000);
    assert_eq!(
        counter(line, "received"),
        counter(line, "sent") + counter(line, "filtered") + counter(line, "dropped")
    );
    let mut seen = std::collections::HashSet::new();
    for l in BufReader::new(std::fs::File::open(&out).unwrap()).lines() {
        let v: serde_json::Value = serde_json::from_str(&l.unwrap()).unwrap();
        assert_eq!(v["msg"], "hello");
        assert!(seen.insert(v["seq"].as_u64().unwrap()), "duplicate {v}");
    }
    assert_eq!(seen.len(), 10_000);
}

#[test]
fn ingest_errors_accept_nothing() {
    let (_dir, out, port, child) =
        start_to_file(&["--ingest-token", "s3cret", "--max-body", "1000"]);
    let auth = "Authorization: Bearer s3cret\r\n";
    let (s, _) = post(port, "/v1/events", br#"{"RequestID":"a"}"#, "");
    assert_eq!(s, 401);
    let (s, _) = post(
        port,
        "/v1/events",
        br#"{"RequestID":"a"}"#,
        "Authorization: Bearer nope\r\n",
    );
    assert_eq!(s, 401);
    let (s, body) = post(
        port,
        "/v1/events",
        br#"[{"RequestID":"a"},{"Status":"bad"}]"#,
        auth,
    );
    assert_eq!(s, 400);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["index"], 1);
    assert_eq!(v["field"], "Status");
    let (s, _) = post(port, "/v1/logs", &vec![b' '; 2000], auth);
    assert_eq!(s, 413);
    let (s, body) = post(
        port,
        "/v1/events",
        br#"{"RequestID":"ok","Method":"POST","Status":200}"#,
        auth,
    );
    assert_eq!(s, 202, "{body}");
    let stdout = stop(child);
    let line = stdout
        .lines()
        .find(|l| l.starts_with("final counters:"))
        .unwrap();
    assert_eq!(counter(line, "sent"), 1, "only the valid request's event");
    let text = std::fs::read_to_string(&out).unwrap();
    assert_eq!(text.lines().count(), 1);
    // Written as the LLM payload the default transformer makes of it.
    assert!(text.contains(r#""request_id":"ok""#), "{text}");
}

#[test]
fn bad_flags_and_unknown_bus_are_clear_errors() {
    let bin = env!("CARGO_BIN_EXE_switchyard");
    let out = Command::new(bin)
        .args(["dispatcher", "--event-bus", "nats"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("expected memory, redis, redis-streams or redis-list"));
    let out = Command::new(bin)
        .args([
            "dispatcher",
            "--event-bus",
            "redis",
            "--service",
            "blackhole",
        ])
        .args([
            "--listen",
            "127.0.0.1:0",
            "--redis-url",
            "http://:hunter2@h:1",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("REDIS_URL") && !err.contains("hunter2"),
        "{err}"
    );
    let out = Command::new(bin)
        .args(["dispatcher", "--batch-size", "0"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("greater than 0"));
    let out = Command::new(bin)
        .args(["dispatcher", "--service", "nope"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("available: blackhole, file"));
    let out = Command::new(bin).arg("plugins").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("file"));
}

#[test]
fn detach_returns_once_listening_and_stops_on_signal() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let pid_file = dir.path().join("d.pid");
    let log_file = dir.path().join("d.log");
    let out_file = dir.path().join("events.jsonl");
    let status = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args([
            "dispatcher",
            "--detach",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .args([
            "--pid-file",
            pid_file.to_str().unwrap(),
            "--log-file",
            log_file.to_str().unwrap(),
        ])
        .args(["--endpoint", out_file.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(status.success());
    // Returned only after the child listens: the port answers right away.
    let pid: u32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let (s, _) = post(port, "/v1/logs", br#"{"msg":"bg"}"#, "");
    assert_eq!(s, 202);
    assert!(
        std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "child alive"
    );
    Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while pid_file.exists() {
        assert!(Instant::now() < deadline, "pid file not removed at exit");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Give the final counters line time to reach the log.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let log = std::fs::read_to_string(&log_file).unwrap_or_default();
        if log.contains("final counters: received=1 sent=1") {
            break;
        }
        assert!(Instant::now() < deadline, "no final counters in log: {log}");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(std::fs::read_to_string(&out_file)
        .unwrap()
        .contains(r#""msg":"bg""#));
}

/// Lines in `out` once at least `n` are there (bounded wait).
fn wait_for_lines(out: &std::path::Path, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let lines: Vec<String> = std::fs::read_to_string(out)
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect();
        if lines.len() >= n {
            return lines;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {n} lines",
            lines.len()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn tailed_file_lines_are_delivered_once_across_a_restart() {
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("app.log");
    let state = logs.path().join("state");
    let write = |range: std::ops::Range<usize>| {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        for i in range {
            writeln!(f, r#"{{"msg":"line {i}","seq":{i}}}"#).unwrap();
        }
    };
    write(0..3000);
    let glob = logs.path().join("*.log").display().to_string();
    let args = [
        "--tail",
        glob.as_str(),
        "--state-dir",
        state.to_str().unwrap(),
        "--tail-json",
        "--flush-interval",
        "100ms",
    ];
    let (_dir, out, _port, child) = start_to_file(&args);
    wait_for_lines(&out, 3000);
    let summary = stop(child);
    assert!(summary.contains("sent=3000"), "{summary}");

    // Written while the dispatcher was down: read after the restart, and
    // nothing from before it again.
    write(3000..3500);
    let port = free_port();
    let child = start(
        &[&["--endpoint", out.to_str().unwrap()], &args[..]].concat(),
        port,
    );
    wait_for_lines(&out, 3500);
    std::thread::sleep(Duration::from_millis(300));
    let summary = stop(child);
    assert!(summary.contains("sent=500"), "{summary}");
    let mut seqs: Vec<u64> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["seq"]
                .as_u64()
                .unwrap()
        })
        .collect();
    seqs.sort();
    assert_eq!(
        seqs,
        (0..3500).collect::<Vec<_>>(),
        "every line exactly once"
    );
}

#[test]
fn syslog_over_udp_and_tcp_lands_as_structured_records() {
    let udp_port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let tcp_port = free_port();
    let udp_addr = format!("127.0.0.1:{udp_port}");
    let tcp_addr = format!("127.0.0.1:{tcp_port}");
    let (_dir, out, _port, child) = start_to_file(&[
        "--syslog-udp",
        &udp_addr,
        "--syslog-tcp",
        &tcp_addr,
        "--flush-interval",
        "50ms",
    ]);
    let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .send_to(
            b"<34>1 2003-10-11T22:14:15.003Z mymachine su - ID47 - 'su root' failed",
            &udp_addr,
        )
        .unwrap();
    let mut tcp = TcpStream::connect(&tcp_addr).unwrap();
    tcp.write_all(b"<30>Nov  5 08:01:02 web-01 sshd[42]: Accepted\nnot syslog\n")
        .unwrap();
    drop(tcp);
    let lines = wait_for_lines(&out, 3);
    let summary = stop(child);
    assert!(summary.contains("sent=3"), "{summary}");
    let recs: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let by_msg = |m: &str| {
        recs.iter()
            .find(|r| r["message"] == m)
            .unwrap_or_else(|| panic!("{m} in {recs:?}"))
    };
    let su = by_msg("'su root' failed");
    assert_eq!(su["level"], "crit");
    assert_eq!(su["hostname"], "mymachine");
    assert_eq!(su["timestamp"], "2003-10-11T22:14:15.003Z");
    let sshd = by_msg("Accepted");
    assert_eq!(
        (&sshd["appname"], &sshd["procid"]),
        (&"sshd".into(), &"42".into())
    );
    by_msg("not syslog");
}

/// One syslog datagram with `é` inside its BSD timestamp used to panic the
/// parser and end the UDP source for good: every later datagram was lost
/// and `/ready` still said 200. Over TCP the connection was lost.
#[test]
fn non_ascii_syslog_does_not_end_the_source() {
    let udp_port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let tcp_port = free_port();
    let udp_addr = format!("127.0.0.1:{udp_port}");
    let tcp_addr = format!("127.0.0.1:{tcp_port}");
    let (_dir, out, port, child) = start_to_file(&[
        "--syslog-udp",
        &udp_addr,
        "--syslog-tcp",
        &tcp_addr,
        "--flush-interval",
        "50ms",
    ]);
    let bad: &[u8] = b"<13>Ja\xc3\xa912345678901 host tag: boom";
    let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    client.send_to(bad, &udp_addr).unwrap();
    client
        .send_to(b"<14>Nov  5 08:01:02 web-01 app: after udp", &udp_addr)
        .unwrap();
    let mut tcp = TcpStream::connect(&tcp_addr).unwrap();
    tcp.write_all(bad).unwrap();
    tcp.write_all(b"\n<14>Nov  5 08:01:02 web-01 app: after tcp\n")
        .unwrap();
    drop(tcp);
    let lines = wait_for_lines(&out, 4);
    let (status, ready) = common::http_with(port, "GET", "/ready", b"", "");
    assert_eq!(status, 200, "{ready}");
    let (_, metrics) = common::http_with(port, "GET", "/metrics", b"", "");
    for name in ["syslog_udp", "syslog_tcp"] {
        let up = format!("dispatcher_source_up{{component=\"{name}\"}} 1");
        assert!(metrics.contains(&up), "{up} in {metrics}");
    }
    let summary = stop(child);
    assert!(summary.contains("sent=4"), "{summary}");
    let messages: Vec<String> = lines
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["message"].to_string())
        .collect();
    let raw = String::from_utf8(bad.to_vec()).unwrap();
    for m in ["after udp", "after tcp", raw.as_str()] {
        assert!(
            messages
                .iter()
                .any(|x| x == &serde_json::json!(m).to_string()),
            "{m} in {messages:?}"
        );
    }
}

#[test]
fn stdout_service_prints_one_json_line_per_event() {
    let port = free_port();
    let child = start(&["--service", "stdout", "--flush-interval", "50ms"], port);
    let (status, _) = post(port, "/v1/logs", br#"[{"msg":"a","n":1},{"msg":"b"}]"#, "");
    assert_eq!(status, 202);
    std::thread::sleep(Duration::from_millis(300));
    let out = stop(child);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    let a: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!((&a["msg"], &a["n"]), (&"a".into(), &1.into()));
    assert!(lines[2].starts_with("final counters:") && lines[2].contains("sent=2"));
}

#[test]
fn transforms_file_filters_and_enriches_and_bad_files_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let transforms = dir.path().join("transforms.yaml");
    std::fs::write(
        &transforms,
        "- type: filter\n  condition: level == \"error\"\n- type: enrich\n  labels: {team: core}\n",
    )
    .unwrap();
    let (_d, out, port, child) = start_to_file(&[
        "--transforms",
        transforms.to_str().unwrap(),
        "--flush-interval",
        "50ms",
    ]);
    let (status, _) = post(
        port,
        "/v1/logs",
        br#"[{"msg":"a","level":"info"},{"msg":"b","level":"error"}]"#,
        "",
    );
    assert_eq!(status, 202);
    let lines = wait_for_lines(&out, 1);
    let summary = stop(child);
    assert!(
        summary.contains("filtered=1") && summary.contains("sent=1"),
        "{summary}"
    );
    let rec: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(
        (&rec["msg"], &rec["labels"]["team"]),
        (&"b".into(), &"core".into())
    );

    std::fs::write(&transforms, "- type: sample\n  rate: 0\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["dispatcher", "--listen", "127.0.0.1:0", "--transforms"])
        .arg(&transforms)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("transforms[0].rate"), "{err}");
}

/// `--queue-max-bytes` once had no test of its wiring: had the dispatcher
/// built the sink's buffer without it (the buffer's own bound is 256 MiB),
/// a stalled sink would have let a few MB of events pile up in memory with
/// no pushback. Here the sink hangs (a server that accepts and never
/// answers), the event bound is far away, and only the byte bound can stop
/// the buffer and make ingest refuse.
#[test]
fn queue_max_bytes_bounds_the_sink_buffer_when_the_sink_stalls() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let sink_port = silent.local_addr().unwrap().port();
    // Hold every connection open, never read or answer.
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in silent.incoming() {
            held.extend(conn.ok());
        }
    });
    const MAX_BYTES: f64 = 200_000.0;
    let port = common::free_port();
    let endpoint = format!("http://127.0.0.1:{sink_port}/");
    let child = start(
        &[
            "--service",
            "http",
            "--endpoint",
            &endpoint,
            "--sink-option",
            "timeout=120s",
            "--batch-size",
            "10",
            "--flush-interval",
            "10ms",
            "--queue-capacity",
            "8000",
            "--queue-max-bytes",
            "200000",
            "--ingest-wait",
            "200ms",
            "--no-dlq",
        ],
        port,
    );
    // 100 requests of 20 records with 1 KB messages: ~2 MB, 2 000 events.
    // The sink's buffer may hold 7 000 events, so only its byte bound
    // stops it; then the intake queue (1 000 events) fills and ingest
    // answers 503.
    let message = "x".repeat(1000);
    let mut refused = 0;
    for r in 0..100 {
        let body: Vec<String> = (0..20)
            .map(|i| format!(r#"{{"message":"{message}","seq":{}}}"#, r * 20 + i))
            .collect();
        let (status, _) = post(
            port,
            "/v1/logs",
            format!("[{}]", body.join(",")).as_bytes(),
            "",
        );
        assert!(status == 202 || status == 503, "status {status}");
        refused += usize::from(status == 503);
    }
    let (_, page) = common::http(port, "GET", "/metrics", b"");
    let gauge = |name: &str| -> f64 {
        let key = format!("dispatcher_{name}{{component=\"http\"}}");
        page.lines()
            .find_map(|l| l.strip_prefix(key.as_str())?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no `{key}` in:\n{page}"))
    };
    let held = gauge("queue_bytes");
    // Full to within one 20-event chunk (~21 KB), never past the bound.
    assert!(
        held > MAX_BYTES * 0.8 && held <= MAX_BYTES,
        "sink buffer holds {held} bytes; bound {MAX_BYTES}\n{page}"
    );
    assert!(gauge("backpressure_triggered_total") >= 1.0, "{page}");
    assert!(refused > 0, "ingest never pushed back");
    // The sink never answers, so the dispatcher cannot drain: no SIGTERM.
    common::kill_hard(child);
}

// `switchyard bench …`: the load tools drive a real dispatcher (this
// binary) and print the lines docs/BENCHMARKS.md quotes.

#[test]
fn bench_ingest_and_tail_deliver_every_record_and_say_so() {
    let out = common::bench(&[
        "ingest",
        "--records",
        "3000",
        "--batch",
        "100",
        "--connections",
        "2",
        "--sync",
        "false",
    ]);
    assert!(
        out.contains("records:      3000 (100 per request, 2 connections)"),
        "{out}"
    );
    for line in ["events/s:", "MiB/s:", "server peak RSS:", "client CPU:"] {
        assert!(out.contains(line), "no `{line}` in:\n{out}");
    }
    assert_eq!(common::number_after(&out, "lines on disk: "), 3000, "{out}");
    assert!(
        out.contains("final counters: received=3000 sent=3000"),
        "{out}"
    );

    let out = common::bench(&["tail", "--lines", "2000", "--sync", "false"]);
    assert!(out.contains("lines:        2000 (sink: File)"), "{out}");
    assert_eq!(common::number_after(&out, "lines on disk: "), 2000, "{out}");

    let out = common::bench(&["tail", "--lines", "2000", "--sink", "blackhole"]);
    assert!(
        out.contains("lines:        2000 (sink: Blackhole)"),
        "{out}"
    );
    assert!(out.contains("sent=2000"), "{out}");
    assert!(
        !out.contains("lines on disk"),
        "no file with the blackhole:\n{out}"
    );
}

#[test]
fn bench_syslog_udp_accounts_for_every_message_it_sent() {
    let out = common::bench(&["syslog-udp", "--messages", "600", "--rate", "6000"]);
    assert!(out.contains("target rate:  6000 messages/s"), "{out}");
    let sent = common::number_after(&out, "sent:         ");
    assert_eq!(sent, 600, "{out}");
    // Every datagram sent was lost by the socket, dropped by the source or
    // delivered: the three lines add up.
    let socket = common::number_after(&out, "dropped by the socket (sent − read): ");
    let source = common::number_after(&out, "dropped by the source (pipeline full): ");
    let delivered = common::number_after(&out, "delivered:    ");
    assert_eq!(socket + source + delivered, sent, "{out}");
}

#[test]
fn bench_loki_pushes_every_event_through_the_sink() {
    let out = common::bench(&[
        "loki",
        "--events",
        "2500",
        "--batch",
        "1000",
        "--concurrency",
        "2",
    ]);
    assert!(
        out.contains("events:       2500 (1000 per send, 2 in flight, encoding protobuf)"),
        "{out}"
    );
    assert!(common::number_after(&out, "pushes:       ") >= 3, "{out}");
    assert!(out.contains("bytes snappy"), "{out}");

    let out = common::bench(&["loki", "--events", "500", "--sink-option", "encoding=json"]);
    assert!(out.contains("encoding json"), "{out}");
    assert!(!out.contains("bytes snappy"), "{out}");
}
