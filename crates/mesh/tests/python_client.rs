//! A client nobody here wrote: Python's grpcio, with stubs that grpcio-tools
//! generates from `proto/collector.proto`, against two real nodes on
//! loopback. It checks what a client of the original relies on — codes in
//! `Status.code` (an enum in the proto, HTTP numbers on the wire), the exact
//! messages, routing, the `Any` payload unchanged across a hop — through
//! another language's protobuf runtime and HTTP/2 stack.
//!
//! Needs `python3` with `grpcio` and `grpcio-tools` importable, either
//! installed or in `target/python-deps` (`scripts/test` puts them there;
//! `SWITCHYARD_PYTHON_DEPS` names another directory).

mod common;

use common::*;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::Command;

fn python_deps() -> PathBuf {
    std::env::var_os("SWITCHYARD_PYTHON_DEPS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/python-deps")
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpcio_client_generated_from_the_proto_gets_the_original_behaviour() {
    // a shares `orders` with b but has no handler there: auto-routing
    // sends those calls to b.
    let a = TestNode::start("a", &["users", "orders"]).await;
    let b = TestNode::start("b", &["orders"]).await;
    answer(
        &a.node,
        "users",
        "UserService",
        "GetUser",
        r#"{"name":"ada"}"#,
    );
    b.node
        .register_service("orders", "OrderService", "Echo", |input| async move {
            Ok(input)
        });
    let r = a.node.connect_to(&b.addr, &["orders"]).await.unwrap();
    assert_eq!(code_msg(r.status).0, 200);

    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    // The generated stubs go here, removed when the test ends.
    let out_dir = tempfile::tempdir().unwrap();
    let mut command = Command::new("python3");
    command
        .arg(manifest.join("tests/python/collector_client.py"))
        .arg(manifest.join("proto"))
        .arg(out_dir.path())
        .args([&a.addr, &b.addr])
        .env("PYTHONPATH", python_deps())
        .env("PYTHONDONTWRITEBYTECODE", "1");
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .expect("python3 runs (scripts/test installs it when missing)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the grpcio client failed (scripts/test installs grpcio and grpcio-tools into \
         target/python-deps):\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let calls: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let status = |code: i64, message: &str| json!({"code": code, "message": message});
    let want = [
        json!({"call": "serve", "status": status(200, "OK"),
               "output": r#"{"name":"ada"}"#, "executor_id": "a"}),
        json!({"call": "serve-invalid", "status": status(400, "namespace is required")}),
        json!({"call": "serve-invalid", "status": status(400, "service is required")}),
        json!({"call": "serve-invalid", "status": status(400, "method_name is required")}),
        json!({"call": "serve-invalid", "status": status(404, "namespace 'nowhere' not found")}),
        json!({"call": "dispatch-remote", "status": status(200, "OK"),
               "type_url": "type.googleapis.com/some.Message",
               "value": [0, 159, 146, 150, 255], "handled_by": "b"}),
        json!({"call": "dispatch-unknown-target",
               "status": status(404, "no connection to collector 'nobody'")}),
        json!({"call": "dispatch-invalid", "status": status(400, "service is required")}),
        json!({"call": "connect-invalid", "status": status(400, "address is required")}),
        json!({"call": "validate", "status": status(200, "OK"), "is_valid": true}),
    ];
    assert_eq!(calls.len(), want.len(), "{stdout}");
    for (got, want) in calls.iter().zip(&want) {
        assert_eq!(got, want);
    }
}
