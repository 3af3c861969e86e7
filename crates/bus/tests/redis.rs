//! The Redis publishers against a real, private `redis-server`, checked with
//! raw commands: the keys, fields and values of the spec, not our own reader.

use std::time::Duration;
use switchyard_bus::redis::list_log::{self, ListConfig};
use switchyard_bus::redis::{Link, Publisher, PublisherConfig, RedisTarget, Wire};
use switchyard_core::{Event, HttpExchange};
use switchyard_testkit::RedisServer;

fn exchange(i: usize) -> Event {
    HttpExchange {
        request_id: format!("req-{i}"),
        method: "POST".into(),
        path: "/v1/chat/completions".into(),
        status: 200,
        duration_ns: 1_500_000,
        request_body: Some(bytes::Bytes::from_static(b"{\"model\":\"m\"}")),
        ..Default::default()
    }
    .into()
}

fn target(server: &RedisServer) -> RedisTarget {
    RedisTarget::new(None, &server.addr(), None).unwrap()
}

/// A publisher to `llm-proxy-events` (`MAXLEN ~ 10000`).
fn stream_publisher(server: &RedisServer, buffer: usize, pipeline: usize) -> Publisher {
    Publisher::start(
        &target(server),
        PublisherConfig {
            wire: Wire::Stream {
                stream: "llm-proxy-events".into(),
                max_len: 10_000,
            },
            buffer,
            pipeline,
        },
    )
    .unwrap()
}

#[tokio::test]
async fn stream_publisher_writes_xadd_with_one_data_field() {
    let server = RedisServer::start();
    let publisher = stream_publisher(&server, 100, 16);
    assert_eq!(publisher.publish_all((0..3).map(exchange)), 3);
    let stats = publisher.close(Duration::from_secs(10)).await;
    assert_eq!((stats.written, stats.dropped, stats.unsent), (3, 0, 0));
    let raw = server
        .command(&["XRANGE", "llm-proxy-events", "-", "+"])
        .unwrap();
    let lines: Vec<&str> = raw.lines().collect();
    // id, "data", json — three times, and nothing else.
    assert_eq!(lines.len(), 9, "{raw}");
    for (n, entry) in lines.chunks(3).enumerate() {
        assert_eq!(entry[1], "data");
        let v: serde_json::Value = serde_json::from_str(entry[2]).unwrap();
        assert_eq!(v["RequestID"], format!("req-{n}"));
        assert_eq!(v["Duration"], 1_500_000);
        assert_eq!(v["RequestBody"], "eyJtb2RlbCI6Im0ifQ==");
        assert_eq!(v["LogID"], 0);
    }
}

/// A connection that breaks with a batch on the wire: the batch is written
/// again on a new connection and counted as `resent`, the bound on events
/// stored twice. Here the server holds the batch unexecuted (`CLIENT PAUSE`)
/// while the connection is killed, so nothing is stored twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_cut_off_mid_write_is_written_again_and_counted() {
    let server = RedisServer::start();
    server
        .command(&["CLIENT", "PAUSE", "3000", "WRITE"])
        .unwrap();
    let publisher = stream_publisher(&server, 1000, 100);
    assert_eq!(publisher.publish_all((0..100).map(exchange)), 100);
    // The batch reaches the server and waits there, unexecuted.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(publisher.stats().written, 0, "the pause holds the batch");
    server
        .command(&["CLIENT", "KILL", "TYPE", "normal"])
        .unwrap();
    server.command(&["CLIENT", "UNPAUSE"]).unwrap();
    let stats = publisher.close(Duration::from_secs(30)).await;
    assert_eq!((stats.written, stats.unsent), (100, 0), "{stats:?}");
    assert_eq!(stats.resent, 100, "{stats:?}");
    assert_eq!(
        server.command(&["XLEN", "llm-proxy-events"]).unwrap(),
        "100"
    );
}

#[tokio::test]
async fn stream_is_trimmed_approximately_to_max_len() {
    let server = RedisServer::start();
    let publisher = Publisher::start(
        &target(&server),
        PublisherConfig {
            wire: Wire::Stream {
                stream: "s".into(),
                max_len: 1000,
            },
            buffer: 20_000,
            pipeline: 256,
        },
    )
    .unwrap();
    publisher.publish_all((0..5000).map(exchange));
    let stats = publisher.close(Duration::from_secs(30)).await;
    assert_eq!(stats.written, 5000);
    let len: u64 = server.command(&["XLEN", "s"]).unwrap().parse().unwrap();
    assert!((1000..2000).contains(&len), "MAXLEN ~ 1000 left {len}");
}

#[tokio::test]
async fn publisher_never_blocks_without_redis_and_counts_drops() {
    let mut server = RedisServer::start();
    let t = target(&server);
    server.stop();
    let publisher = Publisher::start(
        &t,
        PublisherConfig {
            wire: Wire::Stream {
                stream: "s".into(),
                max_len: 100,
            },
            buffer: 10,
            pipeline: 4,
        },
    )
    .unwrap();
    let start = std::time::Instant::now();
    let accepted = publisher.publish_all((0..1000).map(exchange));
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "publish returned at once"
    );
    // The buffer holds up to 10, and the writer may have taken a batch out.
    assert!(accepted <= 14, "accepted {accepted}");
    let stats = publisher.stats();
    assert_eq!(stats.dropped, 1000 - accepted as u64);
    // Redis comes back: what was buffered is written.
    server.start_again();
    let stats = publisher.close(Duration::from_secs(30)).await;
    assert_eq!(stats.written, accepted as u64);
    assert_eq!(
        server.command(&["XLEN", "s"]).unwrap(),
        accepted.to_string()
    );
}

#[tokio::test]
async fn list_publisher_incr_lpush_ltrim_expire() {
    let server = RedisServer::start();
    let cfg = ListConfig {
        key: "llm-proxy-events".into(),
        max_len: Some(5),
        ttl: Some(Duration::from_secs(3600)),
    };
    let publisher = Publisher::start(
        &target(&server),
        PublisherConfig {
            wire: Wire::List(cfg.clone()),
            buffer: 100,
            pipeline: 3,
        },
    )
    .unwrap();
    publisher.publish_all((0..7).map(exchange));
    assert_eq!(publisher.close(Duration::from_secs(10)).await.written, 7);
    assert_eq!(
        server.command(&["GET", "llm-proxy-events:seq"]).unwrap(),
        "7"
    );
    assert_eq!(server.command(&["LLEN", "llm-proxy-events"]).unwrap(), "5");
    let ttl: i64 = server
        .command(&["TTL", "llm-proxy-events"])
        .unwrap()
        .parse()
        .unwrap();
    assert!(ttl > 0 && ttl <= 3600, "{ttl}");
    // Newest at index 0, LogIDs in the JSON.
    let items = server
        .command(&["LRANGE", "llm-proxy-events", "0", "-1"])
        .unwrap();
    let ids: Vec<i64> = items
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["LogID"]
                .as_i64()
                .unwrap()
        })
        .collect();
    assert_eq!(ids, [7, 6, 5, 4, 3]);

    // The reader API: count, range, and an incremental read after an offset.
    let mut link = Link::new(&target(&server), "test", Duration::from_secs(5)).unwrap();
    let mut conn = link.get().await;
    assert_eq!(list_log::count(&mut conn, &cfg.key).await.unwrap(), 5);
    assert_eq!(
        list_log::range(&mut conn, &cfg.key, 0, 1)
            .await
            .unwrap()
            .len(),
        2
    );
    let read = list_log::read_after(&mut conn, &cfg, 4, 100).await.unwrap();
    let got: Vec<i64> = read.events.iter().map(|(id, _)| *id).collect();
    assert_eq!(got, [5, 6, 7]);
    assert!(read.complete);
    // From offset 0 the window reaches the end of the list: 1 and 2 are gone.
    let read = list_log::read_after(&mut conn, &cfg, 0, 100).await.unwrap();
    assert_eq!(read.events.first().map(|(id, _)| *id), Some(3));
    assert!(read.complete);
    list_log::set_offset(&mut conn, "lunary", 7).await.unwrap();
    assert_eq!(
        server
            .command(&["GET", "llm-proxy-dispatcher:lunary:last_id"])
            .unwrap(),
        "7"
    );
}

/// A read sent ahead with `send_read_new` is executed by Redis at once: its
/// entries are pending for this consumer before the caller takes the reply,
/// which then holds them in order.
#[tokio::test]
async fn a_read_sent_ahead_runs_before_its_reply_is_taken() {
    use switchyard_bus::redis::{Group, GroupConfig, ReadConn};
    let server = RedisServer::start();
    for i in 0..5 {
        server
            .command(&["XADD", "s", "*", "data", &format!("{{\"n\":{i}}}")])
            .unwrap();
    }
    let group = Group::new(GroupConfig {
        stream: "s".into(),
        count: 10,
        ..GroupConfig::new("c1")
    });
    let mut link = Link::new(&target(&server), "test", Duration::from_secs(5)).unwrap();
    group.ensure(&mut link.get().await).await.unwrap();
    let mut conn = ReadConn::connect(&target(&server)).await.unwrap();
    group.send_read_new(&mut conn).await.unwrap();
    // The reply is not taken yet; Redis has handed the entries over anyway.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let pending = server
            .command(&["XPENDING", "s", "llm-proxy-dispatchers"])
            .unwrap();
        if pending.lines().next() == Some("5") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not read: {pending}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let entries = group.receive_new(&mut conn).await.unwrap();
    let data: Vec<&[u8]> = entries.iter().map(|e| e.field(b"data").unwrap()).collect();
    let want: Vec<String> = (0..5).map(|i| format!("{{\"n\":{i}}}")).collect();
    assert_eq!(data, want.iter().map(|s| s.as_bytes()).collect::<Vec<_>>());
    // The connection is ready for the next read: nothing new, an empty reply.
    let none = Group::new(GroupConfig {
        block: Duration::from_millis(1),
        ..group.config().clone()
    });
    assert!(none.read_new(&mut conn).await.unwrap().is_empty());
}

/// The request ids stored under `key` (a stream or a list), each once.
fn stored_ids(server: &RedisServer, wire: &Wire) -> std::collections::BTreeSet<String> {
    let raw = match wire {
        Wire::Stream { stream, .. } => server.command(&["XRANGE", stream, "-", "+"]).unwrap(),
        Wire::List(cfg) => server.command(&["LRANGE", &cfg.key, "0", "-1"]).unwrap(),
    };
    raw.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["RequestID"].as_str().map(String::from))
        .collect()
}

/// Redis stopped and started again mid-stream, for both wires: what was
/// published while it was down waits in the publisher's buffer and is
/// written once it is back; nothing is dropped or lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarted_mid_stream_loses_no_published_event() {
    let wires = [
        Wire::Stream {
            stream: "llm-proxy-events".into(),
            max_len: 100_000,
        },
        Wire::List(ListConfig {
            key: "llm-proxy-events".into(),
            max_len: None,
            ttl: None,
        }),
    ];
    for wire in wires {
        let mut server = RedisServer::start();
        let publisher = Publisher::start(
            &target(&server),
            PublisherConfig {
                wire: wire.clone(),
                buffer: 2000,
                pipeline: 50,
            },
        )
        .unwrap();
        assert_eq!(publisher.publish_all((0..500).map(exchange)), 500);
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while publisher.stats().written < 500 {
            assert!(
                std::time::Instant::now() < deadline,
                "{:?}",
                publisher.stats()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        server.save();
        server.stop();
        // Published while Redis is down: buffered, never blocking the caller.
        assert_eq!(publisher.publish_all((500..1000).map(exchange)), 500);
        tokio::time::sleep(Duration::from_millis(300)).await;
        server.start_again();
        let stats = publisher.close(Duration::from_secs(60)).await;
        assert_eq!((stats.dropped, stats.unsent), (0, 0), "{wire:?}: {stats:?}");
        let ids = stored_ids(&server, &wire);
        assert_eq!(ids.len(), 1000, "{wire:?}: {stats:?}");
    }
}
