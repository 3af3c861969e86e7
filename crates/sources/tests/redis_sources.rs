//! Redis sources against a real, private `redis-server`: what reaches the
//! sink, and what Redis holds afterwards, checked with raw commands.

use async_trait::async_trait;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use switchyard_bus::redis::{
    ConsumerSnapshot, ConsumerStats, Group, GroupConfig, ListConfig, RedisTarget,
};
use switchyard_core::{Event, EventFailure, Payload, Sink, SinkError};
use switchyard_engine::delivery::{Concurrency, DeliveryConfig};
use switchyard_engine::metrics::{ComponentKind, Metrics};
use switchyard_engine::topology::{Observers, Pipeline, SinkNode};
use switchyard_engine::{intake, BufferConfig, SinkPolicy};
use switchyard_sources::redis_list::{self, ListSourceConfig};
use switchyard_sources::redis_streams;
use switchyard_testkit::RedisServer;
use tokio::sync::watch;
use tokio::task::JoinHandle;

const STREAM: &str = "llm-proxy-events";
const GROUP: &str = "llm-proxy-dispatchers";

/// Keeps the request ids it was given; refuses for good (a permanent error
/// of that event alone) the events whose id is in `refuse`.
#[derive(Clone, Default)]
struct Collect {
    ids: Arc<Mutex<Vec<String>>>,
    refuse: Arc<Mutex<BTreeSet<String>>>,
}

#[async_trait]
impl Sink for Collect {
    async fn send(&self, events: &[Event]) -> Result<(), SinkError> {
        let refuse = self.refuse.lock().unwrap();
        let mut ids = self.ids.lock().unwrap();
        let mut failures = Vec::new();
        for (index, e) in events.iter().enumerate() {
            let id = match &e.payload {
                Payload::Http(x) => x.request_id.clone(),
                Payload::Log(r) => r.message.clone().unwrap_or_default(),
                Payload::Json(doc) => doc.get().to_string(),
            };
            if refuse.contains(&id) {
                failures.push(EventFailure {
                    index,
                    error: SinkError::permanent(format!("test sink refuses {id}")),
                });
            } else {
                ids.push(id);
            }
        }
        SinkError::from_failures(failures)
    }
}

impl Collect {
    fn len(&self) -> usize {
        self.ids.lock().unwrap().len()
    }
    fn unique(&self) -> BTreeSet<String> {
        self.ids.lock().unwrap().iter().cloned().collect()
    }
}

/// A source and an engine, running until `finish`.
struct Running {
    stop: watch::Sender<bool>,
    source: JoinHandle<Result<(), String>>,
    engine: JoinHandle<()>,
    stats: Arc<ConsumerStats>,
}

impl Running {
    async fn finish(self) -> ConsumerSnapshot {
        self.stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(30), self.source)
            .await
            .expect("source stops")
            .unwrap()
            .unwrap();
        tokio::time::timeout(Duration::from_secs(30), self.engine)
            .await
            .expect("engine drains")
            .unwrap();
        self.stats.snapshot()
    }
}

/// The engine behind a source: a one-source topology into `sink` (batches of
/// 50, no retries); the task ends once every sender is gone and the sink has
/// drained.
fn engine(sink: &Collect) -> (switchyard_engine::IntakeSender, JoinHandle<()>) {
    let policy = SinkPolicy {
        batch_size: 50,
        flush_interval: Duration::from_millis(50),
        delivery: DeliveryConfig {
            max_retries: 0,
            retry_backoff: Duration::from_millis(10),
            concurrency: Concurrency::Fixed(2),
            ..DeliveryConfig::default()
        },
        ..SinkPolicy::new("collect")
    };
    let node = SinkNode {
        name: "collect".into(),
        inputs: vec!["redis".into()],
        sink: Box::new(sink.clone()),
        buffer: BufferConfig::events(1000),
        policy,
        disk: None,
    };
    let pipeline = Pipeline::start(
        vec!["redis".into()],
        1000,
        vec![],
        vec![node],
        Observers::default(),
    )
    .unwrap();
    let tx = pipeline.sender("redis").unwrap();
    let engine = tokio::spawn(async move {
        pipeline.finish().await;
    });
    (tx, engine)
}

fn group(consumer: &str) -> Group {
    let mut cfg = GroupConfig::new(consumer);
    cfg.count = 100;
    cfg.block = Duration::from_millis(100);
    cfg.claim_idle = Duration::from_millis(300);
    Group::new(cfg)
}

fn start_streams(server: &RedisServer, sink: &Collect, consumer: &str) -> Running {
    let (tx, engine) = engine(sink);
    let stats = Arc::new(ConsumerStats::default());
    let (stop, shutdown) = watch::channel(false);
    let target = RedisTarget::new(Some(&server.url()), "", None).unwrap();
    let source = tokio::spawn(redis_streams::run(
        target,
        group(consumer),
        tx,
        stats.clone(),
        shutdown,
    ));
    Running {
        stop,
        source,
        engine,
        stats,
    }
}

fn exchange(i: usize) -> String {
    format!(
        r#"{{"LogID":0,"RequestID":"req-{i}","Method":"POST","Path":"/v1/chat/completions","Status":200,"Duration":1000,"ResponseHeaders":null,"ResponseBody":null,"RequestBody":"e30="}}"#
    )
}

fn xadd(server: &RedisServer, fields: &[&str]) {
    let mut args = vec!["XADD", STREAM, "*"];
    args.extend_from_slice(fields);
    server.command(&args).unwrap();
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn pending(server: &RedisServer) -> u64 {
    let summary = server.command(&["XPENDING", STREAM, GROUP]).unwrap();
    summary.lines().next().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_round_trip_acks_only_after_delivery() {
    let server = RedisServer::start();
    for i in 0..250 {
        xadd(&server, &["data", &exchange(i)]);
    }
    let sink = Collect::default();
    let running = start_streams(&server, &sink, "c1");
    wait_for("250 events", || sink.len() >= 250).await;
    let stats = running.finish().await;
    assert_eq!(sink.unique().len(), 250);
    assert_eq!(sink.len(), 250);
    assert_eq!(stats.acked, 250);
    assert_eq!(pending(&server), 0, "every delivered entry is acknowledged");
    // The group exists under the spec's name, with our consumer in it.
    let groups = server.command(&["XINFO", "GROUPS", STREAM]).unwrap();
    assert!(groups.contains(GROUP), "{groups}");
}

/// Regression: a read was acknowledged only when every event of it was
/// delivered, so one dropped event kept its whole read pending and the claim
/// scan re-delivered the delivered neighbours forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_event_is_kept_in_dead_stream_and_its_neighbours_acknowledged() {
    let server = RedisServer::start();
    let sink = Collect::default();
    sink.refuse.lock().unwrap().insert("req-7".into());
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(
            server
                .command(&["XADD", STREAM, "*", "data", &exchange(i)])
                .unwrap(),
        );
    }
    // All 20 come in one read (COUNT 100) and one engine batch or a few.
    let running = start_streams(&server, &sink, "c1");
    wait_for("the dropped entry settled", || {
        let s = running.stats.snapshot();
        s.dropped == 1 && s.acked == 20
    })
    .await;
    // Longer than the claim time: nothing may come back.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let stats = running.finish().await;
    assert_eq!(sink.len(), 19, "each neighbour delivered once: {stats:?}");
    assert!(!sink.unique().contains("req-7"));
    assert_eq!((stats.delivered, stats.dropped), (19, 1), "{stats:?}");
    assert_eq!((stats.claimed, stats.not_acked), (0, 0), "{stats:?}");
    assert_eq!(pending(&server), 0, "nothing left pending");
    let dead_key = format!("{STREAM}:dead");
    assert_eq!(server.command(&["XLEN", &dead_key]).unwrap(), "1");
    let dead = server.command(&["XRANGE", &dead_key, "-", "+"]).unwrap();
    let fields: Vec<&str> = dead.lines().skip(1).collect();
    assert_eq!(
        fields[..4],
        ["id", &ids[7], "reason", redis_streams::DROPPED_REASON]
    );
    assert_eq!(
        fields[4..],
        ["data", &exchange(7)],
        "the original entry is kept"
    );
}

/// Events whose fate nobody decided stay pending; here the engine is gone
/// before it takes them, so every token drops unresolved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_lost_in_flight_stay_pending() {
    let server = RedisServer::start();
    for i in 0..20 {
        xadd(&server, &["data", &exchange(i)]);
    }
    let (tx, rx) = intake(1000);
    drop(rx); // no engine: what the source sends is lost in flight
    let stats = Arc::new(ConsumerStats::default());
    let (stop, shutdown) = watch::channel(false);
    let target = RedisTarget::new(Some(&server.url()), "", None).unwrap();
    let source = redis_streams::run(target, group("c1"), tx, stats.clone(), shutdown);
    tokio::time::timeout(Duration::from_secs(30), source)
        .await
        .expect("the source ends when the engine is gone")
        .unwrap();
    drop(stop);
    let s = stats.snapshot();
    assert_eq!((s.unresolved, s.not_acked, s.acked), (20, 20, 0), "{s:?}");
    assert_eq!(
        pending(&server),
        20,
        "nothing acknowledged that was not decided"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_entries_are_kept_in_dead_stream_and_acknowledged() {
    let server = RedisServer::start();
    xadd(&server, &["data", &exchange(1)]);
    xadd(&server, &["data", "not json"]);
    xadd(&server, &["payload", &exchange(2)]);
    xadd(&server, &["data", r#"{"RequestID":"bad","Status":"200"}"#]);
    xadd(&server, &["data", &exchange(3)]);
    let sink = Collect::default();
    let running = start_streams(&server, &sink, "c1");
    wait_for("the good events", || sink.len() >= 2).await;
    wait_for("the poison", || running.stats.snapshot().poison >= 3).await;
    let stats = running.finish().await;
    assert_eq!(sink.unique(), ["req-1", "req-3"].map(String::from).into());
    assert_eq!(stats.poison, 3);
    assert_eq!(pending(&server), 0, "poison does not wedge the group");
    let dead_key = format!("{STREAM}:dead");
    assert_eq!(server.command(&["XLEN", &dead_key]).unwrap(), "3");
    let dead = server.command(&["XRANGE", &dead_key, "-", "+"]).unwrap();
    assert!(dead.contains("not a JSON object"), "{dead}");
    assert!(dead.contains("no `data` field"), "{dead}");
    assert!(dead.contains("not an HTTP exchange"), "{dead}");
    assert!(
        dead.contains("not json"),
        "the original value is kept: {dead}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_of_a_dead_consumer_are_claimed_and_delivered() {
    let server = RedisServer::start();
    server
        .command(&["XGROUP", "CREATE", STREAM, GROUP, "0", "MKSTREAM"])
        .unwrap();
    for i in 0..30 {
        xadd(&server, &["data", &exchange(i)]);
    }
    // A consumer reads everything and dies without acknowledging.
    server
        .command(&[
            "XREADGROUP",
            "GROUP",
            GROUP,
            "dead",
            "COUNT",
            "100",
            "STREAMS",
            STREAM,
            ">",
        ])
        .unwrap();
    assert_eq!(pending(&server), 30);
    let sink = Collect::default();
    let running = start_streams(&server, &sink, "alive");
    wait_for("claimed events", || sink.len() >= 30).await;
    let stats = running.finish().await;
    assert_eq!(sink.unique().len(), 30);
    assert_eq!(stats.claimed, 30);
    assert_eq!(pending(&server), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_pending_entries_are_reread_on_restart() {
    let server = RedisServer::start();
    server
        .command(&["XGROUP", "CREATE", STREAM, GROUP, "0", "MKSTREAM"])
        .unwrap();
    for i in 0..10 {
        xadd(&server, &["data", &exchange(i)]);
    }
    // "me" read them in an earlier life and crashed.
    server
        .command(&["XREADGROUP", "GROUP", GROUP, "me", "STREAMS", STREAM, ">"])
        .unwrap();
    let sink = Collect::default();
    let running = start_streams(&server, &sink, "me");
    wait_for("re-read events", || sink.len() >= 10).await;
    let stats = running.finish().await;
    assert_eq!(stats.redelivered, 10);
    assert_eq!(stats.claimed, 0);
    assert_eq!(pending(&server), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restart_mid_stream_loses_nothing() {
    let mut server = RedisServer::start();
    let sink = Collect::default();
    let running = start_streams(&server, &sink, "c1");
    for i in 0..500 {
        xadd(&server, &["data", &exchange(i)]);
    }
    wait_for("some events", || sink.len() >= 1).await;
    server.restart_keeping_data();
    for i in 500..1000 {
        xadd(&server, &["data", &exchange(i)]);
    }
    wait_for("all events", || sink.unique().len() >= 1000).await;
    // Acknowledgements made after the snapshot died with the old server: those
    // entries are pending again, and the claim scan delivers them once more.
    wait_for("no entry pending", || pending(&server) == 0).await;
    let stats = running.finish().await;
    assert_eq!(sink.unique().len(), 1000);
    assert!(stats.reconnects >= 1, "{stats:?}");
    // Duplicates come only from work Redis forgot (reads and acks after the
    // snapshot); every delivery is accounted for as read, re-read or claimed.
    assert_eq!(
        sink.len() as u64,
        stats.read + stats.redelivered + stats.claimed,
        "{stats:?}"
    );
    assert!(
        sink.len() - 1000 < 500,
        "duplicates bounded by what was in flight: {stats:?}"
    );
}

fn start_list(server: &RedisServer, sink: &Collect, key: &str) -> Running {
    let (tx, engine) = engine(sink);
    let stats = Arc::new(ConsumerStats::default());
    let (stop, shutdown) = watch::channel(false);
    let target = RedisTarget::new(Some(&server.url()), "", None).unwrap();
    let cfg = ListSourceConfig {
        list: ListConfig {
            key: key.into(),
            max_len: None,
            ttl: None,
        },
        plugin: "file".into(),
        batch: 40,
        poll: Duration::from_millis(20),
        gap_grace: Duration::from_millis(100),
        max_in_flight: 3,
    };
    let source = tokio::spawn(redis_list::run(target, cfg, tx, stats.clone(), shutdown));
    Running {
        stop,
        source,
        engine,
        stats,
    }
}

/// Push like the original proxy: INCR, then LPUSH of the JSON with that LogID.
fn list_push(server: &RedisServer, key: &str, i: usize) -> i64 {
    let id: i64 = server
        .command(&["INCR", &format!("{key}:seq")])
        .unwrap()
        .parse()
        .unwrap();
    server.command(&["LPUSH", key, &list_entry(i, id)]).unwrap();
    id
}

/// Event `i` as a LIST entry with `LogID` `id`.
fn list_entry(i: usize, id: i64) -> String {
    exchange(i).replace(r#""LogID":0"#, &format!(r#""LogID":{id}"#))
}

/// Regression: one dropped event made the LIST source re-read from the
/// stored offset, so a permanently refused event was delivered (and refused)
/// forever and its neighbours again and again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_log_keeps_a_dropped_event_in_the_dead_stream_and_moves_on() {
    let server = RedisServer::start();
    let key = "llm-proxy-events";
    let sink = Collect::default();
    sink.refuse.lock().unwrap().insert("req-7".into());
    for i in 0..20 {
        list_push(&server, key, i);
    }
    let running = start_list(&server, &sink, key);
    wait_for("the offset past every event", || {
        let s = running.stats.snapshot();
        s.dropped == 1 && s.acked == 20
    })
    .await;
    // Several poll intervals: nothing may come back.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stats = running.finish().await;
    assert_eq!(sink.len(), 19, "each neighbour delivered once: {stats:?}");
    assert!(!sink.unique().contains("req-7"));
    assert_eq!((stats.delivered, stats.dropped), (19, 1), "{stats:?}");
    assert_eq!((stats.not_acked, stats.lost), (0, 0), "{stats:?}");
    assert_eq!(
        server
            .command(&["GET", "llm-proxy-dispatcher:file:last_id"])
            .unwrap(),
        "20"
    );
    let dead_key = format!("{key}:dead");
    assert_eq!(server.command(&["XLEN", &dead_key]).unwrap(), "1");
    let dead = server.command(&["XRANGE", &dead_key, "-", "+"]).unwrap();
    let fields: Vec<&str> = dead.lines().skip(1).collect();
    // req-7 was the 8th push: LogID 8.
    assert_eq!(
        fields,
        [
            "id",
            "8",
            "reason",
            redis_list::DROPPED_REASON,
            "data",
            &list_entry(7, 8)
        ],
        "the original entry is kept"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_log_reads_incrementally_and_stores_the_offset() {
    let server = RedisServer::start();
    let key = "llm-proxy-events";
    for i in 0..100 {
        list_push(&server, key, i);
    }
    let sink = Collect::default();
    let running = start_list(&server, &sink, key);
    wait_for("100 events", || sink.len() >= 100).await;
    for i in 100..150 {
        list_push(&server, key, i);
    }
    wait_for("150 events", || sink.len() >= 150).await;
    let stats = running.finish().await;
    assert_eq!(sink.len(), 150, "each delivered once");
    assert_eq!(stats.lost, 0);
    let ids = sink.ids.lock().unwrap().clone();
    let expected: Vec<String> = (0..150).map(|i| format!("req-{i}")).collect();
    assert_eq!(ids, expected, "delivered in LogID order");
    assert_eq!(
        server
            .command(&["GET", "llm-proxy-dispatcher:file:last_id"])
            .unwrap(),
        "150"
    );
    // A restart resumes from the offset: nothing is delivered twice.
    let sink2 = Collect::default();
    list_push(&server, key, 150);
    let running = start_list(&server, &sink2, key);
    wait_for("the one new event", || sink2.len() >= 1).await;
    running.finish().await;
    assert_eq!(sink2.unique(), ["req-150".to_string()].into());
}

/// The LIST log with Redis restarted mid-stream: the reader reconnects and
/// resumes from its stored offset; every event is delivered, none lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_log_redis_restart_mid_stream_loses_nothing() {
    let mut server = RedisServer::start();
    let key = "llm-proxy-events";
    let sink = Collect::default();
    let running = start_list(&server, &sink, key);
    for i in 0..500 {
        list_push(&server, key, i);
    }
    wait_for("some events", || sink.len() >= 1).await;
    server.restart_keeping_data();
    for i in 500..1000 {
        list_push(&server, key, i);
    }
    wait_for("all events", || sink.unique().len() >= 1000).await;
    let stats = running.finish().await;
    assert_eq!(sink.unique().len(), 1000, "{stats:?}");
    assert_eq!(stats.lost, 0, "{stats:?}");
    // Re-reads come only from an offset Redis forgot (stored after the
    // snapshot): bounded by what was read before the restart.
    assert!(sink.len() - 1000 < 500, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_log_gap_from_trimming_is_counted_and_skipped() {
    let server = RedisServer::start();
    let key = "llm-proxy-events";
    for i in 0..10 {
        list_push(&server, key, i);
    }
    server
        .command(&["SET", "llm-proxy-dispatcher:file:last_id", "2"])
        .unwrap();
    // Trimming drops the oldest (LogID 1..=6); 3..=6 were never delivered.
    server.command(&["LTRIM", key, "0", "3"]).unwrap();
    let sink = Collect::default();
    let running = start_list(&server, &sink, key);
    wait_for("the survivors", || sink.len() >= 4).await;
    let live = running.stats.clone();
    let stats = running.finish().await;
    assert_eq!(stats.lost, 4);
    let metrics = Metrics::new();
    metrics.add_discards(
        "redis",
        ComponentKind::Source,
        Arc::new(move || live.discards()),
    );
    let page = metrics.render();
    assert!(
        page.contains("\ndispatcher_component_discarded_events_total{component=\"redis\",component_kind=\"source\",reason=\"lost\"} 4\n"),
        "{page}"
    );
    assert_eq!(sink.unique(), (6..10).map(|i| format!("req-{i}")).collect());
    assert_eq!(
        server
            .command(&["GET", "llm-proxy-dispatcher:file:last_id"])
            .unwrap(),
        "10"
    );
}
