//! End to end with the real binary: the demo source and multiline tailing
//! into the file sink.

mod common;

use common::{dispatcher_command, final_counters, free_port, spawn_listening, stop_with_output};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

/// A dispatcher writing to a fresh temp file; (dir guard, file, child).
fn start_to_file(extra: &[&str]) -> (tempfile::TempDir, PathBuf, Child) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.jsonl");
    let state = dir.path().join("state");
    let port = free_port();
    let mut cmd = dispatcher_command(port);
    cmd.args(["--endpoint", out.to_str().unwrap()])
        .args(["--state-dir", state.to_str().unwrap()])
        .args(["--flush-interval", "100ms"])
        .args(extra);
    let child = spawn_listening(&mut cmd, port);
    (dir, out, child)
}

/// The JSON lines in `out` once at least `n` are there (bounded wait).
fn wait_for_lines(out: &Path, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(out).unwrap_or_default();
        if text.lines().count() >= n {
            return text
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {n} lines",
            text.lines().count()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn demo_logs_stop_at_the_count_and_land_once_each() {
    let (_dir, out, child) =
        start_to_file(&["--demo", "logs", "--demo-count", "1000", "--demo-rate", "0"]);
    wait_for_lines(&out, 1000);
    let (stdout, _) = stop_with_output(child);
    let counters = final_counters(&stdout);
    assert_eq!(counters["sent"], 1000, "{stdout}");
    let lines = wait_for_lines(&out, 1000);
    assert_eq!(lines.len(), 1000);
    for l in &lines {
        assert!(l["level"].is_string(), "{l}");
        assert!(l["labels"]["service"].is_string(), "{l}");
        assert_eq!(l["trace_id"].as_str().unwrap().len(), 32, "{l}");
    }
}

#[test]
fn demo_llm_exchanges_become_llm_payloads() {
    let (_dir, out, child) =
        start_to_file(&["--demo", "llm", "--demo-count", "50", "--demo-rate", "0"]);
    wait_for_lines(&out, 50);
    let (stdout, _) = stop_with_output(child);
    assert_eq!(final_counters(&stdout)["sent"], 50, "{stdout}");
    for l in wait_for_lines(&out, 50) {
        assert_eq!(l["type"], "llm", "{l}");
        assert!(l["runId"].is_string(), "{l}");
        assert_eq!(l["metadata"]["path"], "/v1/chat/completions", "{l}");
    }
}

#[test]
fn tailed_stack_traces_land_as_one_record_each() {
    let logs = tempfile::tempdir().unwrap();
    std::fs::write(
        logs.path().join("app.log"),
        "2026-11-30 ERROR failed\njava.lang.RuntimeException: x\n\tat a.B.c(B.java:1)\n2026-11-30 INFO ok\n",
    )
    .unwrap();
    let glob = logs.path().join("*.log").display().to_string();
    let (_dir, out, child) = start_to_file(&[
        "--tail",
        &glob,
        "--tail-multiline-start",
        r"^\d{4}-",
        "--tail-partial-timeout",
        "200ms",
    ]);
    let lines = wait_for_lines(&out, 2);
    let (stdout, _) = stop_with_output(child);
    assert_eq!(final_counters(&stdout)["sent"], 2, "{stdout}");
    let messages: Vec<&str> = lines
        .iter()
        .map(|l| l["message"].as_str().unwrap())
        .collect();
    assert_eq!(
        messages,
        [
            "2026-11-30 ERROR failed\njava.lang.RuntimeException: x\n\tat a.B.c(B.java:1)",
            "2026-11-30 INFO ok"
        ]
    );
}

#[test]
fn bad_source_flags_name_the_flag() {
    let port = free_port();
    let out = dispatcher_command(port)
        .args(["--demo", "metrics"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--demo") && err.contains("metrics"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let out = dispatcher_command(port)
        .args(["--tail", dir.path().join("*.log").to_str().unwrap()])
        .args(["--tail-multiline-start", "(unclosed"])
        .args(["--state-dir", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--tail-multiline-") && err.contains("multiline.start"),
        "{err}"
    );

    let out = dispatcher_command(port)
        .args(["--docker", dir.path().join("d.sock").to_str().unwrap()])
        .args(["--docker-include", "["])
        .args(["--state-dir", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--docker-include"), "{err}");
}
