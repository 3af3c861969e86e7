//! The log-pipeline requirement document's `dispatcher:` block in a pipeline
//! file: `switchyard run` does what it says, `switchyard validate` names what
//! it cannot stand for.

mod common;

use common::{free_port, http, read_request_body, run_command, spawn_listening, stop_with_output};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The document's five example blocks under one `dispatcher:` key, as a
/// user would bring them (its comments included).
const SEED: &str = r#"dispatcher:
  queue_size: 10000        # Tamanho da fila interna
  worker_count: 4          # Número de workers
  batch_size: 100          # Tamanho do lote
  batch_timeout: "5s"      # Timeout para formar lotes
  max_retries: 3           # Tentativas de retry
  retry_backoff: "1s"      # Backoff entre retries
  backpressure:
    enabled: true
    high_watermark: 0.8    # 80% da fila
    low_watermark: 0.6     # 60% da fila
    strategy: "drop_oldest" # drop_oldest, drop_newest, block
  flow_control:
    enabled: true
    target_latency: "100ms"
    adjustment_factor: 0.1
  circuit_breaker:
    enabled: true
    failure_threshold: 5
    success_threshold: 3
    timeout: "30s"
    half_open_max_calls: 10
  dlq:
    enabled: true
    max_size: 1000
    retention_period: "24h"
    auto_retry: true
    retry_interval: "5m"
  worker_pool:
    min_workers: 2
    max_workers: 10
    idle_timeout: "5m"
    queue_size: 1000
    enable_metrics: true
"#;

/// A loopback HTTP sink that answers every request with `status` and keeps
/// every body it was sent.
fn recording_server(status: &'static str) -> (u16, Arc<Mutex<Vec<String>>>) {
    use std::io::Write;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let seen = bodies.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let mut reader = std::io::BufReader::new(stream);
            let Some(body) = read_request_body(&mut reader) else {
                continue;
            };
            seen.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&body).into_owned());
            let _ = write!(
                reader.into_inner(),
                "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
    });
    (port, bodies)
}

/// The value of one series in a Prometheus text page, if present.
fn series(page: &str, name_and_labels: &str) -> Option<f64> {
    page.lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.trim().parse().ok())
}

fn records(n: usize) -> String {
    let items: Vec<String> = (0..n)
        .map(|i| format!(r#"{{"message":"m{i}","seq":{i}}}"#))
        .collect();
    format!("[{}]", items.join(","))
}

fn events_per_body(bodies: &[String]) -> Vec<usize> {
    bodies
        .iter()
        .map(|b| {
            serde_json::from_str::<Vec<serde_json::Value>>(b)
                .unwrap()
                .len()
        })
        .collect()
}

/// The whole seed block runs: its batch size reaches the sink, its retries
/// are made (1 + `max_retries` attempts), its dead-letter queue takes what
/// failed, its worker pool bounds the delivery slots — while a sink's own
/// `batch` wins over the block's.
#[test]
fn the_seed_block_batches_retries_and_dead_letters_as_it_says() {
    let dir = tempfile::tempdir().unwrap();
    let (ingest, admin) = (free_port(), free_port());
    let (down, down_bodies) = recording_server("503 Service Unavailable");
    let (up, up_bodies) = recording_server("200 OK");
    let config = dir.path().join("pipeline.yaml");
    std::fs::write(
        &config,
        format!(
            "{SEED}
admin: {{address: '127.0.0.1:{admin}'}}
sources:
  ingest: {{type: http, address: '127.0.0.1:{ingest}'}}
sinks:
  seed:
    type: http
    inputs: [ingest]
    options: {{endpoint: 'http://127.0.0.1:{down}/'}}
  own:
    type: http
    inputs: [ingest]
    options: {{endpoint: 'http://127.0.0.1:{up}/'}}
    batch: {{max_events: 25}}
"
        ),
    )
    .unwrap();
    // The block's dead-letter queue has no `dir`: the default, in the
    // working directory.
    let child = spawn_listening(run_command(&config).current_dir(dir.path()), ingest);
    // The delivery loops report their slots once they run.
    let idle = |page: &str| series(page, "dispatcher_workers_idle{component=\"seed\"}");
    let deadline = Instant::now() + Duration::from_secs(10);
    let page = loop {
        let (_, page) = http(admin, "GET", "/metrics", b"");
        if idle(&page) == Some(10.0) || Instant::now() > deadline {
            break page;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(
        idle(&page),
        Some(10.0),
        "worker_pool.max_workers bounds the delivery slots: {page}"
    );
    assert_eq!(
        http(ingest, "POST", "/v1/logs", records(100).as_bytes()).0,
        202
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let page = loop {
        let (_, page) = http(admin, "GET", "/metrics", b"");
        let dead = series(
            &page,
            "dispatcher_entries_dead_lettered_total{component=\"seed\"}",
        );
        let own: usize = events_per_body(&up_bodies.lock().unwrap()).iter().sum();
        if (dead == Some(100.0) && own == 100) || Instant::now() > deadline {
            break page;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(
        series(&page, "dispatcher_retries_total{component=\"seed\"}"),
        Some(3.0),
        "max_retries: {page}"
    );
    let (stdout, _) = stop_with_output(child);
    assert_eq!(
        events_per_body(&down_bodies.lock().unwrap()),
        [100; 4],
        "one batch of batch_size, tried 1 + max_retries times"
    );
    assert_eq!(
        events_per_body(&up_bodies.lock().unwrap()),
        [25; 4],
        "the sink's own batch size wins"
    );
    let seed = stdout
        .lines()
        .find(|l| l.starts_with("final counters: sink=seed "))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(seed.contains(" delivered=0 dead_lettered=100 "), "{seed}");
    let dlq = dir.path().join("switchyard-dlq");
    let written: u64 = std::fs::read_dir(&dlq)
        .unwrap_or_else(|e| panic!("{}: {e}", dlq.display()))
        .map(|f| f.unwrap().metadata().unwrap().len())
        .sum();
    assert!(written > 0, "the dead-letter queue holds the batch");
}

#[test]
fn validate_names_each_key_the_block_cannot_stand_for() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.yaml");
    let bad = SEED
        .replace(
            "    enabled: true\n    high_watermark",
            "    enabled: false\n    high_watermark",
        )
        .replace(
            "    queue_size: 1000\n",
            "    queue_size: 1000\n    colour: blue\n",
        );
    std::fs::write(
        &config,
        format!("{bad}sources:\n  in: {{type: udp, address: '127.0.0.1:1'}}\nsinks:\n  out: {{type: blackhole, inputs: [in]}}\n"),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["validate", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let file = config.display().to_string();
    assert_eq!(
        stderr.lines().collect::<Vec<_>>(),
        [
            format!("{file}: line 34: dispatcher.worker_pool.colour: unknown key; expected one of `min_workers`, `max_workers`, `idle_timeout`, `queue_size`, `enable_metrics`"),
            format!("switchyard: error: `{file}` has 1 error(s); nothing was started"),
        ]
    );
    // With the unknown key gone, the next problem shows.
    std::fs::write(
        &config,
        std::fs::read_to_string(&config)
            .unwrap()
            .replace("    colour: blue\n", ""),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["validate", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with(&format!(
            "{file}: line 9: dispatcher.backpressure.enabled: cannot be turned off"
        )),
        "{stderr}"
    );

    let good = dir.path().join("good.yaml");
    std::fs::write(
        &good,
        format!("{SEED}sources:\n  in: {{type: udp, address: '127.0.0.1:1'}}\nsinks:\n  out: {{type: blackhole, inputs: [in]}}\n"),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["validate", "--config"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
