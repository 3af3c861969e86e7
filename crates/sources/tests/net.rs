//! TCP and UDP sources over loopback: framing, syslog, limits, drops.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use switchyard_core::{Event, Payload};
use switchyard_engine::metrics::{ComponentKind, Metrics};
use switchyard_engine::{intake, IntakeReceiver};
use switchyard_sources::net::{serve_tcp, serve_udp, Format, NetConfig, NetCounters};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::watch;

async fn take(rx: &mut IntakeReceiver, n: usize) -> Vec<Event> {
    tokio::time::timeout(Duration::from_secs(20), async {
        let mut all = Vec::new();
        while all.len() < n {
            all.extend(rx.recv().await.expect("queue open"));
        }
        all
    })
    .await
    .expect("events arrive")
}

/// Wait (bounded) until `cond` holds.
async fn eventually(cond: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(std::time::Instant::now() < deadline, "condition never held");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The `/metrics` line of one loss of source `component`.
fn discarded_line(component: &str, reason: &str, n: u64) -> String {
    format!("\ndispatcher_component_discarded_events_total{{component=\"{component}\",component_kind=\"source\",reason=\"{reason}\"}} {n}\n")
}

fn message(e: &Event) -> String {
    match &e.payload {
        Payload::Log(r) => r.message.clone().unwrap_or_default(),
        _ => panic!("a log record"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_syslog_mixes_framings_and_keeps_malformed_lines() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, mut rx) = intake(1000);
    let counters = Arc::new(NetCounters::default());
    let (stop_tx, stop) = watch::channel(false);
    let server = tokio::spawn(serve_tcp(
        listener,
        NetConfig::new(Format::Syslog),
        tx,
        counters.clone(),
        stop,
    ));
    let mut c = TcpStream::connect(addr).await.unwrap();
    let counted = "<165>1 2003-10-11T22:14:15.003Z host app - - - counted message";
    c.write_all(format!("{} {counted}", counted.len()).as_bytes())
        .await
        .unwrap();
    c.write_all(b"<30>Nov  5 08:01:02 web-01 sshd[42]: newline framed\nnot syslog at all\n")
        .await
        .unwrap();
    c.shutdown().await.unwrap();
    let events = take(&mut rx, 3).await;
    let msgs: Vec<String> = events.iter().map(message).collect();
    assert_eq!(
        msgs,
        ["counted message", "newline framed", "not syslog at all"]
    );
    let Payload::Log(first) = &events[0].payload else {
        unreachable!()
    };
    assert_eq!(first.level.as_deref(), Some("notice"));
    assert_eq!(first.source_type, Some("syslog"));
    assert_eq!(first.fields.get("appname").unwrap().get(), "\"app\"");
    eventually(|| counters.messages.load(Relaxed) == 3).await;
    assert_eq!(counters.malformed.load(Relaxed), 1);
    stop_tx.send(true).unwrap();
    server.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_lines_refuse_connections_over_the_limit_and_bound_line_length() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, mut rx) = intake(1000);
    let counters = Arc::new(NetCounters::default());
    let (stop_tx, stop) = watch::channel(false);
    let mut config = NetConfig::new(Format::Lines);
    config.max_connections = 1;
    config.max_message_bytes = 10;
    let server = tokio::spawn(serve_tcp(listener, config, tx, counters.clone(), stop));
    let mut first = TcpStream::connect(addr).await.unwrap();
    first.write_all(b"short\n").await.unwrap();
    take(&mut rx, 1).await; // the first connection holds the only slot
    let mut second = TcpStream::connect(addr).await.unwrap();
    let _ = second.write_all(b"refused\n").await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while counters.refused.load(Relaxed) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "second connection refused"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    first.write_all(b"0123456789abcdef\nafter\n").await.unwrap();
    let msgs: Vec<String> = take(&mut rx, 2).await.iter().map(message).collect();
    assert_eq!(msgs, ["0123456789", "after"]);
    assert_eq!(counters.too_long.load(Relaxed), 1);
    let metrics = Metrics::new();
    let c = counters.clone();
    metrics.add_discards(
        "tcp",
        ComponentKind::Source,
        Arc::new(move || c.tcp_discards()),
    );
    let page = metrics.render();
    assert!(
        page.contains(&discarded_line("tcp", "too_long", 1)),
        "{page}"
    );
    assert!(
        page.contains(&discarded_line("tcp", "connection_refused", 1)),
        "{page}"
    );
    drop(first);
    stop_tx.send(true).unwrap();
    server.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_delivers_datagrams_and_counts_what_a_full_queue_drops() {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let (tx, mut rx) = intake(2);
    let counters = Arc::new(NetCounters::default());
    let (stop_tx, stop) = watch::channel(false);
    let mut config = NetConfig::new(Format::Syslog);
    config.udp_queue_wait = Duration::from_millis(10);
    let server = tokio::spawn(serve_udp(socket, config, tx, counters.clone(), stop));
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for i in 0..2 {
        client
            .send_to(format!("<14>1 - h a - - - m{i}").as_bytes(), addr)
            .await
            .unwrap();
    }
    eventually(|| counters.messages.load(Relaxed) == 2).await;
    // The queue (2 events) is full and nobody reads it: the next ones drop.
    for i in 2..5 {
        client
            .send_to(format!("<14>1 - h a - - - m{i}").as_bytes(), addr)
            .await
            .unwrap();
    }
    eventually(|| counters.udp_dropped.load(Relaxed) == 3).await;
    let msgs: Vec<String> = take(&mut rx, 2).await.iter().map(message).collect();
    assert_eq!(msgs, ["m0", "m1"]);
    assert_eq!(counters.messages.load(Relaxed), 2);
    let metrics = Metrics::new();
    let c = counters.clone();
    metrics.add_discards(
        "syslog_udp",
        ComponentKind::Source,
        Arc::new(move || c.udp_discards()),
    );
    let page = metrics.render();
    assert!(
        page.contains(&discarded_line("syslog_udp", "udp_queue_full", 3)),
        "{page}"
    );
    assert!(
        page.contains(&discarded_line("syslog_udp", "too_long", 0)),
        "{page}"
    );
    stop_tx.send(true).unwrap();
    server.await.unwrap();
}
