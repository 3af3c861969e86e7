//! Every source type from a pipeline file, through the real binary
//! (`switchyard run --config`): each is fed real input — an HTTP POST, a
//! line in a file, TCP and UDP lines, syslog messages, a demo count, a
//! private `redis-server`, a fake Docker Engine on a unix socket — and what
//! it read must land in the file sink. And every type refuses a key it does
//! not know, naming the key's path.

mod common;

use common::{free_port, http, run_command, spawn_listening, stop_with_output};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use switchyard_testkit::RedisServer;

/// A pipeline with one source `src` (its YAML settings indented under it)
/// into the file sink; the admin server's port tells when it runs.
fn start(dir: &Path, source: &str) -> (Child, PathBuf) {
    let out = dir.join("out.jsonl");
    let admin = free_port();
    let config = dir.join("pipeline.yaml");
    std::fs::write(
        &config,
        format!(
            "admin:\n  address: 127.0.0.1:{admin}\nsources:\n  src:\n{source}sinks:\n  out:\n    type: file\n    inputs: [src]\n    options: {{endpoint: '{}'}}\n    batch: {{max_events: 10, timeout: 20ms}}\n",
            out.display()
        ),
    )
    .unwrap();
    let child = spawn_listening(&mut run_command(&config), admin);
    (child, out)
}

/// The lines of `out` once at least `n` are there (bounded wait).
fn wait_for_lines(out: &Path, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(out).unwrap_or_default();
        if text.lines().count() >= n {
            return text.lines().map(str::to_string).collect();
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {n} lines in {}",
            text.lines().count(),
            out.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Stop the pipeline; its `final counters: source=src` line's `received`.
fn stop(child: Child) -> u64 {
    let (stdout, _) = stop_with_output(child);
    let line = stdout
        .lines()
        .find(|l| l.starts_with("final counters: source=src "))
        .unwrap_or_else(|| panic!("no source line in {stdout}"));
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix("received="))
        .unwrap()
        .parse()
        .unwrap()
}

fn has(lines: &[String], text: &str) -> bool {
    lines.iter().any(|l| l.contains(text))
}

#[test]
fn http_source_takes_a_post() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let (child, out) = start(
        dir.path(),
        &format!("    type: http\n    address: 127.0.0.1:{port}\n    max_body: 1000\n"),
    );
    let (status, body) = http(port, "POST", "/v1/logs", br#"[{"message":"via http"}]"#);
    assert_eq!(status, 202, "{body}");
    assert!(has(&wait_for_lines(&out, 1), "via http"));
    assert_eq!(stop(child), 1);
}

#[test]
fn file_source_follows_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    std::fs::write(logs.join("app.log"), "first line\n").unwrap();
    let (child, out) = start(
        dir.path(),
        &format!(
            "    type: file\n    include: ['{}/*.log']\n    state_dir: '{}'\n    partial_line_timeout: 100ms\n",
            logs.display(),
            dir.path().join("state").display()
        ),
    );
    assert!(has(&wait_for_lines(&out, 1), "first line"));
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(logs.join("app.log"))
        .unwrap();
    f.write_all(b"second line\n").unwrap();
    assert!(has(&wait_for_lines(&out, 2), "second line"));
    assert_eq!(stop(child), 2);
}

/// A UDP port nobody uses now.
fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn tcp_and_syslog_tcp_sources_take_lines() {
    for (kind, line, want) in [
        ("tcp", "plain over tcp\n", "plain over tcp"),
        (
            "syslog_tcp",
            "<14>Nov  5 08:01:02 web-01 app: syslog over tcp\n",
            "syslog over tcp",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let (child, out) = start(
            dir.path(),
            &format!("    type: {kind}\n    address: 127.0.0.1:{port}\n    max_connections: 4\n"),
        );
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.write_all(line.as_bytes()).unwrap();
        drop(s);
        let lines = wait_for_lines(&out, 1);
        assert!(has(&lines, want), "{kind}: {lines:?}");
        if kind == "syslog_tcp" {
            assert!(has(&lines, "web-01"), "{lines:?}");
        }
        assert_eq!(stop(child), 1, "{kind}");
    }
}

#[test]
fn udp_and_syslog_udp_sources_take_datagrams() {
    for (kind, datagram, want) in [
        ("udp", "plain over udp", "plain over udp"),
        (
            "syslog_udp",
            "<14>Nov  5 08:01:02 web-02 app: syslog over udp",
            "syslog over udp",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let port = free_udp_port();
        let (child, out) = start(
            dir.path(),
            &format!(
                "    type: {kind}\n    address: 127.0.0.1:{port}\n    max_message_bytes: 1000\n"
            ),
        );
        let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        client
            .send_to(datagram.as_bytes(), ("127.0.0.1", port))
            .unwrap();
        let lines = wait_for_lines(&out, 1);
        assert!(has(&lines, want), "{kind}: {lines:?}");
        assert_eq!(stop(child), 1, "{kind}");
    }
}

#[test]
fn demo_source_makes_its_count() {
    let dir = tempfile::tempdir().unwrap();
    let (child, out) = start(
        dir.path(),
        "    type: demo\n    kind: logs\n    count: 25\n    rate: 0\n    seed: 7\n",
    );
    let lines = wait_for_lines(&out, 25);
    assert_eq!(lines.len(), 25);
    assert_eq!(stop(child), 25);
}

#[test]
fn redis_streams_source_reads_and_acknowledges() {
    let server = RedisServer::start();
    for i in 0..20 {
        let body = format!(
            r#"{{"RequestID":"req-{i}","Method":"POST","Path":"/p","Status":200,"Duration":5}}"#
        );
        server
            .command(&["XADD", "events", "*", "data", &body])
            .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let (child, out) = start(
        dir.path(),
        &format!(
            "    type: redis_streams\n    url: {}\n    stream_key: events\n    consumer_group: readers\n    block_time: 200ms\n    batch_size: 7\n",
            server.url()
        ),
    );
    let lines = wait_for_lines(&out, 20);
    for i in 0..20 {
        assert!(has(&lines, &format!("\"req-{i}\"")), "req-{i} in {lines:?}");
    }
    assert_eq!(stop(child), 20);
    let pending = server.command(&["XPENDING", "events", "readers"]).unwrap();
    assert_eq!(pending.lines().next(), Some("0"), "{pending}");
}

#[test]
fn redis_list_source_reads_and_keeps_its_offset() {
    let server = RedisServer::start();
    for i in 1..=15 {
        let id = server.command(&["INCR", "events:seq"]).unwrap();
        let json = format!(
            r#"{{"LogID":{id},"RequestID":"req-{i}","Method":"POST","Path":"/p","Status":200,"Duration":5}}"#
        );
        server.command(&["LPUSH", "events", &json]).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let (child, out) = start(
        dir.path(),
        &format!(
            "    type: redis_list\n    url: {}\n    list_key: events\n    plugin: archive\n    poll: 100ms\n",
            server.url()
        ),
    );
    let lines = wait_for_lines(&out, 15);
    assert!(
        has(&lines, "\"req-1\"") && has(&lines, "\"req-15\""),
        "{lines:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while server
        .command(&["GET", "llm-proxy-dispatcher:archive:last_id"])
        .unwrap()
        != "15"
    {
        assert!(Instant::now() < deadline, "the offset did not reach 15");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(stop(child), 15);
}

/// A fake Docker Engine: one TTY container whose log holds two lines (the
/// stream ends after them, as for a container that stopped; the next
/// listing follows it again from after its last acknowledged line).
mod fake_docker {
    use axum::extract::RawQuery;
    use axum::routing::get;
    use axum::{Json, Router};
    use serde_json::json;
    use std::path::Path;

    const LINES: [(&str, &str); 2] = [
        ("2026-11-30T10:00:01.000000001Z", "container says hi"),
        ("2026-11-30T10:00:02.000000001Z", "container says bye"),
    ];

    /// `since` (seconds with a fraction) as nanoseconds.
    fn since_nanos(since: &str) -> i128 {
        let (s, f) = since.split_once('.').unwrap_or((since, "0"));
        s.parse::<i128>().unwrap() * 1_000_000_000
            + format!("{f:0<9}")[..9].parse::<i128>().unwrap()
    }

    fn nanos(ts: &str) -> i128 {
        time::OffsetDateTime::parse(ts, &time::format_description::well_known::Rfc3339)
            .unwrap()
            .unix_timestamp_nanos()
    }

    async fn logs(RawQuery(q): RawQuery) -> String {
        let q = q.unwrap_or_default();
        let since = q
            .split('&')
            .find_map(|kv| kv.strip_prefix("since="))
            .map_or(0, since_nanos);
        LINES
            .iter()
            .filter(|(t, _)| nanos(t) >= since)
            .map(|(t, text)| format!("{t} {text}\r\n"))
            .collect()
    }

    /// Serve at `socket` on a runtime of its own, until the test ends.
    pub fn serve(socket: &Path) -> tokio::runtime::Runtime {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let app = Router::new()
            .route(
                "/containers/json",
                get(|| async {
                    Json(json!([{"Id": "abc123", "Names": ["/web"], "Image": "web:1", "Labels": {}}]))
                }),
            )
            .route(
                "/containers/{id}/json",
                get(|| async { Json(json!({"Id": "abc123", "Config": {"Tty": true}})) }),
            )
            .route("/containers/{id}/logs", get(logs));
        let listener = rt.block_on(async { tokio::net::UnixListener::bind(socket).unwrap() });
        rt.spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        rt
    }
}

#[test]
fn docker_source_follows_a_container_of_a_fake_engine() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("docker.sock");
    let _engine = fake_docker::serve(&socket);
    let (child, out) = start(
        dir.path(),
        &format!(
            "    type: docker\n    socket: '{}'\n    include: ['w*']\n    state_dir: '{}'\n    list_interval: 100ms\n",
            socket.display(),
            dir.path().join("state").display()
        ),
    );
    let lines = wait_for_lines(&out, 2);
    assert!(has(&lines, "container says hi"), "{lines:?}");
    assert!(has(&lines, "container says bye"), "{lines:?}");
    assert!(has(&lines, "\"container_name\":\"web\""), "{lines:?}");
    // Followed again after each listing, but from after its last line.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(stop(child), 2);
}

/// `switchyard validate` on a pipeline with one source of `kind`.
fn validate(dir: &Path, source: &str) -> (bool, String) {
    let config = dir.join("check.yaml");
    std::fs::write(
        &config,
        format!("sources:\n  src:\n{source}sinks:\n  out:\n    type: stdout\n    inputs: [src]\n"),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["validate", "--config"])
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// The smallest settings of each type, as YAML lines under the source.
const MINIMAL: [(&str, &str); 10] = [
    ("http", "    type: http\n"),
    ("file", "    type: file\n    include: ['/tmp/none/*.log']\n"),
    ("tcp", "    type: tcp\n    address: 127.0.0.1:1\n"),
    ("udp", "    type: udp\n    address: 127.0.0.1:1\n"),
    (
        "syslog_tcp",
        "    type: syslog_tcp\n    address: 127.0.0.1:1\n",
    ),
    (
        "syslog_udp",
        "    type: syslog_udp\n    address: 127.0.0.1:1\n",
    ),
    (
        "docker",
        "    type: docker\n    socket: /nonexistent/docker.sock\n    include: [web]\n",
    ),
    ("demo", "    type: demo\n    kind: llm\n"),
    (
        "redis_streams",
        "    type: redis_streams\n    addr: 127.0.0.1:1\n",
    ),
    (
        "redis_list",
        "    type: redis_list\n    url: redis://127.0.0.1:1/0\n",
    ),
];

#[test]
fn every_type_validates_and_refuses_an_unknown_key_by_its_path() {
    let dir = tempfile::tempdir().unwrap();
    for (kind, yaml) in MINIMAL {
        let (ok, text) = validate(dir.path(), yaml);
        assert!(ok, "{kind}: {text}");
        let (ok, text) = validate(dir.path(), &format!("{yaml}    colour: red\n"));
        assert!(!ok, "{kind}: {text}");
        let line = yaml.lines().count() + 3;
        let want = format!("line {line}: sources.src.colour: unknown key; expected");
        assert!(text.contains(&want), "{kind}: `{want}` in {text}");
    }
    // A key inside a nested setting is named with its whole path.
    let (ok, text) = validate(
        dir.path(),
        "    type: file\n    include: [x]\n    multiline:\n      start: '^x'\n      stop: '^y'\n",
    );
    assert!(!ok);
    assert!(
        text.contains("line 7: sources.src.multiline.stop: unknown key; expected"),
        "{text}"
    );
}
