//! End to end: three real `switchyard node` processes on loopback, driven by
//! `switchyard mesh call` and the admin API.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_switchyard"))
}

fn start_node(dir: &Path, name: &str, yaml: &str) -> Child {
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, yaml).unwrap();
    bin()
        .args(["node", "--config"])
        .arg(&path)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn wait_listening(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "port {port} never opened");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Minimal HTTP/1.1 request; returns (status, body).
fn http(port: u16, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out[9..12].parse().unwrap();
    let body = out.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}

fn peers(admin: u16) -> serde_json::Value {
    let (status, body) = http(admin, "GET", "/peers", "");
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

fn healthy_peers(admin: u16) -> Vec<String> {
    let mut ids: Vec<String> = peers(admin)["peers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["healthy"] == true)
        .map(|p| p["id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

fn wait_for(what: &str, within: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn call(addr: u16, args: &[&str]) -> (Output, serde_json::Value) {
    let out = bin()
        .args(["mesh", "call", "--addr", &format!("127.0.0.1:{addr}")])
        .args(args)
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

fn stop(child: Child, signal: &str) -> String {
    Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn three_nodes_route_balance_publish_and_survive_a_dead_peer() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c, admin) = (free_port(), free_port(), free_port(), free_port());
    let events = dir.path().join("a-events.jsonl");
    // a starts first: its peers are retried until they are up.
    let node_a = start_node(
        dir.path(),
        "a",
        &format!(
            "id: node-a\nlisten: 127.0.0.1:{a}\nadmin: 127.0.0.1:{admin}\n\
             namespaces: [orders, events]\npeers: [127.0.0.1:{b}, 127.0.0.1:{c}]\n\
             health: {{probe_interval: 200ms, probe_timeout: 3s, max_backoff: 1s}}\n\
             pipeline: {{endpoint: {}, flush_interval: 50ms}}\n\
             services:\n  - bind: events/Events.Publish\n    handler: publish\n",
            events.display()
        ),
    );
    wait_listening(admin);
    let worker = |name: &str, port: u16| {
        start_node(
            dir.path(),
            name,
            &format!(
                "id: node-{name}\nlisten: 127.0.0.1:{port}\nnamespaces: [orders]\n\
                 services:\n  - bind: orders/Who.Am\n    handler: echo\n"
            ),
        )
    };
    let node_b = worker("b", b);
    let node_c = worker("c", c);
    wait_for("both peers connected", Duration::from_secs(20), || {
        healthy_peers(admin) == ["node-b", "node-c"]
    });

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

    // c dies: it leaves routing and every call goes to b.
    stop(node_c, "-KILL");
    wait_for("c out of routing", Duration::from_secs(10), || {
        healthy_peers(admin) == ["node-b"]
    });
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
        dir.path().join("b.yaml"),
        format!(
            "id: node-b\nlisten: 127.0.0.1:{b}\nnamespaces: [orders, billing]\n\
             services:\n  - bind: orders/Who.Am\n    handler: echo\n"
        ),
    )
    .unwrap();
    Command::new("kill")
        .args(["-HUP", &node_b.id().to_string()])
        .status()
        .unwrap();
    wait_for(
        "b's reloaded namespaces on a",
        Duration::from_secs(10),
        || {
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

    stop(node_b, "-TERM");
    let final_a = stop(node_a, "-TERM");
    assert!(
        final_a.contains("received=1 sent=1"),
        "a's pipeline delivered the event: {final_a}"
    );
    let written = std::fs::read_to_string(&events).unwrap();
    assert!(written.contains(r#""message":"routed event""#), "{written}");
    assert!(written.contains(r#""tenant":"t1""#));
}
