//! Helpers shared by the mesh tests: real nodes on loopback port 0.
#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;
use switchyard_mesh::pb::{self, ServiceTypeRef};
use switchyard_mesh::{any, dial, Client, Dispatcher, MeshConfig, Running, Security};
use tokio::net::TcpListener;

/// A node serving on a fresh loopback port.
pub struct TestNode {
    pub node: Dispatcher,
    pub addr: String,
    pub running: Running,
}

impl TestNode {
    pub async fn start(id: &str, namespaces: &[&str]) -> Self {
        Self::start_with(id, namespaces, fast_config()).await
    }

    pub async fn start_with(id: &str, namespaces: &[&str], config: MeshConfig) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("bound").to_string();
        let node = Dispatcher::with_config(id, addr.clone(), namespaces.iter().copied(), config);
        let running = node.spawn(listener);
        Self {
            node,
            addr,
            running,
        }
    }

    /// Start on a given address (to bring a stopped node back).
    pub async fn start_at(id: &str, addr: &str, namespaces: &[&str]) -> Self {
        let listener = bind_retrying(addr).await;
        let node = Dispatcher::with_config(id, addr, namespaces.iter().copied(), fast_config());
        let running = node.spawn(listener);
        Self {
            node,
            addr: addr.to_string(),
            running,
        }
    }

    pub fn client(&self) -> Client {
        dial(&self.addr, &Security::default(), Duration::from_secs(2)).expect("valid address")
    }

    pub async fn stop(self) {
        self.running.shutdown().await.expect("clean shutdown");
    }
}

async fn bind_retrying(addr: &str) -> TcpListener {
    for _ in 0..50 {
        if let Ok(l) = TcpListener::bind(addr).await {
            return l;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("cannot re-bind {addr}");
}

/// Frequent health probing so tests of failure detection stay short. A
/// stopped peer refuses connections at once, so detection does not wait for
/// the probe timeout; the timeout is generous so a busy machine never makes a
/// live peer look dead.
pub fn fast_config() -> MeshConfig {
    let mut c = MeshConfig::default();
    c.health.probe_interval = Duration::from_millis(200);
    c.health.probe_timeout = Duration::from_secs(3);
    c.health.max_backoff = Duration::from_millis(800);
    c
}

/// Register `Service.Method` in `namespace` answering `reply` as JSON text.
pub fn answer(node: &Dispatcher, namespace: &str, service: &str, method: &str, reply: &str) {
    let reply = reply.to_string();
    node.register_service(namespace, service, method, move |_| {
        let reply = reply.clone();
        async move { Ok(any::json(&reply)) }
    });
}

pub fn svc(name: &str) -> Option<ServiceTypeRef> {
    Some(ServiceTypeRef {
        namespace: String::new(),
        service_name: name.to_string(),
    })
}

pub fn serve_req(ns: &str, service: &str, method: &str) -> pb::ServeRequest {
    pb::ServeRequest {
        namespace: ns.into(),
        service: svc(service),
        method_name: method.into(),
        input: Some(any::json("{}")),
        execution_context: Default::default(),
    }
}

pub fn dispatch_req(ns: &str, service: &str, method: &str) -> pb::DispatchRequest {
    pb::DispatchRequest {
        namespace: ns.into(),
        service: svc(service),
        method_name: method.into(),
        input: Some(any::json("{}")),
        target_collector_id: String::new(),
        routing_hints: Default::default(),
    }
}

pub fn code_msg(status: Option<pb::Status>) -> (i32, String) {
    let s = status.expect("a status in every response");
    (s.code, s.message)
}

pub fn output_text(output: Option<prost_types::Any>) -> String {
    String::from_utf8(output.expect("an output").value).expect("utf-8 output")
}

/// Poll `check` every 20 ms until it holds or `within` passes.
pub async fn eventually<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let end = tokio::time::Instant::now() + within;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= end {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
