//! `switchyard run --config` and `switchyard validate` with the real binary.

mod common;

use common::{free_port, http, run_command, spawn_listening, stop_with_output, FlakyServer};
use std::process::Command;
use std::time::{Duration, Instant};

/// The value of one series in a Prometheus text page.
fn series(page: &str, name_and_labels: &str) -> f64 {
    page.lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no `{name_and_labels}` in:\n{page}"))
}

fn records(n: usize) -> String {
    let items: Vec<String> = (0..n)
        .map(|i| {
            let level = if i % 2 == 0 { "error" } else { "info" };
            format!(r#"{{"message":"m{i}","level":"{level}","seq":{i}}}"#)
        })
        .collect();
    format!("[{}]", items.join(","))
}

fn final_line<'a>(stdout: &'a str, prefix: &str) -> &'a str {
    stdout
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no `{prefix}` in {stdout}"))
}

fn value(line: &str, key: &str) -> u64 {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key} in {line}"))
        .parse()
        .unwrap()
}

#[test]
fn fan_out_through_a_filter_with_metrics_and_readiness() {
    let dir = tempfile::tempdir().unwrap();
    let (ingest, admin) = (free_port(), free_port());
    let config = dir.path().join("pipeline.yaml");
    std::fs::write(
        &config,
        format!(
            "admin:
  address: 127.0.0.1:{admin}
sources:
  ingest:
    type: http
    address: 127.0.0.1:{ingest}
transforms:
  errors_only:
    type: filter
    inputs: [ingest]
    condition: 'level == \"error\"'
sinks:
  all:
    type: file
    inputs: [ingest]
    options:
      endpoint: ${{OUT}}/all.jsonl
    batch: {{max_events: 50, timeout: 50ms}}
  errors:
    type: file
    inputs: [errors_only]
    options: {{endpoint: '${{OUT}}/errors.jsonl'}}
    batch: {{max_events: 50, timeout: 50ms}}
"
        ),
    )
    .unwrap();
    let mut cmd = run_command(&config);
    cmd.env("OUT", dir.path());
    let child = spawn_listening(&mut cmd, ingest);
    for _ in 0..4 {
        let (status, body) = http(ingest, "POST", "/v1/logs", records(250).as_bytes());
        assert_eq!((status, body.as_str()), (202, r#"{"accepted":250}"#));
    }
    // Wait (bounded) until both sinks have confirmed everything.
    let deadline = Instant::now() + Duration::from_secs(20);
    let page = loop {
        let (_, page) = http(admin, "GET", "/metrics", b"");
        let all = series(
            &page,
            "dispatcher_entries_processed_total{component=\"all\"}",
        );
        let errs = series(
            &page,
            "dispatcher_entries_processed_total{component=\"errors\"}",
        );
        if (all, errs) == (1000.0, 500.0) || Instant::now() > deadline {
            break page;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(
        series(
            &page,
            "dispatcher_entries_received_total{component=\"ingest\"}"
        ),
        1000.0
    );
    assert_eq!(
        series(
            &page,
            "dispatcher_entries_processed_total{component=\"all\"}"
        ),
        1000.0
    );
    assert_eq!(
        series(
            &page,
            "dispatcher_entries_processed_total{component=\"errors\"}"
        ),
        500.0
    );
    assert_eq!(
        series(
            &page,
            "dispatcher_entries_filtered_total{component=\"ingest\"}"
        ),
        500.0
    );
    assert!(page.contains("dispatcher_queue_wait_duration_seconds_count{component=\"all\"}"));
    assert!(page.contains("# TYPE dispatcher_queue_utilization gauge"));
    let (status, ready) = http(admin, "GET", "/ready", b"");
    assert_eq!(status, 200, "{ready}");
    let ready: serde_json::Value = serde_json::from_str(&ready).unwrap();
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["components"]["sinks"]["errors"]["delivered"], 500);
    let (status, _) = http(admin, "GET", "/health", b"");
    assert_eq!(status, 200);

    let (stdout, _) = stop_with_output(child);
    let lines = |f: &str| {
        std::fs::read_to_string(dir.path().join(f))
            .unwrap()
            .lines()
            .count()
    };
    assert_eq!((lines("all.jsonl"), lines("errors.jsonl")), (1000, 500));
    let all = final_line(&stdout, "final counters: sink=all ");
    assert_eq!(
        (value(all, "received"), value(all, "delivered")),
        (1000, 1000)
    );
    let src = final_line(&stdout, "final counters: source=ingest ");
    assert_eq!(value(src, "received"), 1000);
}

#[test]
fn a_sink_that_cannot_deliver_fills_its_buffer_drops_by_policy_and_is_not_ready() {
    let dir = tempfile::tempdir().unwrap();
    let (ingest, admin) = (free_port(), free_port());
    let server = FlakyServer::start(true);
    let nobody = server.port;
    let config = dir.path().join("pipeline.yaml");
    std::fs::write(
        &config,
        format!(
            "admin: {{address: '127.0.0.1:{admin}'}}
dlq: {{dir: '{}'}}
sources:
  ingest: {{type: http, address: '127.0.0.1:{ingest}'}}
sinks:
  down:
    type: http
    inputs: [ingest]
    options: {{endpoint: 'http://127.0.0.1:{nobody}/'}}
    batch: {{max_events: 5, timeout: 10ms}}
    buffer: {{max_events: 20, when_full: drop_newest}}
    delivery: {{worker_count: 1, max_retries: 1000, retry_backoff: 10ms}}
  kept:
    type: file
    inputs: [ingest]
    options: {{endpoint: '{}'}}
    batch: {{max_events: 10, timeout: 10ms}}
",
            dir.path().join("dlq").display(),
            dir.path().join("kept.jsonl").display()
        ),
    )
    .unwrap();
    // Errors only: every retry logs a warning, and nobody reads the pipe
    // before the end.
    let child = spawn_listening(run_command(&config).env("RUST_LOG", "error"), ingest);
    // One record per request: the sink's loop takes its buffer a chunk at a
    // time, so small chunks leave the rest waiting in the buffer.
    for i in 0..100 {
        let body = format!(r#"{{"message":"m{i}"}}"#);
        assert_eq!(http(ingest, "POST", "/v1/logs", body.as_bytes()).0, 202);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let (status, body) = loop {
        let (status, body) = http(admin, "GET", "/ready", b"");
        if status == 503 || Instant::now() > deadline {
            break (status, body);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status, 503, "{body}");
    let ready: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(ready["reasons"][0]
        .as_str()
        .unwrap()
        .starts_with("sink `down`: buffer over its high watermark"));
    let (_, page) = http(admin, "GET", "/metrics", b"");
    assert!(
        series(
            &page,
            "dispatcher_entries_dropped_total{component=\"down\",reason=\"drop_newest\"}"
        ) > 0.0
    );
    // The same loss in the family that holds every loss.
    assert_eq!(
        series(
            &page,
            "dispatcher_component_discarded_events_total{component=\"down\",component_kind=\"sink\",reason=\"drop_newest\"}"
        ),
        series(
            &page,
            "dispatcher_entries_dropped_total{component=\"down\",reason=\"drop_newest\"}"
        )
    );
    assert!(
        series(
            &page,
            "dispatcher_backpressure_triggered_total{component=\"down\"}"
        ) >= 1.0
    );

    // The service comes back: what the buffer kept is delivered.
    server
        .down
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(30);
    while http(admin, "GET", "/ready", b"").0 != 200 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let (stdout, _) = stop_with_output(child);
    // The healthy sink got everything; the other one accounts for every event.
    let kept = std::fs::read_to_string(dir.path().join("kept.jsonl")).unwrap();
    assert_eq!(kept.lines().count(), 100);
    let down = final_line(&stdout, "final counters: sink=down ");
    let delivered: usize = server
        .accepted
        .lock()
        .unwrap()
        .iter()
        .map(|body| {
            serde_json::from_str::<Vec<serde_json::Value>>(body)
                .unwrap()
                .len()
        })
        .sum();
    assert_eq!(value(down, "failed"), 0, "{down}");
    assert!(delivered >= 20, "the buffer's events arrive: {down}");
    assert_eq!(value(down, "delivered"), delivered as u64);
    assert_eq!(
        delivered as u64 + value(down, "dropped_newest"),
        100,
        "{down}"
    );
}

#[test]
fn validate_reports_every_error_and_starts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.yaml");
    std::fs::write(
        &config,
        "sources:\n  in:\n    type: udp\n    adress: 127.0.0.1:1\nsinks:\n  out:\n    type: stdout\n    inputs: [in, missing]\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["validate", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = stderr.lines().collect();
    let file = config.display().to_string();
    assert_eq!(
        errors,
        [
            format!("{file}: line 4: sources.in.adress: unknown key; expected one of `address`, `max_message_bytes`, `max_connections`, `queue_size`"),
            format!("{file}: line 8: sinks.out.inputs: `missing` is not a source or transform"),
            format!("switchyard: error: `{file}` has 2 error(s); nothing was started"),
        ]
    );
    let good = dir.path().join("good.yaml");
    std::fs::write(
        &good,
        "sources:\n  in: {type: udp, address: '127.0.0.1:1'}\nsinks:\n  out: {type: blackhole, inputs: [in]}\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["validate", "--config"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout)
        .contains("ok (1 source(s), 0 transform(s), 1 sink(s))"));
}

#[test]
fn a_503_window_loses_nothing_and_the_breaker_cycle_shows_in_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let (ingest, admin) = (free_port(), free_port());
    let server = FlakyServer::start(true);
    let config = dir.path().join("pipeline.yaml");
    std::fs::write(
        &config,
        format!(
            "admin: {{address: '127.0.0.1:{admin}'}}
dlq: {{dir: '{}'}}
sources:
  ingest: {{type: http, address: '127.0.0.1:{ingest}'}}
sinks:
  flaky:
    type: http
    inputs: [ingest]
    options: {{endpoint: 'http://127.0.0.1:{}/'}}
    batch: {{max_events: 10, timeout: 10ms}}
    delivery:
      concurrency: 2
      max_retries: 1000
      retry_backoff: 10ms
      circuit_breaker: {{failure_threshold: 3, success_threshold: 1, timeout: 200ms}}
  healthy:
    type: file
    inputs: [ingest]
    options: {{endpoint: '{}'}}
    batch: {{max_events: 10, timeout: 10ms}}
",
            dir.path().join("dlq").display(),
            server.port,
            dir.path().join("healthy.jsonl").display()
        ),
    )
    .unwrap();
    let child = spawn_listening(run_command(&config).env("RUST_LOG", "error"), ingest);
    assert_eq!(
        http(ingest, "POST", "/v1/logs", records(100).as_bytes()).0,
        202
    );
    // The healthy sink keeps receiving while the other one's breaker opens.
    let deadline = Instant::now() + Duration::from_secs(20);
    let page = loop {
        let (_, page) = http(admin, "GET", "/metrics", b"");
        let opened = series(
            &page,
            "dispatcher_circuit_breaker_transitions_total{component=\"flaky\",to=\"open\"}",
        );
        let healthy = series(
            &page,
            "dispatcher_entries_processed_total{component=\"healthy\"}",
        );
        if (opened >= 1.0 && healthy == 100.0) || Instant::now() > deadline {
            break page;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(
        series(
            &page,
            "dispatcher_entries_processed_total{component=\"healthy\"}"
        ),
        100.0
    );
    assert!(
        series(
            &page,
            "dispatcher_circuit_breaker_transitions_total{component=\"flaky\",to=\"open\"}"
        ) >= 1.0
    );
    server
        .down
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(30);
    let page = loop {
        let (_, page) = http(admin, "GET", "/metrics", b"");
        if series(
            &page,
            "dispatcher_entries_processed_total{component=\"flaky\"}",
        ) == 100.0
            || Instant::now() > deadline
        {
            break page;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(
        series(
            &page,
            "dispatcher_entries_processed_total{component=\"flaky\"}"
        ),
        100.0
    );
    for to in ["half_open", "closed"] {
        let name = format!(
            "dispatcher_circuit_breaker_transitions_total{{component=\"flaky\",to=\"{to}\"}}"
        );
        assert!(series(&page, &name) >= 1.0, "{to}: {page}");
    }
    assert_eq!(
        series(
            &page,
            "dispatcher_circuit_breaker_state{component=\"flaky\"}"
        ),
        0.0
    );
    let (stdout, _) = stop_with_output(child);
    let seqs: std::collections::BTreeSet<u64> = server
        .accepted
        .lock()
        .unwrap()
        .iter()
        .flat_map(|body| serde_json::from_str::<Vec<serde_json::Value>>(body).unwrap())
        .map(|r| r["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs.len(), 100, "every event arrived after the window");
    let flaky = final_line(&stdout, "final counters: sink=flaky ");
    assert_eq!(
        (value(flaky, "delivered"), value(flaky, "failed")),
        (100, 0)
    );
}

#[test]
fn every_example_pipeline_validates() {
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples");
    let mut checked = 0;
    for entry in std::fs::read_dir(examples).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let out = Command::new(env!("CARGO_BIN_EXE_switchyard"))
                .args(["validate", "--config"])
                .arg(&path)
                .env("LUNARY_API_KEY", "example")
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            checked += 1;
        }
    }
    assert!(checked >= 3);
}

#[test]
fn the_dispatcher_serves_metrics_and_readiness_beside_ingest() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut cmd = common::dispatcher_command(port);
    cmd.args(["--flush-interval", "20ms", "--endpoint"])
        .arg(dir.path().join("out.jsonl"));
    let child = spawn_listening(&mut cmd, port);
    assert_eq!(
        http(port, "POST", "/v1/logs", records(10).as_bytes()).0,
        202
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let page = loop {
        let (status, page) = http(port, "GET", "/metrics", b"");
        assert_eq!(status, 200);
        if series(
            &page,
            "dispatcher_entries_processed_total{component=\"file\"}",
        ) == 10.0
            || Instant::now() > deadline
        {
            break page;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(
        series(
            &page,
            "dispatcher_entries_received_total{component=\"intake\"}"
        ),
        10.0
    );
    assert_eq!(
        series(
            &page,
            "dispatcher_entries_processed_total{component=\"file\"}"
        ),
        10.0
    );
    assert!(page.contains("dispatcher_worker_task_duration_seconds_count{component=\"file\"}"));
    assert_eq!(http(port, "GET", "/ready", b"").0, 200);
    assert_eq!(http(port, "GET", "/health", b"").0, 200);
    stop_with_output(child);
}
