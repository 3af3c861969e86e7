//! End to end: SIGTERM while the sink is down. The dispatcher used to drain
//! forever (`--retry-attempts 1000`), until an orchestrator's SIGKILL lost
//! every event in memory, uncounted. Now it stops by `--shutdown-timeout`:
//! what it could not deliver is dead-lettered with the reason `shutdown`
//! (or, with a disk buffer, left there for the next start), every event is
//! counted in the final line, and a second signal stops at once.

mod common;

use common::{dispatcher_command, final_counters, free_port, http, spawn_listening};
use std::collections::HashMap;
use std::io::Read;
use std::process::{Child, Command, ExitStatus, Output};
use std::time::{Duration, Instant};

/// Generous: the stop itself is asked to take 2 s.
const EXIT_BOUND: Duration = Duration::from_secs(15);
/// Safety net for waits that end on their own; never an assertion on speed.
const BOUND: Duration = Duration::from_secs(60);

fn signal(child: &Child, name: &str) {
    Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap();
}

/// Wait for the exit, at most `bound` (then kill it and fail), reading its
/// output meanwhile so a full pipe cannot hold it up. (status, stdout, stderr).
fn exit_within(mut child: Child, bound: Duration) -> (ExitStatus, String, String) {
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + bound;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "still running {bound:?} after the signal; stderr:\n{}",
                err.join().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (status, out.join().unwrap(), err.join().unwrap())
}

fn events_body(n: usize, tag: &str) -> String {
    let items: Vec<String> = (0..n)
        .map(|i| format!(r#"{{"msg":"{tag}-{i}"}}"#))
        .collect();
    format!("[{}]", items.join(","))
}

/// The ledger's identity: every event taken in (or left on disk by an
/// earlier run) has one fate.
fn assert_every_event_counted(c: &HashMap<String, u64>, line: &str) {
    let fates = [
        "sent",
        "filtered",
        "dropped",
        "dead_lettered",
        "kept_on_disk",
        "lost",
    ];
    let sum: u64 = fates.iter().map(|k| c[*k]).sum();
    // With a disk buffer, what an earlier run left there is delivered too.
    let earlier = c.get("disk_read_earlier").copied().unwrap_or(0);
    assert_eq!(c["received"] + earlier, sum, "{line}");
}

/// A dispatcher whose http sink points at a closed port and retries
/// (almost) forever.
fn down_dispatcher(port: u16, extra: &[&str]) -> Child {
    let closed = free_port();
    let endpoint = format!("http://127.0.0.1:{closed}/ingest");
    spawn_listening(
        dispatcher_command(port)
            .args([
                "--service",
                "http",
                "--endpoint",
                &endpoint,
                "--retry-attempts",
                "1000",
                "--batch-size",
                "5",
                "--flush-interval",
                "20ms",
                "--dlq-auto-retry",
                "false",
            ])
            .args(extra),
        port,
    )
}

fn dlq_list(queue: &str) -> String {
    let out: Output = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["dlq", "list", "--dir", queue])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn sigterm_with_the_sink_down_stops_by_the_shutdown_timeout_and_dead_letters_every_event() {
    let dir = tempfile::tempdir().unwrap();
    let queue = dir.path().join("dlq");
    let queue = queue.to_str().unwrap();
    let port = free_port();
    let child = down_dispatcher(port, &["--shutdown-timeout", "2s", "--dlq-dir", queue]);
    let (status, _) = http(port, "POST", "/v1/logs", events_body(10, "kept").as_bytes());
    assert_eq!(status, 202);
    std::thread::sleep(Duration::from_millis(300)); // let the batches fail and retry
    signal(&child, "TERM");
    let (status, out, err) = exit_within(child, EXIT_BOUND);
    assert!(status.success(), "{status:?} {err}");
    let c = final_counters(&out);
    assert_eq!(
        (c["received"], c["sent"], c["dead_lettered"], c["lost"]),
        (10, 0, 10, 0),
        "{out}"
    );
    assert_every_event_counted(&c, &out);
    assert!(err.contains("shutdown timeout reached"), "{err}");

    let list = dlq_list(queue);
    let rows: Vec<&str> = list.lines().skip(1).collect();
    assert_eq!(rows.len(), 10, "{list}");
    assert!(
        rows.iter()
            .all(|r| r.contains("shutdown: not delivered before the shutdown deadline")),
        "{list}"
    );

    // Item of the same queue: once the records outlive the retention, the
    // next start discards them — with a log line and a counter.
    std::thread::sleep(Duration::from_millis(1500));
    let port = free_port();
    let child = spawn_listening(
        dispatcher_command(port).args([
            "--service",
            "blackhole",
            "--dlq-dir",
            queue,
            "--dlq-retention",
            "1s",
            "--dlq-auto-retry",
            "false",
        ]),
        port,
    );
    let (_, stats) = http(port, "GET", "/stats", b"");
    let stats: serde_json::Value = serde_json::from_str(&stats).unwrap();
    assert_eq!(stats["dlq"]["records"], 0, "{stats}");
    assert_eq!(stats["dlq"]["expired"], 10, "{stats}");
    let (_, metrics) = http(port, "GET", "/metrics", b"");
    assert!(
        metrics.contains("dispatcher_dlq_records_discarded_total{reason=\"expired\"} 10"),
        "{metrics}"
    );
    signal(&child, "TERM");
    let (status, _, err) = exit_within(child, BOUND);
    assert!(status.success(), "{err}");
    assert!(
        err.contains("records older than the retention period discarded")
            && err.contains("records=10"),
        "{err}"
    );
}

#[test]
fn with_a_disk_buffer_what_the_deadline_cut_off_is_delivered_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let buffer = dir.path().join("buffer");
    let buffer = buffer.to_str().unwrap();
    let queue = dir.path().join("dlq");
    let queue = queue.to_str().unwrap();
    let port = free_port();
    let disk = [
        "--buffer-type",
        "disk",
        "--buffer-dir",
        buffer,
        "--dlq-dir",
        queue,
    ];
    let child = down_dispatcher(
        port,
        &[&["--shutdown-timeout", "2s"][..], &disk[..]].concat(),
    );
    let (status, _) = http(port, "POST", "/v1/logs", events_body(10, "disk").as_bytes());
    assert_eq!(status, 202, "answered once on disk");
    std::thread::sleep(Duration::from_millis(300));
    signal(&child, "TERM");
    let (status, out, err) = exit_within(child, EXIT_BOUND);
    assert!(status.success(), "{status:?} {err}");
    let c = final_counters(&out);
    assert_eq!(
        (
            c["received"],
            c["sent"],
            c["dead_lettered"],
            c["kept_on_disk"],
            c["lost"]
        ),
        (10, 0, 0, 10, 0),
        "{out}"
    );
    assert_every_event_counted(&c, &out);
    assert_eq!(dlq_list(queue).lines().count(), 1, "nothing dead-lettered");

    // The next start, with a working sink, delivers what was kept.
    let sink = common::FlakyServer::start(false);
    let port = free_port();
    let endpoint = format!("http://127.0.0.1:{}/ingest", sink.port);
    let child = spawn_listening(
        dispatcher_command(port)
            .args(["--service", "http", "--endpoint", &endpoint])
            .args(["--batch-size", "5", "--flush-interval", "20ms"])
            .args(disk),
        port,
    );
    let deadline = Instant::now() + BOUND;
    let delivered = loop {
        let bodies = sink.accepted.lock().unwrap().join("\n");
        let n = (0..10)
            .filter(|i| bodies.contains(&format!("disk-{i}\"")))
            .count();
        if n == 10 || Instant::now() > deadline {
            break n;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    signal(&child, "TERM");
    let (status, out, err) = exit_within(child, BOUND);
    assert!(status.success(), "{err}");
    assert_eq!(delivered, 10, "{out}");
    let c = final_counters(&out);
    assert_eq!((c["sent"], c["disk_read_earlier"]), (10, 10), "{out}");
    assert_every_event_counted(&c, &out);
}

#[test]
fn a_second_signal_stops_at_once_and_says_how_many_events_are_lost() {
    let dir = tempfile::tempdir().unwrap();
    let queue = dir.path().join("dlq");
    let port = free_port();
    let child = down_dispatcher(
        port,
        &[
            "--shutdown-timeout",
            "10m",
            "--dlq-dir",
            queue.to_str().unwrap(),
        ],
    );
    let (status, _) = http(port, "POST", "/v1/logs", events_body(10, "lost").as_bytes());
    assert_eq!(status, 202);
    std::thread::sleep(Duration::from_millis(300));
    signal(&child, "TERM");
    std::thread::sleep(Duration::from_millis(300));
    signal(&child, "INT");
    let (status, out, err) = exit_within(child, EXIT_BOUND);
    assert!(!status.success(), "stopping at once is a failure: {err}");
    let c = final_counters(&out);
    assert_eq!(
        (c["received"], c["lost"], c["stopped_at_once"]),
        (10, 10, 1),
        "{out}"
    );
    assert!(err.contains("10 events in memory lost"), "{err}");
}

#[test]
fn a_pipeline_file_bounds_its_stop_with_shutdown_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let (ingest, closed) = (free_port(), free_port());
    let queue = dir.path().join("dlq");
    let config = dir.path().join("pipeline.yaml");
    std::fs::write(
        &config,
        format!(
            "shutdown_timeout: 2s
dlq:
  dir: {queue}
  auto_retry: false
sources:
  ingest:
    type: http
    address: 127.0.0.1:{ingest}
sinks:
  down:
    type: http
    inputs: [ingest]
    options: {{endpoint: 'http://127.0.0.1:{closed}/ingest'}}
    batch: {{max_events: 5, timeout: 20ms}}
    delivery: {{max_retries: 1000}}
",
            queue = queue.display()
        ),
    )
    .unwrap();
    let child = spawn_listening(&mut common::run_command(&config), ingest);
    let (status, _) = http(
        ingest,
        "POST",
        "/v1/logs",
        events_body(10, "run").as_bytes(),
    );
    assert_eq!(status, 202);
    std::thread::sleep(Duration::from_millis(300));
    signal(&child, "TERM");
    let (status, out, err) = exit_within(child, EXIT_BOUND);
    assert!(status.success(), "{status:?} {err}");
    let line = out
        .lines()
        .find(|l| l.starts_with("final counters: sink=down"))
        .unwrap_or_else(|| panic!("{out}"));
    for want in ["received=10", "delivered=0", "dead_lettered=10", "lost=0"] {
        assert!(
            line.split_whitespace().any(|kv| kv == want),
            "{want}: {line}"
        );
    }
    assert_eq!(dlq_list(queue.to_str().unwrap()).lines().count(), 11);
}

#[test]
fn a_full_disk_buffer_with_the_sink_down_does_not_hold_the_stop() {
    // The router waits for room in the disk buffer, which a sink that is
    // down never gives back: before, this stop never ended.
    let dir = tempfile::tempdir().unwrap();
    let buffer = dir.path().join("buffer");
    let queue = dir.path().join("dlq");
    let port = free_port();
    let child = down_dispatcher(
        port,
        &[
            "--shutdown-timeout",
            "2s",
            "--buffer-type",
            "disk",
            "--buffer-dir",
            buffer.to_str().unwrap(),
            "--buffer-max-bytes",
            "2048",
            "--ingest-wait",
            "300ms",
            "--dlq-dir",
            queue.to_str().unwrap(),
        ],
    );
    // At once: a request the full buffer holds back waits (up to 10 s) for
    // its acknowledgement before its 503.
    let posts: Vec<_> = (0..8)
        .map(|i| {
            std::thread::spawn(move || {
                let body = events_body(5, &format!("full-{i}-{}", "x".repeat(40)));
                http(port, "POST", "/v1/logs", body.as_bytes()).0
            })
        })
        .collect();
    let answers: Vec<u16> = posts.into_iter().map(|p| p.join().unwrap()).collect();
    assert!(
        answers.contains(&202) && answers.contains(&503),
        "{answers:?}"
    );
    signal(&child, "TERM");
    let (status, out, err) = exit_within(child, EXIT_BOUND);
    assert!(status.success(), "{status:?} {err}");
    let c = final_counters(&out);
    assert_every_event_counted(&c, &out);
    assert!(c["kept_on_disk"] > 0, "{out}");
}

/// The next datagram on `socket`, waiting at most 20 s.
fn next_notification(socket: &std::os::unix::net::UnixDatagram) -> String {
    socket
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut buf = [0u8; 256];
    let n = socket.recv(&mut buf).expect("no notification within 20 s");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn run_tells_the_service_manager_it_is_ready_once_every_source_listens_and_when_it_stops() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let socket = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
    let (admin, http_in, tcp_in) = (free_port(), free_port(), free_port());
    let config = dir.path().join("pipeline.yaml");
    std::fs::write(
        &config,
        format!(
            "admin: {{address: 127.0.0.1:{admin}}}
dlq: {{enabled: false}}
sources:
  web: {{type: http, address: 127.0.0.1:{http_in}}}
  lines: {{type: tcp, address: 127.0.0.1:{tcp_in}}}
sinks:
  out:
    type: file
    inputs: [web, lines]
    options: {{endpoint: {}}}
",
            dir.path().join("out.jsonl").display()
        ),
    )
    .unwrap();
    // The admin server answers before the sources listen; READY=1 comes
    // only once they do.
    let child = spawn_listening(
        common::run_command(&config).env("NOTIFY_SOCKET", &path),
        admin,
    );
    assert_eq!(next_notification(&socket), "READY=1");
    for port in [http_in, tcp_in] {
        std::net::TcpStream::connect(("127.0.0.1", port))
            .unwrap_or_else(|e| panic!("READY=1 before port {port} listens: {e}"));
    }
    signal(&child, "TERM");
    assert_eq!(next_notification(&socket), "STOPPING=1");
    let (status, _, stderr) = exit_within(child, EXIT_BOUND);
    assert!(status.success(), "{stderr}");
}

#[cfg(target_os = "linux")]
#[test]
fn the_dispatcher_notifies_an_abstract_socket() {
    use std::os::linux::net::SocketAddrExt;
    let name = format!("switchyard-e2e-notify-{}", std::process::id());
    let address = std::os::unix::net::SocketAddr::from_abstract_name(&name).unwrap();
    let socket = std::os::unix::net::UnixDatagram::bind_addr(&address).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut cmd = dispatcher_command(port);
    cmd.env("NOTIFY_SOCKET", format!("@{name}"))
        .arg("--endpoint")
        .arg(dir.path().join("out.jsonl"));
    let child = spawn_listening(&mut cmd, port);
    assert_eq!(next_notification(&socket), "READY=1");
    assert_eq!(http(port, "GET", "/health", b"").0, 200);
    signal(&child, "TERM");
    assert_eq!(next_notification(&socket), "STOPPING=1");
    let (status, _, stderr) = exit_within(child, EXIT_BOUND);
    assert!(status.success(), "{stderr}");
}

#[test]
fn without_notify_socket_nothing_is_sent_and_nothing_is_logged() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut cmd = dispatcher_command(port);
    cmd.env_remove("NOTIFY_SOCKET")
        .arg("--endpoint")
        .arg(dir.path().join("out.jsonl"));
    let child = spawn_listening(&mut cmd, port);
    signal(&child, "TERM");
    let (status, _, stderr) = exit_within(child, EXIT_BOUND);
    assert!(status.success(), "{stderr}");
    assert!(!stderr.contains("NOTIFY_SOCKET"), "{stderr}");
}
