//! What Switchyard's mesh does better than the original: bidirectional and
//! idempotent Connect, balancing, health, breakers, deadlines and trace
//! context across the hop, metrics, run-time namespaces.

mod common;

use common::*;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use switchyard_mesh::{any, BreakerConfig, HandlerError, COLLECTOR_ID};
use tokio::time::Instant;

/// Every node answers `orders/Who.Am` with its own id.
fn whoami(n: &TestNode) {
    answer(&n.node, "orders", "Who", "Am", n.node.id());
}

async fn handled_by(a: &TestNode, req: switchyard_mesh::pb::DispatchRequest) -> String {
    let r = a.client().dispatch(req).await.unwrap().into_inner();
    let (code, message) = code_msg(r.status);
    assert_eq!(code, 200, "{message}");
    r.handled_by_collector_id
}

#[tokio::test]
async fn receiver_dials_back_so_a_bare_connect_links_both_ways() {
    let a = TestNode::start("a", &["orders"]).await;
    let b = TestNode::start("b", &["orders"]).await;
    // An original-style client tells b about a; a itself never called connect_to.
    let r = b
        .client()
        .connect(switchyard_mesh::pb::ConnectRequest {
            address: a.addr.clone(),
            namespaces: vec!["orders".into()],
            metadata: HashMap::from([(COLLECTOR_ID.into(), "a".into())]),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code_msg(r.status).0, 200);
    let dialled_back = eventually(Duration::from_secs(5), || async {
        a.node.peers().iter().any(|p| p.id == "b")
    })
    .await;
    assert!(dialled_back, "b dialled back to a");
    whoami(&b);
    assert_eq!(
        handled_by(&a, dispatch_req("orders", "Who", "Am")).await,
        "b"
    );
}

#[tokio::test]
async fn reconnecting_never_duplicates_peers() {
    let a = TestNode::start("a", &["orders"]).await;
    let b = TestNode::start("b", &["orders"]).await;
    for _ in 0..3 {
        a.node.connect_to(&b.addr, &["orders"]).await.unwrap();
    }
    b.node.connect_to(&a.addr, &["orders"]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await; // let dial-backs land
    assert_eq!(a.node.peers().len(), 1);
    assert_eq!(b.node.peers().len(), 1);
}

async fn star(n: usize) -> (TestNode, Vec<TestNode>) {
    let a = TestNode::start("a", &["orders"]).await;
    let mut peers = vec![];
    for i in 0..n {
        let p = TestNode::start(&format!("p{i}"), &["orders"]).await;
        whoami(&p);
        a.node.connect_to(&p.addr, &["orders"]).await.unwrap();
        peers.push(p);
    }
    (a, peers)
}

#[tokio::test]
async fn round_robin_spreads_calls_evenly() {
    let (a, _peers) = star(3).await;
    let mut counts: HashMap<String, u32> = HashMap::new();
    for _ in 0..30 {
        *counts
            .entry(handled_by(&a, dispatch_req("orders", "Who", "Am")).await)
            .or_default() += 1;
    }
    assert_eq!(counts.len(), 3, "{counts:?}");
    assert!(counts.values().all(|&c| c == 10), "{counts:?}");
}

#[tokio::test]
async fn hash_key_hint_pins_a_key_to_one_peer() {
    let (a, _peers) = star(3).await;
    let call = |key: &str| {
        let mut r = dispatch_req("orders", "Who", "Am");
        r.routing_hints.insert("hash_key".into(), key.into());
        r
    };
    let first = handled_by(&a, call("tenant-7")).await;
    for _ in 0..9 {
        assert_eq!(handled_by(&a, call("tenant-7")).await, first);
    }
    let mut owners = std::collections::HashSet::new();
    for k in 0..30 {
        owners.insert(handled_by(&a, call(&format!("tenant-{k}"))).await);
    }
    assert!(owners.len() > 1, "keys spread over peers: {owners:?}");
}

/// With probes every 200 ms, a stopped peer (connections refused) must leave
/// routing within 2 s; with the defaults (500 ms) it takes about a second.
/// The test allows the full 2 s so a loaded machine does not make it flaky.
#[tokio::test]
async fn dead_peer_leaves_routing_then_rejoins_when_back() {
    let (a, mut peers) = star(2).await;
    let p1 = peers.pop().unwrap();
    let (p1_addr, p1_id) = (p1.addr.clone(), p1.node.id().to_string());
    p1.stop().await;
    let stopped = Instant::now();
    let gone = eventually(Duration::from_secs(2), || async {
        a.node.peers().iter().any(|p| p.id == p1_id && !p.healthy)
    })
    .await;
    assert!(
        gone,
        "dead peer still routable after {:?}",
        stopped.elapsed()
    );
    for _ in 0..6 {
        assert_eq!(
            handled_by(&a, dispatch_req("orders", "Who", "Am")).await,
            "p0"
        );
    }

    // Back on the same address, knowing nothing of a: a reconnects it.
    let back = TestNode::start_at(&p1_id, &p1_addr, &["orders"]).await;
    whoami(&back);
    let rejoined = eventually(Duration::from_secs(10), || async {
        a.node.peers().iter().any(|p| p.id == p1_id && p.healthy)
            && back.node.peers().iter().any(|p| p.id == "a")
    })
    .await;
    assert!(rejoined, "peer reconnected: {:?}", a.node.peers());
    let mut seen = std::collections::HashSet::new();
    for _ in 0..4 {
        seen.insert(handled_by(&a, dispatch_req("orders", "Who", "Am")).await);
    }
    assert!(seen.contains(&p1_id), "{seen:?}");
}

/// A loopback TCP proxy that can freeze: from then on it passes no more
/// bytes either way, but keeps every connection open and accepts new ones,
/// as a hung host or a stalled process does.
struct Freezable {
    addr: String,
    frozen: tokio::sync::watch::Sender<bool>,
}

impl Freezable {
    async fn start(upstream: String) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let (frozen, watch) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            while let Ok((down, _)) = listener.accept().await {
                let watch = watch.clone();
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let mut watch = watch;
                    if *watch.borrow() {
                        let _keep_open = down;
                        return std::future::pending::<()>().await;
                    }
                    let Ok(up) = tokio::net::TcpStream::connect(&upstream).await else {
                        return;
                    };
                    let (mut down_r, mut down_w) = down.into_split();
                    let (mut up_r, mut up_w) = up.into_split();
                    tokio::select! {
                        _ = tokio::io::copy(&mut down_r, &mut up_w) => {}
                        _ = tokio::io::copy(&mut up_r, &mut down_w) => {}
                        // The copies are dropped; the four halves stay open.
                        () = async { drop(watch.wait_for(|f| *f).await) } => {
                            std::future::pending::<()>().await
                        }
                    }
                });
            }
        });
        Self { addr, frozen }
    }

    fn freeze(&self) {
        let _ = self.frozen.send(true);
    }
}

/// With the default health settings (a probe every 500 ms, 500 ms to
/// answer), a peer that stops answering but keeps its connections open, the
/// slowest kind of death to notice, leaves routing within 2 s; calls for its
/// namespace then get a prompt 404 instead of waiting on it.
#[tokio::test]
async fn with_default_probes_a_hung_peer_leaves_routing_within_two_seconds() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy = Freezable::start(listener.local_addr().unwrap().to_string()).await;
    // b is reached (and says it is reached) only through the proxy.
    let b = switchyard_mesh::Dispatcher::with_config(
        "b",
        proxy.addr.clone(),
        ["orders"],
        switchyard_mesh::MeshConfig::default(),
    );
    answer(&b, "orders", "Who", "Am", "b");
    let _b_running = b.spawn(listener);
    let a = TestNode::start_with("a", &["users"], switchyard_mesh::MeshConfig::default()).await;
    a.node.connect_to(&proxy.addr, &["orders"]).await.unwrap();
    assert_eq!(
        handled_by(&a, dispatch_req("orders", "Who", "Am")).await,
        "b"
    );

    proxy.freeze();
    let frozen = Instant::now();
    let gone = eventually(Duration::from_secs(2), || async {
        a.node.peers().iter().any(|p| p.id == "b" && !p.healthy)
    })
    .await;
    let took = frozen.elapsed();
    assert!(gone, "hung peer still routable after {took:?}");
    let asked = Instant::now();
    let r = a
        .client()
        .dispatch(dispatch_req("orders", "Who", "Am"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        code_msg(r.status),
        (404, "no collector found for namespace 'orders'".into())
    );
    assert!(
        asked.elapsed() < Duration::from_millis(500),
        "{:?}",
        asked.elapsed()
    );
}

#[tokio::test]
async fn circuit_breaker_stops_calls_to_a_failing_peer() {
    let mut config = fast_config();
    config.breaker = BreakerConfig {
        failures: 3,
        open_for: Duration::from_secs(30),
    };
    let a = TestNode::start_with("a", &["orders"], config).await;
    let b = TestNode::start("b", &["orders"]).await;
    let calls = Arc::new(AtomicU32::new(0));
    let counter = calls.clone();
    b.node
        .register_service("orders", "Pay", "Charge", move |_| {
            counter.fetch_add(1, Ordering::SeqCst);
            async { Err(HandlerError::new("card processor down")) }
        });
    a.node.connect_to(&b.addr, &["orders"]).await.unwrap();
    let mut req = dispatch_req("orders", "Pay", "Charge");
    req.target_collector_id = "b".into();
    let mut messages = vec![];
    for _ in 0..5 {
        let r = a.client().dispatch(req.clone()).await.unwrap().into_inner();
        messages.push(code_msg(r.status));
    }
    assert_eq!(calls.load(Ordering::SeqCst), 3, "{messages:?}");
    assert_eq!(
        messages[2],
        (500, "handler error: card processor down".into())
    );
    assert_eq!(messages[4].0, 500);
    assert!(
        messages[4]
            .1
            .starts_with("serve RPC failed: circuit breaker open for collector 'b'"),
        "{messages:?}"
    );
    assert!(a.node.peers()[0].breaker_open);
}

/// What the remote handler saw: time left before the deadline, traceparent.
type Seen = (Option<Duration>, Option<String>);

#[tokio::test]
async fn deadline_and_traceparent_cross_the_hop() {
    let a = TestNode::start("a", &["orders"]).await;
    let b = TestNode::start("b", &["orders"]).await;
    a.node.connect_to(&b.addr, &["orders"]).await.unwrap();
    let seen: Arc<Mutex<Option<Seen>>> = Arc::default();
    let finished = Arc::new(AtomicBool::new(false));
    {
        let seen = seen.clone();
        b.node
            .register_service_with_context("orders", "Trace", "Fast", move |ctx, _| {
                *seen.lock().unwrap() = Some((ctx.remaining(), ctx.traceparent.clone()));
                async { Ok(any::json("{}")) }
            });
        let finished = finished.clone();
        b.node
            .register_service_with_context("orders", "Trace", "Slow", move |_, _| {
                let finished = finished.clone();
                async move {
                    tokio::time::sleep(Duration::from_secs(3)).await;
                    finished.store(true, Ordering::SeqCst);
                    Ok(any::json("{}"))
                }
            });
    }
    let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let mut req = tonic::Request::new(dispatch_req("orders", "Trace", "Fast"));
    req.set_timeout(Duration::from_secs(5));
    req.metadata_mut()
        .insert("traceparent", parent.parse().unwrap());
    let r = a.client().dispatch(req).await.unwrap().into_inner();
    assert_eq!(code_msg(r.status).0, 200);
    let (remaining, trace) = seen.lock().unwrap().clone().expect("handler ran");
    let remaining = remaining.expect("deadline reached b");
    assert!(remaining <= Duration::from_secs(5) && remaining > Duration::from_secs(1));
    let trace = trace.expect("traceparent reached b");
    assert!(
        trace.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
        "{trace}"
    );
    assert!(
        !trace.contains("00f067aa0ba902b7"),
        "a new span for the hop"
    );

    // A deadline shorter than the handler: the caller is answered at its
    // deadline and the remote handler is cancelled, not left running.
    let started = Instant::now();
    let mut req = tonic::Request::new(dispatch_req("orders", "Trace", "Slow"));
    req.set_timeout(Duration::from_millis(300));
    let result = a.client().dispatch(req).await;
    let took = started.elapsed();
    match result {
        Err(status) => assert!(
            matches!(
                status.code(),
                tonic::Code::DeadlineExceeded | tonic::Code::Cancelled
            ),
            "{status:?}"
        ),
        Ok(r) => panic!("expected a deadline error, got {:?}", r.into_inner()),
    }
    assert!(took < Duration::from_secs(2), "answered after {took:?}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        !finished.load(Ordering::SeqCst),
        "remote handler was cancelled"
    );
}

#[tokio::test]
async fn metrics_count_calls_errors_and_latency_per_route() {
    let a = TestNode::start("a", &["orders"]).await;
    let b = TestNode::start("b", &["orders"]).await;
    whoami(&b);
    a.node.connect_to(&b.addr, &["orders"]).await.unwrap();
    for _ in 0..3 {
        handled_by(&a, dispatch_req("orders", "Who", "Am")).await;
    }
    a.client()
        .dispatch(dispatch_req("orders", "Who", "Missing"))
        .await
        .unwrap();
    let text = a.node.metrics_text();
    let line = |l: &str| text.lines().any(|x| x == l);
    assert!(
        line(r#"switchyard_mesh_calls_total{rpc="dispatch",namespace="orders",method="Who.Am"} 3"#),
        "{text}"
    );
    assert!(line(
        r#"switchyard_mesh_calls_total{rpc="forward",namespace="orders",method="Who.Am"} 3"#
    ));
    assert!(line(
        r#"switchyard_mesh_errors_total{rpc="dispatch",namespace="orders",method="Who.Missing"} 1"#
    ));
    assert!(text.contains(
        r#"switchyard_mesh_call_duration_seconds_count{rpc="dispatch",namespace="orders",method="Who.Am"} 3"#
    ));
    let on_b = b.node.metrics_text();
    assert!(on_b.contains(
        r#"switchyard_mesh_calls_total{rpc="serve",namespace="orders",method="Who.Am"} 3"#
    ));
}

#[tokio::test]
async fn namespaces_changed_at_run_time_are_reannounced() {
    let a = TestNode::start("a", &["orders", "billing"]).await;
    let b = TestNode::start("b", &["orders"]).await;
    answer(&b.node, "billing", "Invoice", "Send", "b");
    a.node
        .connect_to(&b.addr, &["orders", "billing"])
        .await
        .unwrap();
    let r = a
        .client()
        .dispatch(dispatch_req("billing", "Invoice", "Send"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code_msg(r.status).0, 404, "billing not shared yet");

    assert_eq!(b.node.set_namespaces(["orders", "billing"]).await, 1);
    assert_eq!(a.node.peers()[0].shared_namespaces, ["orders", "billing"]);
    assert_eq!(
        handled_by(&a, dispatch_req("billing", "Invoice", "Send")).await,
        "b"
    );

    assert_eq!(b.node.set_namespaces(["orders"]).await, 1);
    assert_eq!(a.node.peers()[0].shared_namespaces, ["orders"]);
}

#[tokio::test]
async fn peer_table_is_bounded_and_known_peers_can_reconnect() {
    let mut config = fast_config();
    config.max_peers = 2;
    let b = TestNode::start_with("b", &["orders"], config).await;
    let mut client = b.client();
    let connect = |id: &str| switchyard_mesh::pb::ConnectRequest {
        address: "127.0.0.1:9".into(),
        namespaces: vec!["orders".into()],
        metadata: HashMap::from([(COLLECTOR_ID.into(), id.into())]),
    };
    for id in ["x1", "x2", "x1"] {
        let r = client.connect(connect(id)).await.unwrap().into_inner();
        assert_eq!(code_msg(r.status).0, 200, "{id}");
    }
    let r = client.connect(connect("x3")).await.unwrap().into_inner();
    assert_eq!(
        code_msg(r.status),
        (
            503,
            "peer table full (2 peers); try another collector".into()
        )
    );
    assert_eq!(b.node.peers().len(), 2);
}

#[tokio::test]
async fn a_peer_dead_past_forget_after_is_forgotten() {
    let mut config = fast_config();
    config.health.forget_after = Duration::from_millis(500);
    let a = TestNode::start_with("a", &["orders"], config).await;
    let b = TestNode::start("b", &["orders"]).await;
    a.node.connect_to(&b.addr, &["orders"]).await.unwrap();
    b.stop().await;
    let forgotten = eventually(Duration::from_secs(10), || async {
        a.node.peers().is_empty()
    })
    .await;
    assert!(forgotten, "{:?}", a.node.peers());
}
