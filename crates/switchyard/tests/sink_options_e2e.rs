//! Sink options from flags and from a pipeline file are read into the same
//! typed config: an unknown key is refused, named where it was written,
//! before anything starts.

mod common;

use common::{dispatcher_command, free_port, run_command};
use std::process::{Command, Output};

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn an_unknown_sink_option_flag_stops_the_dispatcher_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = dispatcher_command(free_port())
        .current_dir(dir.path())
        .args(["--service", "file", "--no-dlq"])
        .args(["--sink-option", "colour=red"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("cannot start service `file`: --sink-option colour: unknown option; expected one of `endpoint`, `sync`, `path`"),
        "{err}"
    );

    // A bad value says the key and what is expected.
    let out = dispatcher_command(free_port())
        .current_dir(dir.path())
        .args([
            "--service",
            "loki",
            "--endpoint",
            "http://127.0.0.1:9",
            "--no-dlq",
        ])
        .args(["--sink-option", "batch-max-events=many"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains(
            "--sink-option batch-max-events: expected a whole number greater than 0, not `many`"
        ),
        "{err}"
    );
}

#[test]
fn an_unknown_yaml_option_is_refused_at_its_line_by_validate_and_run() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("p.yaml");
    std::fs::write(
        &config,
        "sources:\n  in: {type: udp, address: '127.0.0.1:1'}\nsinks:\n  out:\n    type: file\n    inputs: [in]\n    options:\n      endpoint: out.jsonl\n      colour: red\n",
    )
    .unwrap();
    let file = config.display().to_string();
    let want = format!("{file}: line 9: sinks.out.options.colour: unknown option; expected one of `endpoint`, `sync`, `path`");
    let validate = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["validate", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let run = run_command(&config).output().unwrap();
    for out in [validate, run] {
        assert!(!out.status.success());
        let err = stderr(&out);
        assert!(err.lines().any(|l| l.starts_with(&want)), "{err}");
    }
    assert!(!dir.path().join("out.jsonl").exists(), "nothing started");
}

#[test]
fn native_yaml_values_and_nested_options_validate() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("p.yaml");
    std::fs::write(
        &config,
        "sources:\n  in: {type: udp, address: '127.0.0.1:1'}\nsinks:\n  out:\n    type: file\n    inputs: [in]\n    options:\n      path: '{app}.log'\n      sync: false\n      max_open_files: 8\n      rotate: {max_bytes: 1048576, interval: 1h}\n      retention.max_files: 3\n  loki:\n    type: loki\n    inputs: [in]\n    options:\n      endpoint: http://127.0.0.1:3100\n      labels: {app: '{app}', env: prod}\n      auth: {user: 123, password: pw}\n      batch-max-events: 10\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["validate", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));

    // A bad nested value is placed at its own line.
    std::fs::write(
        &config,
        "sources:\n  in: {type: udp, address: '127.0.0.1:1'}\nsinks:\n  out:\n    type: file\n    inputs: [in]\n    options:\n      endpoint: out.jsonl\n      rotate:\n        max_bytes: 0\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["validate", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(
        err.contains("line 10: sinks.out.options.rotate.max_bytes: expected a size above 0 such as 100MiB, not `0`"),
        "{err}"
    );
}
