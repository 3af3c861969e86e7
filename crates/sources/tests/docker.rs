//! The container logs source against a fake Engine API served on a unix
//! socket in a temporary directory: multiplexed frames split across chunk
//! boundaries, a TTY container, a container that appears later, a restart
//! that resumes after the last delivered line, an Engine that comes late.

use axum::body::Body;
use axum::extract::{Path as UrlPath, State};
use axum::http::Uri;
use axum::routing::get;
use axum::{Json, Router};
use futures_util::StreamExt;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use switchyard_core::{Event, Fate, Payload};
use switchyard_engine::{intake, IntakeReceiver};
use switchyard_sources::docker::{DockerConfig, DockerSource};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

#[derive(Clone)]
struct Fake {
    id: &'static str,
    name: &'static str,
    tty: bool,
    compose: Option<&'static str>,
    /// (Docker timestamp, stream type 1/2, text)
    lines: Vec<(String, u8, String)>,
}

#[derive(Default)]
struct Engine {
    containers: Vec<Fake>,
    /// Every `since` asked for, per container id.
    since: BTreeMap<String, Vec<String>>,
    /// End each log stream after its lines, as for a container that stopped.
    end_streams: bool,
}

type Shared = Arc<Mutex<Engine>>;

fn ts(second: u32, nanos: u32) -> String {
    format!("2026-11-30T10:00:{second:02}.{nanos:09}Z")
}

fn nanos(rfc3339: &str) -> i128 {
    OffsetDateTime::parse(rfc3339, &Rfc3339)
        .unwrap()
        .unix_timestamp_nanos()
}

/// `since` as the Engine reads it: seconds with an optional fraction.
fn since_nanos(since: &str) -> i128 {
    let (s, f) = since.split_once('.').unwrap_or((since, "0"));
    let f = format!("{f:0<9}");
    s.parse::<i128>().unwrap() * 1_000_000_000 + f[..9].parse::<i128>().unwrap()
}

async fn list(State(e): State<Shared>) -> Json<Value> {
    let e = e.lock().unwrap();
    let list: Vec<Value> = e
        .containers
        .iter()
        .map(|c| {
            let labels = match c.compose {
                Some(s) => json!({"com.docker.compose.service": s, "other": "x"}),
                None => json!({}),
            };
            json!({"Id": c.id, "Names": [format!("/{}", c.name)], "Image": format!("{}:latest", c.name), "Labels": labels, "State": "running"})
        })
        .collect();
    Json(Value::Array(list))
}

async fn inspect(State(e): State<Shared>, UrlPath(id): UrlPath<String>) -> Json<Value> {
    let e = e.lock().unwrap();
    let c = e.containers.iter().find(|c| c.id == id).unwrap();
    Json(json!({"Id": c.id, "Config": {"Tty": c.tty, "Image": "ignored"}}))
}

/// The lines at or after `since`, framed unless TTY, cut into 5-byte chunks
/// so headers and payloads straddle chunk boundaries; then the stream stays
/// open as `follow=1` does.
async fn logs(State(e): State<Shared>, UrlPath(id): UrlPath<String>, uri: Uri) -> Body {
    let query = uri.query().unwrap_or_default();
    for want in ["follow=1", "stdout=1", "stderr=1", "timestamps=1"] {
        assert!(query.contains(want), "{query}");
    }
    let since = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("since="))
        .unwrap()
        .to_string();
    let mut e = e.lock().unwrap();
    e.since.entry(id.clone()).or_default().push(since.clone());
    let c = e.containers.iter().find(|c| c.id == id).unwrap();
    let mut bytes = Vec::new();
    for (t, kind, text) in &c.lines {
        if nanos(t) < since_nanos(&since) {
            continue;
        }
        let line = format!("{t} {text}\n");
        if c.tty {
            bytes.extend_from_slice(line.replace('\n', "\r\n").as_bytes());
        } else {
            bytes.extend_from_slice(&[*kind, 0, 0, 0]);
            bytes.extend_from_slice(&(line.len() as u32).to_be_bytes());
            bytes.extend_from_slice(line.as_bytes());
        }
    }
    let chunks: Vec<Result<bytes::Bytes, Infallible>> = bytes
        .chunks(5)
        .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
        .collect();
    let lines = futures_util::stream::iter(chunks);
    if e.end_streams {
        return Body::from_stream(lines);
    }
    Body::from_stream(lines.chain(futures_util::stream::pending()))
}

/// Serve the fake Engine at `socket` until the test ends.
fn serve(socket: &Path, engine: Shared) -> tokio::task::JoinHandle<()> {
    let app = Router::new()
        .route("/containers/json", get(list))
        .route("/containers/{id}/json", get(inspect))
        .route("/containers/{id}/logs", get(logs))
        .with_state(engine);
    let listener = tokio::net::UnixListener::bind(socket).unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    })
}

fn config(dir: &Path, socket: PathBuf) -> DockerConfig {
    let mut c = DockerConfig::new(socket, dir.join("state"));
    c.list_interval = Duration::from_millis(50);
    c.drain_timeout = Duration::from_secs(5);
    c
}

/// Take `n` events, confirming each as delivered.
async fn take(rx: &mut IntakeReceiver, n: usize) -> Vec<Event> {
    take_then(rx, n, true).await
}

/// Take `n` events; without `confirm` they are lost in flight (unresolved)
/// once dropped.
async fn take_then(rx: &mut IntakeReceiver, n: usize, confirm: bool) -> Vec<Event> {
    tokio::time::timeout(Duration::from_secs(20), async {
        let mut all = Vec::new();
        while all.len() < n {
            for mut e in rx.recv().await.expect("queue open") {
                if confirm {
                    e.resolve(Fate::Delivered);
                }
                all.push(e);
            }
        }
        all
    })
    .await
    .expect("events arrive")
}

fn describe(e: &Event) -> (String, String, String, String) {
    let Payload::Log(r) = &e.payload else {
        panic!("a log record")
    };
    (
        r.labels["container_name"].clone(),
        r.labels["stream"].clone(),
        r.timestamp_raw
            .as_deref()
            .unwrap()
            .trim_matches('"')
            .to_owned(),
        r.message.clone().unwrap(),
    )
}

fn web() -> Fake {
    Fake {
        id: "aaaa1111",
        name: "web",
        tty: false,
        compose: Some("frontend"),
        lines: vec![
            (ts(1, 1), 1, "GET / 200".into()),
            (ts(1, 2), 2, "warning: slow disk".into()),
            (ts(2, 500_000_000), 1, "GET /about 200".into()),
        ],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multiplexed_and_tty_containers_and_one_that_appears_later() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("docker.sock");
    let tty = Fake {
        id: "bbbb2222",
        name: "shell",
        tty: true,
        compose: None,
        lines: vec![(ts(3, 0), 1, "prompt$ ls".into())],
    };
    let engine: Shared = Arc::new(Mutex::new(Engine {
        containers: vec![web(), tty],
        ..Engine::default()
    }));
    let _server = serve(&socket, engine.clone());
    let (tx, mut rx) = intake(100);
    let source = DockerSource::start(config(dir.path(), socket), tx).unwrap();

    let mut got: Vec<_> = take(&mut rx, 4).await.iter().map(describe).collect();
    got.sort();
    let s = |a: &str, b: &str, c: String, d: &str| (a.to_string(), b.to_string(), c, d.to_string());
    assert_eq!(
        got,
        [
            s("shell", "stdout", ts(3, 0), "prompt$ ls"),
            s("web", "stderr", ts(1, 2), "warning: slow disk"),
            s("web", "stdout", ts(1, 1), "GET / 200"),
            s("web", "stdout", ts(2, 500_000_000), "GET /about 200"),
        ]
    );

    engine.lock().unwrap().containers.push(Fake {
        id: "cccc3333",
        name: "worker",
        tty: false,
        compose: Some("jobs"),
        lines: vec![(ts(4, 0), 1, "job done".into())],
    });
    let late = take(&mut rx, 1).await;
    let Payload::Log(r) = &late[0].payload else {
        panic!("a log record")
    };
    assert_eq!(r.message.as_deref(), Some("job done"));
    let labels: Vec<(&str, &str)> = r
        .labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        labels,
        [
            ("compose_service", "jobs"),
            ("container_id", "cccc3333"),
            ("container_name", "worker"),
            ("image", "worker:latest"),
            ("stream", "stdout"),
        ]
    );
    // Events still held are not confirmed yet: let them go before stopping.
    drop(late);
    let counters = source.counters();
    source.stop().await;
    assert_eq!(counters.lines.load(std::sync::atomic::Ordering::Relaxed), 5);
    assert_eq!(
        counters
            .containers_followed
            .load(std::sync::atomic::Ordering::Relaxed),
        3
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_resumes_after_the_last_delivered_line() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("docker.sock");
    let engine: Shared = Arc::new(Mutex::new(Engine {
        containers: vec![web()],
        ..Engine::default()
    }));
    let _server = serve(&socket, engine.clone());

    let (tx, mut rx) = intake(100);
    let source = DockerSource::start(config(dir.path(), socket.clone()), tx).unwrap();
    assert_eq!(take(&mut rx, 3).await.len(), 3);
    source.stop().await;

    engine.lock().unwrap().containers[0]
        .lines
        .push((ts(5, 0), 1, "after the restart".into()));
    let (tx, mut rx) = intake(100);
    let source = DockerSource::start(config(dir.path(), socket), tx).unwrap();
    let got = take(&mut rx, 1).await;
    assert_eq!(describe(&got[0]).3, "after the restart");
    drop(got);
    source.stop().await;
    // Nothing else came: the first run's lines were not asked for again.
    assert!(rx.recv().await.is_none(), "no more events");
    let since = engine.lock().unwrap().since["aaaa1111"].clone();
    assert_eq!(since[0], "0");
    // One nanosecond after the last delivered line, 10:00:02.5.
    let last = OffsetDateTime::parse(&ts(2, 500_000_000), &Rfc3339).unwrap();
    assert_eq!(
        since.last().unwrap(),
        &format!("{}.500000001", last.unix_timestamp())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_never_confirmed_are_asked_for_again_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("docker.sock");
    let engine: Shared = Arc::new(Mutex::new(Engine {
        containers: vec![web()],
        ..Engine::default()
    }));
    let _server = serve(&socket, engine.clone());
    let (tx, mut rx) = intake(100);
    let source = DockerSource::start(config(dir.path(), socket.clone()), tx).unwrap();
    drop(take_then(&mut rx, 3, false).await);
    source.stop().await;

    let (tx, mut rx) = intake(100);
    let source = DockerSource::start(config(dir.path(), socket), tx).unwrap();
    let again: Vec<_> = take(&mut rx, 3)
        .await
        .iter()
        .map(|e| describe(e).3)
        .collect();
    assert_eq!(again, ["GET / 200", "warning: slow disk", "GET /about 200"]);
    source.stop().await;
    assert_eq!(engine.lock().unwrap().since["aaaa1111"], ["0", "0"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_ends_is_followed_again_without_repeating_lines() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("docker.sock");
    let engine: Shared = Arc::new(Mutex::new(Engine {
        containers: vec![web()],
        end_streams: true,
        ..Engine::default()
    }));
    let _server = serve(&socket, engine.clone());
    let (tx, mut rx) = intake(100);
    let source = DockerSource::start(config(dir.path(), socket), tx).unwrap();
    drop(take(&mut rx, 3).await);
    // Wait until the container was followed again after its stream ended.
    let counters = source.counters();
    while counters
        .containers_followed
        .load(std::sync::atomic::Ordering::Relaxed)
        < 3
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    engine.lock().unwrap().containers[0]
        .lines
        .push((ts(6, 0), 2, "late line".into()));
    let got = take(&mut rx, 1).await;
    assert_eq!(describe(&got[0]).3, "late line");
    drop(got);
    source.stop().await;
    let mut rest = 0;
    while let Some(chunk) = rx.recv().await {
        rest += chunk.len();
    }
    assert_eq!(rest, 0, "no line was sent twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_that_comes_late_is_reached_by_retrying() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("docker.sock");
    let (tx, mut rx) = intake(100);
    let source = DockerSource::start(config(dir.path(), socket.clone()), tx).unwrap();
    let counters = source.counters();
    // Let it fail at least once.
    while counters.errors.load(std::sync::atomic::Ordering::Relaxed) == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let engine: Shared = Arc::new(Mutex::new(Engine {
        containers: vec![web()],
        ..Engine::default()
    }));
    let _server = serve(&socket, engine);
    assert_eq!(take(&mut rx, 3).await.len(), 3);
    source.stop().await;
}

#[test]
fn bad_settings_are_refused_with_the_key() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _guard = rt.enter();
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path(), dir.path().join("s.sock"));
    c.include = vec!["[".into()];
    let (tx, _rx) = intake(1);
    let err = DockerSource::start(c, tx).err().unwrap();
    assert!(err.contains("`include`"), "{err}");
}

/// The registry's `docker` type is the same follower: built from its typed
/// settings, started through the `Source` trait, its counters on `stats`
/// and its position written when it stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_registered_docker_type_follows_through_the_source_trait() {
    use switchyard_engine::source::SourceContext;
    use switchyard_engine::supervise::Health;
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("docker.sock");
    let engine: Shared = Arc::new(Mutex::new(Engine {
        containers: vec![web()],
        ..Engine::default()
    }));
    let _server = serve(&socket, engine.clone());
    let settings = json!({
        "socket": socket,
        "include": ["w*"],
        "state_dir": dir.path().join("state"),
        "list_interval": "50ms",
    });
    let registry = switchyard_sources::builtin();
    let source = registry.build("docker", settings.clone()).ok().unwrap();
    let (tx, mut rx) = intake(100);
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let cx = |output| SourceContext {
        name: "containers".into(),
        output,
        shutdown: shutdown.clone(),
        health: Health::new(),
        durable_sinks: false,
    };
    let running = source.start(cx(tx)).await.ok().unwrap();
    let got = take(&mut rx, 3).await;
    assert_eq!(got.len(), 3);
    drop(got);
    let stats = running.stats();
    let discards = running.discards().unwrap();
    let _ = stop.send(true);
    running.stop().await;
    assert_eq!(stats()["lines"], 3);
    assert_eq!(discards(), [("too_long", 0)]);

    // Started again, it resumes after the last delivered line.
    let (tx, _rx) = intake(100);
    let (_stop, shutdown) = tokio::sync::watch::channel(false);
    let again = registry.build("docker", settings).ok().unwrap();
    let running = again
        .start(SourceContext {
            name: "containers".into(),
            output: tx,
            shutdown,
            health: Health::new(),
            durable_sinks: false,
        })
        .await
        .ok()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while engine
        .lock()
        .unwrap()
        .since
        .get("aaaa1111")
        .map_or(0, Vec::len)
        < 2
    {
        assert!(std::time::Instant::now() < deadline, "no second follow");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let since = engine.lock().unwrap().since["aaaa1111"][1].clone();
    assert!(since_nanos(&since) > nanos(&ts(2, 500_000_000)), "{since}");
    running.stop().await;
}
