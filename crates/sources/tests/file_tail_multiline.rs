//! Multiline joining in the file tail against real files: stack traces and
//! tracebacks become one event each, the last event waits for the timeout,
//! and a restart in the middle of an event neither loses nor repeats it.

mod tail_run;

use std::io::Write;
use std::time::Duration;
use switchyard_engine::metrics::{ComponentKind, Metrics};
use switchyard_sources::file_tail::MultilineConfig;
use tail_run::*;

const JAVA: &str = "\
2026-11-30 10:00:00 INFO  started in 2.1 s
2026-11-30 10:00:01 ERROR request failed
java.lang.IllegalStateException: no route
\tat com.example.Router.route(Router.java:42)
\tat com.example.Server.handle(Server.java:17)
Caused by: java.io.IOException: closed
\tat com.example.Conn.read(Conn.java:9)
\t... 2 more
2026-11-30 10:00:02 INFO  request ok
";

const PYTHON: &str = "\
[2026-11-30 10:00:00] INFO worker up
[2026-11-30 10:00:01] ERROR job 7 failed
Traceback (most recent call last):
  File \"worker.py\", line 12, in run
    result = job()
  File \"jobs.py\", line 3, in job
    return 1 / 0
ZeroDivisionError: division by zero
[2026-11-30 10:00:02] INFO job 8 done
";

fn multiline(start: &str) -> Option<MultilineConfig> {
    Some(MultilineConfig::new(start))
}

#[test]
fn java_stack_traces_become_one_event_each() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("app.log"), JAVA.replace('\n', "\r\n")).unwrap();
    let mut cfg = config(dir.path(), "app.log");
    cfg.multiline = multiline(r"^\d{4}-\d{2}-\d{2} ");
    cfg.partial_line_timeout = Duration::from_millis(200);
    let run = start(&rt, cfg, true);
    let got = run.wait_for(3);
    assert_eq!(
        got,
        [
            "2026-11-30 10:00:00 INFO  started in 2.1 s",
            "2026-11-30 10:00:01 ERROR request failed\njava.lang.IllegalStateException: no route\n\tat com.example.Router.route(Router.java:42)\n\tat com.example.Server.handle(Server.java:17)\nCaused by: java.io.IOException: closed\n\tat com.example.Conn.read(Conn.java:9)\n\t... 2 more",
            "2026-11-30 10:00:02 INFO  request ok",
        ]
    );
    assert_eq!(run.stop(&rt).len(), 3);
}

#[test]
fn python_tracebacks_become_one_event_each() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("worker.log");
    let mut cfg = config(dir.path(), "worker.log");
    cfg.multiline = multiline(r"^\[");
    cfg.partial_line_timeout = Duration::from_millis(200);
    let run = start(&rt, cfg, true);
    // Written in pieces, cut mid-line, so the event spans several reads.
    let mut f = std::fs::File::create(&log).unwrap();
    let (a, b) = PYTHON.split_at(PYTHON.find("in job").unwrap());
    f.write_all(a.as_bytes()).unwrap();
    run.wait_for(1);
    f.write_all(b.as_bytes()).unwrap();
    let got = run.wait_for(3);
    assert_eq!(got[0], "[2026-11-30 10:00:00] INFO worker up");
    assert!(got[1].starts_with("[2026-11-30 10:00:01] ERROR job 7 failed\nTraceback"));
    assert!(got[1].ends_with("    return 1 / 0\nZeroDivisionError: division by zero"));
    assert_eq!(got[1].lines().count(), 7);
    assert_eq!(got[2], "[2026-11-30 10:00:02] INFO job 8 done");
    assert_eq!(run.stop(&rt).len(), 3);
}

#[test]
fn a_start_line_at_the_end_waits_for_its_continuations_then_the_timeout() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("e.log");
    let mut cfg = config(dir.path(), "e.log");
    cfg.multiline = multiline("^E ");
    // Long enough that the second write joins the waiting event.
    cfg.partial_line_timeout = Duration::from_secs(2);
    let mut f = std::fs::File::create(&log).unwrap();
    f.write_all(b"E one\nE two\n").unwrap();
    let run = start(&rt, cfg, true);
    assert_eq!(run.wait_for(1), ["E one"]);
    f.write_all(b"  detail\n  last detail, no newline").unwrap();
    let got = run.wait_for(2);
    assert_eq!(got, ["E one", "E two\n  detail\n  last detail, no newline"]);
    assert_eq!(run.stop(&rt).len(), 2);
}

#[test]
fn events_over_max_lines_are_cut_and_counted() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let mut body = String::from("S start\n");
    for i in 0..9 {
        body.push_str(&format!(" c{i}\n"));
    }
    body.push_str("S next\n");
    std::fs::write(dir.path().join("c.log"), body).unwrap();
    let mut cfg = config(dir.path(), "c.log");
    let mut ml = MultilineConfig::new("^S ");
    ml.max_lines = 4;
    cfg.multiline = Some(ml);
    cfg.partial_line_timeout = Duration::from_millis(200);
    let run = start(&rt, cfg, true);
    let got = run.wait_for(4);
    assert_eq!(
        got,
        [
            "S start\n c0\n c1\n c2",
            " c3\n c4\n c5\n c6",
            " c7\n c8",
            "S next"
        ]
    );
    let counters = run.source.counters();
    assert_eq!(
        counters
            .multiline_cut
            .load(std::sync::atomic::Ordering::Relaxed),
        2
    );
    let metrics = Metrics::new();
    metrics.add_discards(
        "app_logs",
        ComponentKind::Source,
        std::sync::Arc::new(move || counters.discards()),
    );
    let page = metrics.render();
    assert!(
        page.contains("\ndispatcher_component_discarded_events_total{component=\"app_logs\",component_kind=\"source\",reason=\"multiline_cut\"} 2\n"),
        "{page}"
    );
    run.stop(&rt);
}

#[test]
fn a_restart_inside_an_event_neither_loses_nor_repeats_it() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("r.log");
    let mut cfg = config(dir.path(), "r.log");
    cfg.multiline = multiline("^S");
    // The open event must not time out during the first run.
    cfg.partial_line_timeout = Duration::from_secs(600);
    std::fs::write(&log, "S1\n a\nS2\n b\n").unwrap();
    let run = start(&rt, cfg.clone(), true);
    assert_eq!(run.wait_for(1), ["S1\n a"]);
    // Stopped while `S2` is still open: its start is where the checkpoint stays.
    let first = run.stop(&rt);
    assert_eq!(first, ["S1\n a"]);

    append(&log, [" c".to_string(), "S3".to_string()]);
    cfg.partial_line_timeout = Duration::from_millis(200);
    let run = start(&rt, cfg, true);
    let got = run.wait_for(2);
    assert_eq!(got, ["S2\n b\n c", "S3"]);
    assert_eq!(run.stop(&rt).len(), 2);
}

#[test]
fn bad_multiline_settings_are_refused_with_the_key() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), "x.log");
    cfg.multiline = multiline("(unclosed");
    let (tx, _rx) = switchyard_engine::intake(10);
    let err = switchyard_sources::file_tail::TailSource::spawn(cfg, tx, rt.handle().clone())
        .err()
        .unwrap();
    assert!(err.contains("multiline.start"), "{err}");
}
