//! End to end: three real `switchyard node` processes on loopback, driven by
//! `switchyard mesh call` and the admin API.
//!
//! The nodes' ports are chosen before the nodes start (a's config names b's
//! and c's), so another process may take one in between; the mesh is then
//! started again on fresh ports. Each node logs to a file, and every wait that
//! times out prints those logs, which node exited, and a's `/peers`.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A port free a moment ago. Not reserved: see [`start_mesh`].
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An HTTP endpoint for the `http` handler: it records each request's body
/// and answers `{"hooked": <body>}` as JSON.
struct Hook {
    port: u16,
    bodies: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Hook {
    fn start() -> Hook {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let bodies = std::sync::Arc::new(std::sync::Mutex::new(vec![]));
        let seen = bodies.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let Some(body) = read_http_body(&mut stream) else {
                    continue;
                };
                let reply = format!(r#"{{"hooked":{body}}}"#);
                seen.lock().unwrap().push(body);
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                     content-length: {}\r\nconnection: close\r\n\r\n{reply}",
                    reply.len()
                );
            }
        });
        Hook { port, bodies }
    }

    fn bodies(&self) -> Vec<String> {
        self.bodies.lock().unwrap().clone()
    }
}

/// The body of one HTTP/1.1 request with a `content-length`.
fn read_http_body(stream: &mut TcpStream) -> Option<String> {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))?
        .trim()
        .parse()
        .ok()?;
    while buf.len() < head_end + len {
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    String::from_utf8(buf[head_end..head_end + len].to_vec()).ok()
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_switchyard"))
}

/// A running `switchyard node`; its stdout and stderr go to files (an unread
/// pipe would block the node once full, and its output would be lost).
struct Node {
    name: String,
    child: Child,
    out: PathBuf,
    log: PathBuf,
}

impl Node {
    fn start(dir: &Path, name: &str, yaml: &str) -> Node {
        let config = dir.join(format!("{name}.yaml"));
        std::fs::write(&config, yaml).unwrap();
        let (out, log) = (
            dir.join(format!("{name}.stdout")),
            dir.join(format!("{name}.stderr")),
        );
        let child = bin()
            .args(["node", "--config"])
            .arg(&config)
            .env("RUST_LOG", "info,switchyard_mesh=debug")
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Node {
            name: name.to_string(),
            child,
            out,
            log,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Exit status, if the node has exited.
    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().unwrap()
    }

    /// The node exited because a port it was given was taken meanwhile.
    fn lost_its_port(&mut self) -> bool {
        self.exited().is_some() && self.log().contains("cannot listen")
    }

    /// Send `signal` and wait for the exit; returns the node's stdout.
    fn stop(mut self, signal: &str) -> String {
        Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        self.child.wait().unwrap();
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // A failed test must not leave nodes behind (no-op once stopped).
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Everything needed to explain a failed wait: each node's state and log,
/// and a's view of its peers.
fn diagnose(nodes: &mut [&mut Node], admin: u16) -> String {
    let mut report = format!(
        "a's /peers: {}\n",
        try_http(admin, "GET", "/peers", "")
            .map(|(status, body)| format!("{status} {body}"))
            .unwrap_or_else(|e| format!("unavailable: {e}"))
    );
    for node in nodes.iter_mut() {
        let state = match node.exited() {
            Some(status) => format!("exited ({status})"),
            None => "running".to_string(),
        };
        report += &format!("--- node {} ({state}), stderr:\n{}", node.name, node.log());
    }
    report
}

/// Minimal HTTP/1.1 request; returns (status, body).
fn try_http(port: u16, method: &str, path: &str, body: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    let status = out
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP response: {out:?}")))?;
    let body = out.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    Ok((status, body))
}

fn http(port: u16, method: &str, path: &str, body: &str) -> (u16, String) {
    try_http(port, method, path, body).unwrap()
}

fn peers(admin: u16) -> serde_json::Value {
    let (status, body) = http(admin, "GET", "/peers", "");
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// a's healthy peers, or `None` while a's admin API does not answer.
fn healthy_peers(admin: u16) -> Option<Vec<String>> {
    let (status, body) = try_http(admin, "GET", "/peers", "").ok()?;
    if status != 200 {
        return None;
    }
    let peers: serde_json::Value = serde_json::from_str(&body).ok()?;
    let mut ids: Vec<String> = peers["peers"]
        .as_array()?
        .iter()
        .filter(|p| p["healthy"] == true)
        .map(|p| p["id"].as_str().unwrap_or_default().to_string())
        .collect();
    ids.sort();
    Some(ids)
}

/// Wait until `check` holds; on time-out, panic with the state and logs of
/// `nodes` (see [`diagnose`]).
fn wait_for(
    what: &str,
    within: Duration,
    nodes: &mut [&mut Node],
    admin: u16,
    mut check: impl FnMut(&mut [&mut Node]) -> bool,
) {
    let deadline = Instant::now() + within;
    while !check(nodes) {
        if Instant::now() >= deadline {
            panic!("timed out waiting for {what}\n{}", diagnose(nodes, admin));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn call(addr: u16, args: &[&str]) -> (Output, serde_json::Value) {
    let out = bin()
        .args(["mesh", "call", "--addr", &format!("127.0.0.1:{addr}")])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out, json)
}

/// The three nodes, connected: a routes to b and c.
struct Mesh {
    a: Node,
    b: Node,
    c: Node,
    /// gRPC ports of a, b and c, and a's admin port.
    ports: (u16, u16, u16, u16),
    events: PathBuf,
}

/// How often the mesh is started on fresh ports when a port was taken.
const PORT_ATTEMPTS: usize = 10;

/// Start a, then b and c, and wait until a has both as healthy peers. A node
/// that exits because its port was taken (by another test, between
/// `free_port` and its bind) restarts the whole mesh on fresh ports; any other
/// failure panics with the nodes' logs.
fn start_mesh(dir: &Path, hook: u16) -> Mesh {
    for attempt in 1..=PORT_ATTEMPTS {
        let run = dir.join(format!("attempt-{attempt}"));
        std::fs::create_dir(&run).unwrap();
        let (a, b, c, admin) = (free_port(), free_port(), free_port(), free_port());
        let events = run.join("a-events.jsonl");
        // a starts first: its peers are retried until they are up.
        let mut node_a = Node::start(
            &run,
            "a",
            &format!(
                "id: node-a\nlisten: 127.0.0.1:{a}\nadmin: 127.0.0.1:{admin}\n\
                 namespaces: [orders, events]\npeers: [127.0.0.1:{b}, 127.0.0.1:{c}]\n\
                 health: {{probe_interval: 200ms, probe_timeout: 3s, max_backoff: 1s}}\n\
                 pipeline: {{endpoint: {}, flush_interval: 50ms}}\n\
                 services:\n  - bind: events/Events.Publish\n    handler: publish\n\
                 \x20 - bind: events/Hook.Post\n    handler: http\n    url: http://127.0.0.1:{hook}/call\n",
                events.display()
            ),
        );
        // Wait for a's own log line, not just an open port: a port taken by
        // another process would be open too.
        let admin_line = format!("admin API listening admin=127.0.0.1:{admin}");
        wait_for(
            "a's admin API",
            Duration::from_secs(20),
            &mut [&mut node_a],
            admin,
            |n| n[0].log().contains(&admin_line) || n[0].exited().is_some(),
        );
        if node_a.lost_its_port() {
            eprintln!(
                "attempt {attempt}: a port was taken; again on fresh ports\n{}",
                diagnose(&mut [&mut node_a], admin)
            );
            continue;
        }
        let mut node_b = worker(&run, "b", b);
        let mut node_c = worker(&run, "c", c);
        let mut lost = false;
        wait_for(
            "both peers connected",
            Duration::from_secs(20),
            &mut [&mut node_a, &mut node_b, &mut node_c],
            admin,
            |nodes| {
                lost = nodes.iter_mut().any(|n| n.lost_its_port());
                lost || healthy_peers(admin).is_some_and(|p| p == ["node-b", "node-c"])
            },
        );
        if lost {
            eprintln!(
                "attempt {attempt}: a port was taken; again on fresh ports\n{}",
                diagnose(&mut [&mut node_a, &mut node_b, &mut node_c], admin)
            );
            continue;
        }
        return Mesh {
            a: node_a,
            b: node_b,
            c: node_c,
            ports: (a, b, c, admin),
            events,
        };
    }
    panic!("ports were taken by other processes in all {PORT_ATTEMPTS} attempts");
}

fn worker(dir: &Path, name: &str, port: u16) -> Node {
    // Its own pipeline file in the test's directory (the default would be
    // written to the working directory).
    let events = dir.join(format!("{name}-events.jsonl"));
    Node::start(
        dir,
        name,
        &format!(
            "id: node-{name}\nlisten: 127.0.0.1:{port}\nnamespaces: [orders]\n\
             pipeline: {{endpoint: {}}}\n\
             services:\n  - bind: orders/Who.Am\n    handler: echo\n",
            events.display()
        ),
    )
}

#[test]
fn three_nodes_route_balance_publish_and_survive_a_dead_peer() {
    let dir = tempfile::tempdir().unwrap();
    let hook = Hook::start();
    let Mesh {
        a: mut node_a,
        b: mut node_b,
        c: node_c,
        ports: (a, b, _, admin),
        events,
    } = start_mesh(dir.path(), hook.port);
    let run = node_a.log.parent().unwrap().to_path_buf();

    // Round robin over b and c, the echo handler returns the input.
    let mut handled = vec![];
    for _ in 0..4 {
        let (out, r) = call(
            a,
            &[
                "dispatch",
                "--namespace",
                "orders",
                "--service",
                "Who",
                "--method",
                "Am",
                "--input",
                r#"{"n":1}"#,
            ],
        );
        assert!(out.status.success(), "{r}");
        assert_eq!(r["status"]["code"], 200);
        assert_eq!(r["output"]["json"]["n"], 1);
        handled.push(r["handled_by_collector_id"].as_str().unwrap().to_string());
    }
    handled.sort();
    assert_eq!(handled, ["node-b", "node-b", "node-c", "node-c"]);

    // Publish: a serves `events` itself; the payload becomes an event in a's
    // pipeline (checked in its output file at the end).
    let (out, r) = call(
        a,
        &[
            "dispatch",
            "--namespace",
            "events",
            "--service",
            "Events",
            "--method",
            "Publish",
            "--input",
            r#"{"message":"routed event","tenant":"t1"}"#,
        ],
    );
    assert!(out.status.success(), "{r}");
    assert_eq!(r["handled_by_collector_id"], "node-a");
    assert_eq!(r["output"]["json"]["accepted"], 1);

    // http: a sends the payload's bytes to the hook and answers with the
    // hook's reply.
    let (out, r) = call(
        a,
        &[
            "dispatch",
            "--namespace",
            "events",
            "--service",
            "Hook",
            "--method",
            "Post",
            "--input",
            r#"{"order":42}"#,
        ],
    );
    assert!(out.status.success(), "{r}");
    assert_eq!(r["handled_by_collector_id"], "node-a");
    assert_eq!(r["output"]["json"]["hooked"]["order"], 42, "{r}");
    assert_eq!(hook.bodies(), [r#"{"order":42}"#]);

    // Bad input: a clear status and exit code 1, never a crash.
    let (out, r) = call(
        b,
        &[
            "serve",
            "--namespace",
            "nope",
            "--service",
            "S",
            "--method",
            "M",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(r["status"]["code"], 404);
    assert_eq!(r["status"]["message"], "namespace 'nope' not found");
    let (_, r) = call(
        a,
        &[
            "dispatch",
            "--namespace",
            "orders",
            "--service",
            "Who",
            "--method",
            "Am",
            "--to",
            "node-z",
        ],
    );
    assert_eq!(
        r["status"]["message"],
        "no connection to collector 'node-z'"
    );

    // Connect from the shell: b answers with its id and the namespaces both
    // sides serve, in the order asked.
    let (out, r) = call(
        b,
        &[
            "connect",
            "--address",
            "127.0.0.1:9",
            "--namespaces",
            "billing,orders",
            "--collector-id",
            "shell",
        ],
    );
    assert!(out.status.success(), "{r}");
    assert_eq!(r["status"]["code"], 200);
    assert_eq!(r["target_collector_id"], "node-b");
    assert_eq!(r["shared_namespaces"], serde_json::json!(["orders"]));
    assert!(!r["connection_id"].as_str().unwrap().is_empty(), "{r}");
    let (out, r) = call(b, &["connect", "--address", "", "--namespaces", "orders"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(r["status"]["code"], 400);
    assert_eq!(r["status"]["message"], "address is required");

    // c dies: it leaves routing and every call goes to b.
    node_c.stop("-KILL");
    wait_for(
        "c out of routing",
        Duration::from_secs(10),
        &mut [&mut node_a, &mut node_b],
        admin,
        |_| healthy_peers(admin).is_some_and(|p| p == ["node-b"]),
    );
    for _ in 0..3 {
        let (_, r) = call(
            a,
            &[
                "dispatch",
                "--namespace",
                "orders",
                "--service",
                "Who",
                "--method",
                "Am",
            ],
        );
        assert_eq!(r["handled_by_collector_id"], "node-b", "{r}");
    }

    // Namespaces change at run time and are re-announced to the live peer.
    let (status, body) = http(
        admin,
        "PUT",
        "/namespaces",
        r#"["orders","events","billing"]"#,
    );
    assert_eq!(status, 200, "{body}");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        body["namespaces"],
        serde_json::json!(["orders", "events", "billing"])
    );

    // b's config gains `billing`; SIGHUP reloads it and b re-announces.
    std::fs::write(
        run.join("b.yaml"),
        format!(
            "id: node-b\nlisten: 127.0.0.1:{b}\nnamespaces: [orders, billing]\n\
             pipeline: {{endpoint: {}}}\n\
             services:\n  - bind: orders/Who.Am\n    handler: echo\n",
            run.join("b-events.jsonl").display()
        ),
    )
    .unwrap();
    Command::new("kill")
        .args(["-HUP", &node_b.child.id().to_string()])
        .status()
        .unwrap();
    wait_for(
        "b's reloaded namespaces on a",
        Duration::from_secs(10),
        &mut [&mut node_a, &mut node_b],
        admin,
        |_| {
            peers(admin)["peers"].as_array().unwrap().iter().any(|p| {
                p["id"] == "node-b"
                    && p["shared_namespaces"] == serde_json::json!(["orders", "billing"])
            })
        },
    );

    let (status, metrics) = http(admin, "GET", "/metrics", "");
    assert_eq!(status, 200);
    assert!(
        metrics.contains(
            r#"switchyard_mesh_calls_total{rpc="dispatch",namespace="orders",method="Who.Am"} 8"#
        ),
        "{metrics}"
    );
    // The default (text) format with the mesh's calls and the pipeline's
    // counters in it: nothing for promtool to report.
    match common::promtool(&metrics) {
        Some((ok, printed)) => assert!(ok && printed.is_empty(), "promtool:\n{printed}\n{metrics}"),
        None => println!("SKIPPED: promtool is not installed; the node's /metrics was not linted"),
    }

    node_b.stop("-TERM");
    let final_a = node_a.stop("-TERM");
    assert!(
        final_a.contains("received=1 sent=1"),
        "a's pipeline delivered the event: {final_a}"
    );
    let written = std::fs::read_to_string(&events).unwrap();
    assert!(written.contains(r#""message":"routed event""#), "{written}");
    assert!(written.contains(r#""tenant":"t1""#));
}

/// A value a node logged as `key=value` (its bound ports: `listen=`,
/// `admin=`), once it has.
fn logged(node: &mut Node, key: &str) -> Option<String> {
    let log = node.log();
    let at = log.find(&format!(" {key}="))? + key.len() + 2;
    log[at..].split_whitespace().next().map(str::to_string)
}

/// One node on ports of its own choosing (`:0`), its publish pipeline
/// configured by `pipeline`; returns it with its gRPC and admin ports.
fn publishing_node(dir: &Path, pipeline: &str) -> (Node, u16, u16) {
    let mut node = Node::start(
        dir,
        "p",
        &format!(
            "id: node-p\nlisten: 127.0.0.1:0\nadmin: 127.0.0.1:0\nnamespaces: [events]\n\
             pipeline: {pipeline}\n\
             services:\n  - bind: events/Events.Publish\n    handler: publish\n"
        ),
    );
    let port =
        |node: &mut Node, key: &str| logged(node, key)?.rsplit(':').next()?.parse::<u16>().ok();
    let mut ports = None;
    wait_for(
        "the node's ports in its log",
        Duration::from_secs(20),
        &mut [&mut node],
        0,
        |n| {
            ports = port(n[0], "admin").zip(port(n[0], "listen"));
            ports.is_some() || n[0].exited().is_some()
        },
    );
    let (admin, grpc) = ports.unwrap_or_else(|| panic!("the node exited:\n{}", node.log()));
    (node, grpc, admin)
}

fn publish(port: u16, message: &str) {
    let input = serde_json::json!({ "message": message }).to_string();
    let (out, r) = call(
        port,
        &[
            "serve",
            "--namespace",
            "events",
            "--service",
            "Events",
            "--method",
            "Publish",
            "--input",
            &input,
        ],
    );
    assert!(out.status.success(), "{r}");
    assert_eq!(r["output"]["json"]["accepted"], 1, "{r}");
}

/// The node's `/metrics` line that starts with `series` (name and labels).
fn metric(admin: u16, series: &str) -> Option<String> {
    let (_, page) = try_http(admin, "GET", "/metrics", "").ok()?;
    page.lines()
        .find(|l| l.starts_with(series))
        .map(str::to_string)
}

#[test]
fn published_events_reach_the_sink_through_the_pipeline_and_show_on_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let hook = Hook::start();
    let (mut node, grpc, admin) = publishing_node(
        dir.path(),
        &format!(
            "{{sink: http, endpoint: \"http://127.0.0.1:{}/ingest\", batch_size: 1, flush_interval: 50ms}}",
            hook.port
        ),
    );
    publish(grpc, "first");
    publish(grpc, "second");
    wait_for(
        "both events at the sink",
        Duration::from_secs(20),
        &mut [&mut node],
        admin,
        |_| hook.bodies().len() == 2,
    );
    let bodies = hook.bodies().join("\n");
    assert!(
        bodies.contains(r#""message":"first""#) && bodies.contains(r#""message":"second""#),
        "{bodies}"
    );
    let processed = r#"dispatcher_entries_processed_total{component="http"}"#;
    wait_for(
        "the deliveries on /metrics",
        Duration::from_secs(20),
        &mut [&mut node],
        admin,
        |_| metric(admin, processed).is_some_and(|l| l.ends_with(" 2")),
    );
    let received = metric(
        admin,
        r#"dispatcher_entries_received_total{component="publish"}"#,
    );
    assert_eq!(
        received.as_deref(),
        Some(r#"dispatcher_entries_received_total{component="publish"} 2"#)
    );
    let final_line = node.stop("-TERM");
    assert!(
        final_line.contains("received=2 sent=2 filtered=0 dropped=0 dead_lettered=0 lost=0"),
        "{final_line}"
    );
}

#[test]
fn a_failing_sinks_events_land_in_the_dead_letter_queue_and_on_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let dlq = dir.path().join("dlq");
    // Nothing listens there: every attempt fails (connection refused). The
    // breaker stays closed throughout, so each event has exactly its two
    // attempts.
    let down = free_port();
    let (mut node, grpc, admin) = publishing_node(
        dir.path(),
        &format!(
            "{{sink: http, endpoint: \"http://127.0.0.1:{down}/ingest\", batch_size: 1, \
             flush_interval: 50ms, \
             delivery: {{max_retries: 1, retry_backoff: 10ms, circuit_breaker: {{failure_threshold: 100}}}}, \
             dlq: {{dir: {}, auto_retry: false}}}}",
            dlq.display()
        ),
    );
    for m in ["one", "two", "three"] {
        publish(grpc, m);
    }
    let dead = r#"dispatcher_entries_dead_lettered_total{component="http"}"#;
    wait_for(
        "three dead letters on /metrics",
        Duration::from_secs(30),
        &mut [&mut node],
        admin,
        |_| metric(admin, dead).is_some_and(|l| l.ends_with(" 3")),
    );
    // Each failed once and was retried once before it was given up.
    let retries = metric(admin, r#"dispatcher_retries_total{component="http"}"#);
    assert_eq!(
        retries.as_deref(),
        Some(r#"dispatcher_retries_total{component="http"} 3"#)
    );
    // Kept, not lost: no discard is counted for the sink.
    let failed = metric(
        admin,
        r#"dispatcher_component_discarded_events_total{component="http",component_kind="sink",reason="delivery_failed"}"#,
    );
    assert!(failed.is_some_and(|l| l.ends_with(" 0")));
    let final_line = node.stop("-TERM");
    assert!(
        final_line.contains("received=3 sent=0 filtered=0 dropped=0 dead_lettered=3 lost=0"),
        "{final_line}"
    );
    let listed = bin()
        .args(["dlq", "list", "--dir"])
        .arg(&dlq)
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout);
    let records: Vec<&str> = listed.lines().skip(1).collect();
    assert_eq!(records.len(), 3, "{listed}");
    assert!(
        records
            .iter()
            .all(|r| r.contains(" http ") && r.contains("retries_exhausted")),
        "{listed}"
    );
}
