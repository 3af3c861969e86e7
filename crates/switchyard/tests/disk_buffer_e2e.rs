//! End to end with `--buffer-type disk`: the dispatcher is killed with
//! SIGKILL while its sink is blocked and events are still arriving; started
//! again on the same buffer directory with a working sink, it delivers every
//! event that was answered with 202 (at least once).

mod common;

use common::{
    dispatcher_command, final_counters, free_port, kill_hard, spawn_listening, stop_with_output,
};
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Safety net for waits that end on their own; never an assertion on speed.
const BOUND: Duration = Duration::from_secs(60);

/// A sink endpoint that accepts connections and never answers: deliveries
/// hang, so everything accepted stays in the buffer.
fn blocked_server() -> (u16, Arc<AtomicBool>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        while !stopped.load(Ordering::Relaxed) {
            match listener.accept() {
                Ok((s, _)) => held.push(s),
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    });
    (port, stop)
}

/// POST one NDJSON body of log records; the status, or `None` if the
/// dispatcher went away mid-request.
fn post_logs(port: u16, body: &str) -> Option<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(BOUND)).ok()?;
    write!(
        s,
        "POST /v1/logs HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-ndjson\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.get(9..12)?.parse().ok()
}

/// `GET /stats` as JSON.
fn get_stats(port: u16) -> serde_json::Value {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(BOUND)).unwrap();
    write!(
        s,
        "GET /stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let body = out.split("\r\n\r\n").nth(1).unwrap_or_default();
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn seqs_in(path: &std::path::Path) -> BTreeSet<u64> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["seq"].as_u64())
        .collect()
}

/// POST 20-event requests of numbered records to `port` until at least
/// 2000 are answered 202, then `kill -9` the process while requests are still
/// coming; the numbers answered 202.
fn post_until_killed(port: u16, child: std::process::Child) -> BTreeSet<u64> {
    let accepted = Arc::new(Mutex::new(BTreeSet::new()));
    let poster = std::thread::spawn({
        let accepted = accepted.clone();
        move || {
            let mut seq = 0u64;
            loop {
                let batch: Vec<u64> = (seq..seq + 20).collect();
                seq += 20;
                let body: String = batch
                    .iter()
                    .map(|n| format!("{{\"message\":\"event {n}\",\"seq\":{n}}}\n"))
                    .collect();
                match post_logs(port, &body) {
                    Some(202) => accepted.lock().unwrap().extend(batch),
                    Some(other) => panic!("unexpected status {other}"),
                    None => return, // the process is gone
                }
            }
        }
    });
    let deadline = Instant::now() + BOUND;
    while accepted.lock().unwrap().len() < 2000 {
        assert!(Instant::now() < deadline, "events are accepted");
        std::thread::sleep(Duration::from_millis(10));
    }
    kill_hard(child);
    poster.join().unwrap();
    let accepted = accepted.lock().unwrap().clone();
    assert!(accepted.len() >= 2000);
    accepted
}

/// Wait (bounded) until every number in `accepted` is in the JSONL file `out`.
fn wait_all_delivered(accepted: &BTreeSet<u64>, out: &std::path::Path) {
    let deadline = Instant::now() + BOUND;
    loop {
        let delivered = seqs_in(out);
        let missing: Vec<_> = accepted.difference(&delivered).take(5).collect();
        if missing.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "accepted events never delivered, e.g. {missing:?} ({} of {})",
            delivered.len(),
            accepted.len()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn kill_9_mid_stream_then_restart_delivers_every_accepted_event() {
    let dir = tempfile::tempdir().unwrap();
    let buffer_dir = dir.path().join("buffer");
    let buffer_dir = buffer_dir.to_str().unwrap();
    let (sink_port, sink_stop) = blocked_server();
    let endpoint = format!("http://127.0.0.1:{sink_port}/ingest");

    // Run 1: a sink that never answers; events arrive in 20-event requests.
    let port = free_port();
    let child = spawn_listening(
        dispatcher_command(port).args([
            "--buffer-type",
            "disk",
            "--buffer-dir",
            buffer_dir,
            "--service",
            "http",
            "--endpoint",
            &endpoint,
            "--sink-option",
            "timeout=1h",
            "--retry-attempts",
            "1000",
            "--batch-size",
            "10",
            "--flush-interval",
            "20ms",
        ]),
        port,
    );
    let accepted = post_until_killed(port, child);
    sink_stop.store(true, Ordering::Relaxed);

    // Run 2: same buffer directory, a working sink.
    let out = dir.path().join("events.jsonl");
    let port = free_port();
    let child = spawn_listening(
        dispatcher_command(port).args([
            "--buffer-type",
            "disk",
            "--buffer-dir",
            buffer_dir,
            "--endpoint",
            out.to_str().unwrap(),
            "--flush-interval",
            "20ms",
        ]),
        port,
    );
    wait_all_delivered(&accepted, &out);
    let stats = get_stats(port);
    assert!(
        stats["disk_buffer"]["read"].as_u64().unwrap() >= accepted.len() as u64,
        "{stats}"
    );
    assert_eq!(stats["disk_buffer"]["max_bytes"], 268_435_456, "{stats}");
    let (stdout, _) = stop_with_output(child);
    let counters = final_counters(&stdout);
    assert!(counters["disk_read"] >= accepted.len() as u64, "{stdout}");
    assert_eq!(
        counters["disk_pending_bytes"], 0,
        "all acknowledged: {stdout}"
    );
}

#[test]
fn an_unknown_buffer_type_is_a_clear_error() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["dispatcher", "--buffer-type", "tape"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--buffer-type"), "{stderr}");
    assert!(
        stderr.contains("disk"),
        "the valid values are listed: {stderr}"
    );
}

/// A pipeline file whose HTTP source feeds one sink with a disk buffer.
fn pipeline_file(
    dir: &std::path::Path,
    port: u16,
    buffer_dir: &str,
    sink: &str,
) -> std::path::PathBuf {
    let path = dir.join(format!("pipeline-{port}.yaml"));
    std::fs::write(
        &path,
        format!(
            "dlq: {{enabled: false}}\n\
             sources:\n  in: {{type: http, address: \"127.0.0.1:{port}\"}}\n\
             sinks:\n  out:\n    inputs: [in]\n    {sink}\n\
             \x20   batch: {{max_events: 10, timeout: 20ms}}\n\
             \x20   buffer: {{type: disk, dir: \"{buffer_dir}\"}}\n\
             \x20   delivery: {{max_retries: 1000, max_elapsed: 1h}}\n"
        ),
    )
    .unwrap();
    path
}

#[test]
fn pipeline_kill_9_mid_stream_then_restart_delivers_every_accepted_event() {
    let dir = tempfile::tempdir().unwrap();
    let buffer_dir = dir.path().join("buffer");
    let buffer_dir = buffer_dir.to_str().unwrap();
    let (sink_port, sink_stop) = blocked_server();

    // Run 1: the sink never answers; the source acknowledges (its only sink
    // has a disk buffer), so a 202 means "on disk".
    let port = free_port();
    let config = pipeline_file(
        dir.path(),
        port,
        buffer_dir,
        &format!(
            "type: http\n    options: {{endpoint: \"http://127.0.0.1:{sink_port}/ingest\", timeout: 1h}}"
        ),
    );
    let child = spawn_listening(common::run_command(&config).env("RUST_LOG", "error"), port);
    let accepted = post_until_killed(port, child);
    sink_stop.store(true, Ordering::Relaxed);

    // Run 2: same buffer directory, the sink now a file.
    let out = dir.path().join("events.jsonl");
    let port = free_port();
    let config = pipeline_file(
        dir.path(),
        port,
        buffer_dir,
        &format!(
            "type: file\n    options: {{endpoint: \"{}\"}}",
            out.display()
        ),
    );
    let child = spawn_listening(common::run_command(&config).env("RUST_LOG", "error"), port);
    wait_all_delivered(&accepted, &out);
    stop_with_output(child);
}
