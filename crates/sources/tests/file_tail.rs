//! The file tail source against real files: checkpoints, restarts, rotation,
//! truncation, partial lines. A stand-in engine consumes the intake queue and
//! confirms (or does not confirm) every line.

use std::io::Write;
use std::time::Duration;
use switchyard_core::Payload;
use switchyard_engine::intake;
use switchyard_sources::file_tail::{ReadFrom, TailSource};

mod tail_run;

use tail_run::*;

#[test]
fn thousands_of_lines_in_several_files_then_restart_reads_only_new_ones() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let mut expected = Vec::new();
    for f in 0..3 {
        let lines: Vec<String> = (0..2000).map(|i| format!("f{f}-{i:05}")).collect();
        expected.extend(lines.clone());
        append(&dir.path().join(format!("app{f}.log")), lines);
    }
    let run = start(&rt, config(dir.path(), "app*.log"), true);
    run.wait_for(6000);
    let first = run.stop(&rt);
    assert_eq!(sorted(first.clone()), sorted(expected), "every line once");
    // Lines of one file arrive in file order.
    let f1: Vec<&String> = first.iter().filter(|l| l.starts_with("f1-")).collect();
    assert!(f1.windows(2).all(|w| w[0] < w[1]));

    let mut new = Vec::new();
    for f in 0..3 {
        let lines: Vec<String> = (0..100).map(|i| format!("g{f}-{i:05}")).collect();
        new.extend(lines.clone());
        append(&dir.path().join(format!("app{f}.log")), lines);
    }
    let run = start(&rt, config(dir.path(), "app*.log"), true);
    run.wait_for(300);
    std::thread::sleep(Duration::from_millis(200)); // room for duplicates to show
    assert_eq!(
        sorted(run.stop(&rt)),
        sorted(new),
        "only the new lines, once"
    );
}

#[test]
fn lines_never_confirmed_are_read_again_after_restart() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let lines: Vec<String> = (0..500).map(|i| format!("l{i:04}")).collect();
    append(&dir.path().join("a.log"), lines.clone());
    let mut cfg = config(dir.path(), "a.log");
    cfg.drain_timeout = Duration::from_millis(200);
    let run = start(&rt, cfg.clone(), false);
    run.wait_for(500);
    run.stop(&rt);
    let run = start(&rt, cfg, true);
    run.wait_for(500);
    assert_eq!(sorted(run.stop(&rt)), lines);
}

#[test]
fn rotation_by_rename_then_by_copy_truncate_loses_nothing() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    append(&log, (0..10).map(|i| format!("a{i}")));
    let run = start(&rt, config(dir.path(), "app.log"), true);
    run.wait_for(10);

    // Rename rotation; the writer still finishes its last lines in the old file.
    let rotated = dir.path().join("app.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    append(&rotated, ["a10".to_string(), "a11".to_string()]);
    append(&log, (0..5).map(|i| format!("b{i}")));
    run.wait_for(17);

    // Copy-truncate rotation: the file shrinks to nothing, then grows again.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(&log, ["c0".to_string()]);
    run.wait_for(18);
    let got = run.stop(&rt);
    let mut expected: Vec<String> = (0..12).map(|i| format!("a{i}")).collect();
    expected.extend((0..5).map(|i| format!("b{i}")));
    expected.push("c0".into());
    assert_eq!(sorted(got), sorted(expected));
}

#[test]
fn a_partial_line_waits_for_its_newline_then_for_the_timeout() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("p.log");
    let mut cfg = config(dir.path(), "p.log");
    cfg.partial_line_timeout = Duration::from_millis(1500);
    let mut f = std::fs::File::create(&log).unwrap();
    let run = start(&rt, cfg, true);
    f.write_all(b"first\nsec").unwrap();
    run.wait_for(1);
    f.write_all(b"ond\nthird-no-newline").unwrap();
    let got = run.wait_for(3);
    assert_eq!(got, ["first", "second", "third-no-newline"]);
    assert_eq!(run.stop(&rt).len(), 3);
}

#[test]
fn tail_mode_skips_what_was_there_and_json_lines_become_records() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("j.log");
    append(&log, ["old line".to_string()]);
    let mut cfg = config(dir.path(), "j.log");
    cfg.read_from = ReadFrom::Tail;
    cfg.parse_json = true;
    let (tx, mut rx) = intake(100);
    let source = TailSource::spawn(cfg, tx, rt.handle().clone()).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    append(
        &log,
        [
            r#"{"msg":"structured","level":"warn","user":7}"#.to_string(),
            "{not json".to_string(),
        ],
    );
    let chunk = rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(20), async {
            let mut all = Vec::new();
            while all.len() < 2 {
                all.extend(rx.recv().await.unwrap());
            }
            all
        })
        .await
        .unwrap()
    });
    let recs: Vec<_> = chunk
        .iter()
        .map(|e| match &e.payload {
            Payload::Log(r) => r.clone(),
            _ => panic!("a log record"),
        })
        .collect();
    assert_eq!(recs[0].message.as_deref(), Some("structured"));
    assert_eq!(recs[0].level.as_deref(), Some("warn"));
    assert_eq!(recs[0].fields.get("user").unwrap().get(), "7");
    assert_eq!(recs[0].source_type, Some("file"));
    assert_eq!(recs[1].message.as_deref(), Some("{not json"));
    assert_eq!(
        source
            .counters()
            .json_errors
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    drop(chunk);
    source.stop();
}

#[test]
fn bad_settings_are_refused_with_the_key() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let (tx, _rx) = intake(10);
    let mut cfg = config(dir.path(), "x.log");
    cfg.include = vec!["[".into()];
    let err = TailSource::spawn(cfg, tx.clone(), rt.handle().clone())
        .err()
        .unwrap();
    assert!(err.contains("include") && err.contains('['), "{err}");
    let mut cfg = config(dir.path(), "x.log");
    cfg.chunk_lines = 0;
    let err = TailSource::spawn(cfg, tx, rt.handle().clone())
        .err()
        .unwrap();
    assert!(err.contains("chunk_lines"), "{err}");
}

#[test]
fn a_renamed_file_still_matched_keeps_its_position_under_the_new_name() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("svc.log");
    append(&log, (0..100).map(|i| format!("a{i:03}")));
    let run = start(&rt, config(dir.path(), "svc.log*"), true);
    run.wait_for(100);
    std::fs::rename(&log, dir.path().join("svc.log.1")).unwrap();
    append(&dir.path().join("svc.log.1"), ["a100".to_string()]);
    append(&log, ["b000".to_string()]);
    run.wait_for(102);
    std::thread::sleep(Duration::from_millis(200)); // room for duplicates to show
    let got = run.stop(&rt);
    let mut expected: Vec<String> = (0..=100).map(|i| format!("a{i:03}")).collect();
    expected.push("b000".into());
    assert_eq!(sorted(got), expected);
}
