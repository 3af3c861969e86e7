//! The file sink's full form, black-box: rotation, retention, compression,
//! idle files, path templates and the attempts to escape the base directory.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use switchyard_core::{Event, LogRecord, Sink, SinkConfig, SinkErrorKind};
use switchyard_sinks::file::clock::Clock;
use switchyard_sinks::file::options::{FileConfig, FileSettings};
use switchyard_sinks::file::FileSink;
use time::macros::datetime;
use time::OffsetDateTime;

/// A clock moved by the test; each reading also moves it by `step`, so
/// rotations in one test get distinct stamps.
struct ManualClock {
    now: Mutex<OffsetDateTime>,
    step: Duration,
}

impl ManualClock {
    fn new(step: Duration) -> Arc<Self> {
        Arc::new(Self {
            now: Mutex::new(datetime!(2026-11-30 14:00 UTC)),
            step,
        })
    }
    fn advance(&self, by: Duration) {
        *self.now.lock().unwrap() += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        let mut now = self.now.lock().unwrap();
        let t = *now;
        *now += self.step;
        t
    }
}

fn options(base: &Path, pairs: &[(&str, &str)]) -> FileSettings {
    let mut cfg: SinkConfig = pairs.iter().copied().collect();
    cfg.insert("base_dir".into(), base.display().to_string());
    settings(&cfg)
}

fn settings(cfg: &SinkConfig) -> FileSettings {
    cfg.read::<FileConfig>()
        .and_then(FileConfig::settings)
        .unwrap()
}

fn build(cfg: &SinkConfig) -> Result<Box<dyn Sink>, switchyard_core::BuildError> {
    switchyard_sinks::builtin().build("file", cfg)
}

fn sink(base: &Path, pairs: &[(&str, &str)], clock: Arc<ManualClock>) -> FileSink {
    FileSink::with_clock(options(base, pairs), clock).unwrap()
}

fn record(message: &str, labels: &[(&str, &str)]) -> Event {
    let mut r = LogRecord::new(message);
    for (k, v) in labels {
        r.labels.insert(k.to_string(), v.to_string());
    }
    r.into()
}

fn batch(from: usize, n: usize) -> Vec<Event> {
    (from..from + n)
        .map(|i| record(&format!("m{i:04}"), &[]))
        .collect()
}

/// Messages of a file, whatever its compression.
fn messages(path: &Path) -> Vec<String> {
    let raw = std::fs::read(path).unwrap();
    let mut text = String::new();
    match path.extension().and_then(|e| e.to_str()) {
        Some("gz") => {
            flate2::read::GzDecoder::new(&raw[..])
                .read_to_string(&mut text)
                .unwrap();
        }
        Some("zst") => {
            zstd::stream::read::Decoder::new(&raw[..])
                .unwrap()
                .read_to_string(&mut text)
                .unwrap();
        }
        _ => text = String::from_utf8(raw).unwrap(),
    }
    text.lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["message"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

/// Rotated files of `dir/app.log`, oldest first.
fn rotated(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("app.log.")
        })
        .collect();
    files.sort();
    files
}

/// Every message, rotated files first, then the live file.
fn all_messages(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = rotated(dir).iter().flat_map(|p| messages(p)).collect();
    out.extend(messages(&dir.join("app.log")));
    out
}

fn expected(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("m{i:04}")).collect()
}

#[tokio::test]
async fn rotation_by_size_keeps_every_file_under_the_limit_and_every_line() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(Duration::from_millis(1));
    let s = sink(
        dir.path(),
        &[("path", "app.log"), ("rotate.max_bytes", "1KiB")],
        clock,
    );
    for b in 0..20 {
        s.send(&batch(b * 5, 5)).await.unwrap();
    }
    s.close().await.unwrap();
    let files = rotated(dir.path());
    assert!(files.len() >= 5, "{files:?}");
    for f in files.iter().chain([&dir.path().join("app.log")]) {
        assert!(std::fs::metadata(f).unwrap().len() <= 1024, "{f:?}");
    }
    assert_eq!(all_messages(dir.path()), expected(100));
}

#[tokio::test]
async fn rotation_by_time_starts_a_new_file_each_interval() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(Duration::ZERO);
    let s = sink(
        dir.path(),
        &[("path", "app.log"), ("rotate.interval", "1h")],
        clock.clone(),
    );
    s.send(&batch(0, 3)).await.unwrap();
    s.send(&batch(3, 3)).await.unwrap();
    assert!(rotated(dir.path()).is_empty(), "same hour, same file");
    clock.advance(Duration::from_secs(3600));
    s.send(&batch(6, 2)).await.unwrap();
    s.close().await.unwrap();
    let files = rotated(dir.path());
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0]
        .to_string_lossy()
        .ends_with("app.log.20261130T150000.000Z"));
    assert_eq!(messages(&files[0]), expected(6));
    assert_eq!(messages(&dir.path().join("app.log")), ["m0006", "m0007"]);
}

#[tokio::test]
async fn retention_keeps_the_newest_max_files() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(Duration::from_millis(1));
    let s = sink(
        dir.path(),
        &[
            ("path", "app.log"),
            ("rotate.max_bytes", "200"),
            ("retention.max_files", "2"),
        ],
        clock,
    );
    for i in 0..12 {
        s.send(&batch(i * 2, 2)).await.unwrap();
    }
    s.close().await.unwrap();
    let files = rotated(dir.path());
    assert_eq!(files.len(), 2, "{files:?}");
    // What is left is the end of the stream, contiguous.
    let left = all_messages(dir.path());
    assert_eq!(left, expected(24)[24 - left.len()..]);
}

#[tokio::test]
async fn retention_deletes_files_older_than_max_age() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(Duration::ZERO);
    let s = sink(
        dir.path(),
        &[
            ("path", "app.log"),
            ("rotate.interval", "1h"),
            ("retention.max_age", "2h"),
            ("idle_timeout", "1000h"),
        ],
        clock.clone(),
    );
    for hour in 0..6 {
        s.send(&batch(hour, 1)).await.unwrap();
        clock.advance(Duration::from_secs(3600));
    }
    s.send(&batch(6, 1)).await.unwrap();
    s.close().await.unwrap();
    // Rotated at 15:00 … 20:00; at 20:00 those older than 18:00 go.
    let names: Vec<String> = rotated(dir.path())
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "app.log.20261130T180000.000Z",
            "app.log.20261130T190000.000Z",
            "app.log.20261130T200000.000Z"
        ]
    );
}

async fn compressed_round_trip(method: &str, suffix: &str) {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(Duration::from_millis(1));
    let s = sink(
        dir.path(),
        &[
            ("path", "app.log"),
            ("rotate.max_bytes", "512"),
            ("compress", method),
        ],
        clock,
    );
    for b in 0..10 {
        s.send(&batch(b * 4, 4)).await.unwrap();
    }
    // Closing waits for the compression of every rotated file.
    s.close().await.unwrap();
    let files = rotated(dir.path());
    assert!(files.len() >= 3, "{files:?}");
    for f in &files {
        assert!(
            f.to_string_lossy().ends_with(suffix),
            "{f:?} not compressed"
        );
    }
    assert_eq!(all_messages(dir.path()), expected(40));
}

#[tokio::test]
async fn gzip_rotated_files_decode_to_the_lines_written() {
    compressed_round_trip("gzip", ".gz").await;
}

#[tokio::test]
async fn zstd_rotated_files_decode_to_the_lines_written() {
    compressed_round_trip("zstd", ".zst").await;
}

#[tokio::test]
async fn templates_split_events_into_files_by_label_and_date() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(Duration::ZERO);
    let s = sink(
        dir.path(),
        &[("path", "{service}/{date}/{hour}.log")],
        clock,
    );
    let events = vec![
        record("a1", &[("service", "api")]),
        record("w1", &[("service", "web")]),
        record("a2", &[("service", "api")]),
        record("n1", &[]),
    ];
    s.send(&events).await.unwrap();
    s.close().await.unwrap();
    let file = |svc: &str| dir.path().join(svc).join("2026-11-30/14.log");
    assert_eq!(messages(&file("api")), ["a1", "a2"]);
    assert_eq!(messages(&file("web")), ["w1"]);
    assert_eq!(messages(&file("_missing")), ["n1"]);
}

#[tokio::test]
async fn text_encoding_writes_the_message_alone() {
    let dir = tempfile::tempdir().unwrap();
    let s = sink(
        dir.path(),
        &[("path", "app.txt"), ("encoding", "text")],
        ManualClock::new(Duration::ZERO),
    );
    s.send(&[record("hello", &[]), record("two\nlines", &[])])
        .await
        .unwrap();
    s.close().await.unwrap();
    let text = std::fs::read_to_string(dir.path().join("app.txt")).unwrap();
    assert_eq!(text, "hello\ntwo\\nlines\n");
}

#[tokio::test]
async fn rotated_files_age_out_even_when_nothing_rotates_again() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(Duration::ZERO);
    let s = sink(
        dir.path(),
        &[
            ("path", "app.log"),
            ("rotate.max_bytes", "100"),
            ("retention.max_age", "4s"),
            ("idle_timeout", "1000h"),
        ],
        clock.clone(),
    );
    for i in 0..5 {
        s.send(&batch(i, 2)).await.unwrap();
    }
    assert!(!rotated(dir.path()).is_empty());
    // No more writes; the sink's clock moves past max_age and the sweep
    // (every second here) removes the rotated files.
    clock.advance(Duration::from_secs(60));
    let path = dir.path().to_path_buf();
    eventually("the rotated files aged out", || rotated(&path).is_empty()).await;
    s.close().await.unwrap();
}

/// Wait (bounded) until `cond` holds.
async fn eventually(what: &str, cond: impl Fn() -> bool) {
    for _ in 0..1000 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting until {what}");
}

#[tokio::test]
async fn idle_files_are_closed_and_reopened_on_demand() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = options(
        dir.path(),
        &[("path", "{app}.log"), ("idle_timeout", "50ms")],
    );
    cfg.max_open_files = 8;
    let s =
        FileSink::with_clock(cfg, Arc::new(switchyard_sinks::file::clock::SystemClock)).unwrap();
    let events: Vec<Event> = ["a", "b", "c"]
        .iter()
        .map(|app| record(app, &[("app", app)]))
        .collect();
    s.send(&events).await.unwrap();
    eventually("idle files are closed", || s.open_files() == 0).await;
    s.send(&events[..1]).await.unwrap();
    s.close().await.unwrap();
    assert_eq!(messages(&dir.path().join("a.log")), ["a", "a"]);
}

#[tokio::test]
async fn open_files_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let s = sink(
        dir.path(),
        &[("path", "{app}.log"), ("max_open_files", "2")],
        ManualClock::new(Duration::from_millis(1)),
    );
    let events: Vec<Event> = (0..5)
        .map(|i| record(&format!("e{i}"), &[("app", &format!("app{i}"))]))
        .collect();
    s.send(&events).await.unwrap();
    s.send(&events).await.unwrap();
    assert_eq!(s.open_files(), 2);
    s.close().await.unwrap();
    for i in 0..5 {
        let path = dir.path().join(format!("app{i}.log"));
        assert_eq!(messages(&path), [format!("e{i}"), format!("e{i}")]);
    }
}

#[test]
fn templates_that_escape_the_base_directory_are_refused_at_start() {
    let table = [
        ("../outside.log", "`..`"),
        ("logs/../../outside.log", "`..`"),
        ("{app}/../../x.log", "`..`"),
        ("/etc/passwd", "absolute"),
        ("a\0b.log", "NUL"),
        ("logs/", "does not name a file"),
        ("{app", "without"),
    ];
    for (template, reason) in table {
        let mut cfg = SinkConfig::new();
        cfg.insert("path".into(), template.into());
        let err = build(&cfg).err().unwrap().to_string();
        assert!(
            err.starts_with("--sink-option path: "),
            "{template:?}: {err}"
        );
        assert!(err.contains(reason), "{template:?}: {err}");
    }
}

#[tokio::test]
async fn label_values_cannot_leave_the_base_directory() {
    let root = tempfile::tempdir().unwrap();
    let base = root.path().join("base");
    let s = sink(
        &base,
        &[("path", "{app}/{env}.log")],
        ManualClock::new(Duration::ZERO),
    );
    let attempts = [
        ("../../etc", "x"),
        ("..", ".."),
        ("/tmp", "passwd"),
        ("a/../../b", "c\0d"),
        (".", "."),
    ];
    let events: Vec<Event> = attempts
        .iter()
        .map(|(app, env)| record("x", &[("app", app), ("env", env)]))
        .collect();
    s.send(&events).await.unwrap();
    s.close().await.unwrap();
    // Nothing was created beside the base directory.
    let beside: Vec<_> = std::fs::read_dir(root.path()).unwrap().collect();
    assert_eq!(beside.len(), 1);
    let mut names: Vec<String> = Vec::new();
    for dir in std::fs::read_dir(&base).unwrap() {
        let dir = dir.unwrap().path();
        for f in std::fs::read_dir(&dir).unwrap() {
            let f = f.unwrap().path();
            names.push(f.strip_prefix(&base).unwrap().display().to_string());
        }
    }
    names.sort();
    assert_eq!(
        names,
        [
            ".._.._etc/x.log",
            "_/_.log",
            "__/__.log",
            "_tmp/passwd.log",
            "a_.._.._b/c_d.log"
        ]
    );
}

#[tokio::test]
async fn a_symlink_out_of_the_base_directory_is_refused_per_event() {
    let root = tempfile::tempdir().unwrap();
    let base = root.path().join("base");
    let outside = root.path().join("outside");
    std::fs::create_dir_all(&base).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, base.join("link")).unwrap();
    let s = sink(
        &base,
        &[("path", "{app}/x.log")],
        ManualClock::new(Duration::ZERO),
    );
    let err = s
        .send(&[
            record("in", &[("app", "ok")]),
            record("out", &[("app", "link")]),
        ])
        .await
        .unwrap_err();
    s.close().await.unwrap();
    assert_eq!(err.kind, SinkErrorKind::Partial);
    assert_eq!(err.failed.len(), 1);
    assert_eq!(err.failed[0].index, 1);
    assert_eq!(err.failed[0].error.kind, SinkErrorKind::Permanent);
    assert!(
        err.failed[0].error.message.contains("symbolic link"),
        "{}",
        err.failed[0].error.message
    );
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
    assert_eq!(messages(&base.join("ok/x.log")), ["in"]);
}

/// A path whose directories go through a symbolic link out of the base
/// directory used to have those directories created outside before the
/// check refused the file.
#[tokio::test]
async fn no_directory_is_created_outside_the_base_through_a_symlink() {
    let root = tempfile::tempdir().unwrap();
    let base = root.path().join("base");
    let outside = root.path().join("outside");
    std::fs::create_dir_all(&base).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, base.join("link")).unwrap();
    // A link that stays inside the base is followed as before.
    std::fs::create_dir_all(base.join("real")).unwrap();
    std::os::unix::fs::symlink(base.join("real"), base.join("alias")).unwrap();
    let s = sink(
        &base,
        &[("path", "{app}/{team}/x.log")],
        ManualClock::new(Duration::ZERO),
    );
    let err = s
        .send(&[
            record("in", &[("app", "alias"), ("team", "core")]),
            record("out", &[("app", "link"), ("team", "made")]),
        ])
        .await
        .unwrap_err();
    s.close().await.unwrap();
    assert_eq!(err.failed.len(), 1);
    assert_eq!(err.failed[0].index, 1);
    assert_eq!(err.failed[0].error.kind, SinkErrorKind::Permanent);
    assert!(
        err.failed[0].error.message.contains("symbolic link"),
        "{}",
        err.failed[0].error.message
    );
    assert!(
        !outside.join("made").exists(),
        "a directory was made outside the base"
    );
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
    assert_eq!(messages(&base.join("real/core/x.log")), ["in"]);
}

/// Dropping synced pages from the page cache (`keep_cached`) happens between
/// batches of a file that keeps growing: every line must still be there, in
/// order, once far more than the kept window was written and dropped.
#[tokio::test]
async fn lines_survive_dropping_synced_pages_from_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");
    let mut cfg = SinkConfig::new();
    cfg.insert("endpoint".into(), path.display().to_string());
    cfg.insert("keep_cached".into(), "64KiB".into());
    let sink = build(&cfg).unwrap();
    let body = "y".repeat(2000);
    // 24 batches of 200 lines of ~2 KB: ~10 MB, two drops of 4 MiB or more.
    for b in 0..24 {
        let events: Vec<Event> = (0..200)
            .map(|i| record(&format!("{:05} {body}", b * 200 + i), &[]))
            .collect();
        sink.send(&events).await.unwrap();
    }
    sink.close().await.unwrap();
    let seen: Vec<String> = messages(&path)
        .into_iter()
        .map(|m| m[..5].to_string())
        .collect();
    let expected: Vec<String> = (0..4800).map(|i| format!("{i:05}")).collect();
    assert_eq!(seen, expected);
}

/// `direct=true`: whole blocks bypass the page cache and the partial last
/// block is rewritten by the next batch. Batches of every size, rotation
/// (a fresh file each time) and a second sink appending to the file the
/// first one left must all read back line for line, in order.
#[tokio::test]
async fn direct_writes_keep_every_line_across_rotation_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(Duration::from_millis(1));
    let pairs = [
        ("path", "app.log"),
        ("direct", "true"),
        ("rotate.max_bytes", "16KiB"),
    ];
    let s = sink(dir.path(), &pairs, clock.clone());
    let mut sent = 0;
    for b in 0..60 {
        let n = 1 + (b * 7) % 23;
        s.send(&batch(sent, n)).await.unwrap();
        sent += n;
    }
    s.close().await.unwrap();
    assert!(!rotated(dir.path()).is_empty());
    let live = std::fs::metadata(dir.path().join("app.log")).unwrap().len();
    assert_ne!(live % 4096, 0, "the live file should end mid-block");
    let s = sink(dir.path(), &pairs, clock);
    s.send(&batch(sent, 5)).await.unwrap();
    s.close().await.unwrap();
    assert_eq!(all_messages(dir.path()), expected(sent + 5));
}

/// With several batches queued at once (as the engine sends them), each is
/// laid out for where it will land, so no direct append copies its batch.
#[tokio::test]
async fn direct_batches_in_flight_are_written_from_their_own_buffers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");
    let cfg: SinkConfig = [
        ("endpoint".to_string(), path.display().to_string()),
        ("direct".to_string(), "true".to_string()),
    ]
    .into_iter()
    .collect();
    let clock = ManualClock::new(Duration::from_millis(1));
    let s = FileSink::with_clock(settings(&cfg), clock).unwrap();
    let mut sent = 0;
    for round in 0..25 {
        let sizes: Vec<usize> = (0..4).map(|k| 1 + (round * 4 + k) * 13 % 97).collect();
        let mut batches = Vec::new();
        for n in &sizes {
            batches.push(batch(sent, *n));
            sent += n;
        }
        let sends = batches.iter().map(|b| s.send(b));
        for result in futures_util::future::join_all(sends).await {
            result.unwrap();
        }
    }
    s.close().await.unwrap();
    assert_eq!(messages(&path), expected(sent));
    assert_eq!(s.copied_appends(), 0, "every batch laid out for its place");
}

#[test]
fn direct_must_be_true_or_false() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = SinkConfig::new();
    cfg.insert(
        "endpoint".into(),
        dir.path().join("x").display().to_string(),
    );
    cfg.insert("direct".into(), "yes".into());
    let err = build(&cfg).err().unwrap().to_string();
    assert_eq!(
        err,
        "--sink-option direct: expected true or false, not `yes`"
    );
}
