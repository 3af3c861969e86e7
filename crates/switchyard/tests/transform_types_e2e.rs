//! Every transform type from a pipeline file, through the transform
//! registry; `switchyard plugins` lists every kind of component.

use std::process::{Command, Output};

fn switchyard(args: &[&str], config: Option<&str>) -> (Output, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pipeline.yaml");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_switchyard"));
    cmd.args(args);
    if let Some(text) = config {
        std::fs::write(&path, text).unwrap();
        cmd.arg(&path);
    }
    (cmd.output().unwrap(), path.display().to_string())
}

const EVERY_TYPE: &str = "\
sources:
  in: {type: udp, address: '127.0.0.1:1'}
transforms:
  f:
    type: filter
    inputs: [in]
    condition: 'level == \"error\"'
  e:
    type: enrich
    inputs: [f]
    labels: {team: core}
    overwrite: true
  r:
    type: remap
    inputs: [e]
    ops:
      - rename: {msg: message}
      - parse: logfmt
  d:
    type: dedupe
    inputs: [r]
    fields: [message]
    window: 10s
  s:
    type: sample
    inputs: [d]
    rate: 2
    always_keep: 'level == \"fatal\"'
  l:
    type: llm
    inputs: [s]
    verbose: true
    redact_headers: [x-api-key]
sinks:
  out: {type: blackhole, inputs: [l]}
";

#[test]
fn a_pipeline_with_every_transform_type_validates() {
    let (out, _) = switchyard(&["validate", "--config"], Some(EVERY_TYPE));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn an_llm_transform_with_an_unknown_key_is_refused_at_its_line() {
    let text = EVERY_TYPE.replace(
        "    verbose: true\n",
        "    verbose: true\n    redact: [x-api-key]\n",
    );
    let (out, file) = switchyard(&["validate", "--config"], Some(&text));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.lines().collect::<Vec<_>>(),
        [
            format!("{file}: line 33: transforms.l.redact: unknown key; expected `verbose` or `redact_headers`"),
            format!("switchyard: error: `{file}` has 1 error(s); nothing was started"),
        ]
    );
}

#[test]
fn an_unknown_transform_type_lists_the_known_ones() {
    let text = EVERY_TYPE.replace("type: sample", "type: sampel");
    let (out, file) = switchyard(&["validate", "--config"], Some(&text));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with(&format!("{file}: line 25: transforms.s.type: unknown transform type `sampel`; expected one of filter, enrich, remap, dedupe, sample, llm")),
        "{stderr}"
    );
}

#[test]
fn plugins_lists_sources_transforms_and_sinks() {
    let (out, _) = switchyard(&["plugins"], None);
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    let at = |heading: &str| {
        lines
            .iter()
            .position(|l| *l == heading)
            .unwrap_or_else(|| panic!("no {heading}: {stdout}"))
    };
    let (sources, transforms, sinks) = (at("Sources:"), at("Transforms:"), at("Sinks:"));
    assert!(sources < transforms && transforms < sinks, "{stdout}");
    let names = |from: usize, to: usize| -> Vec<&str> {
        lines[from + 1..to]
            .iter()
            .filter_map(|l| l.split_whitespace().next())
            .collect()
    };
    for source in [
        "http",
        "file",
        "redis_streams",
        "redis_list",
        "docker",
        "demo",
    ] {
        assert!(names(sources, transforms).contains(&source), "{stdout}");
    }
    assert_eq!(
        names(transforms, sinks),
        ["filter", "enrich", "remap", "dedupe", "sample", "llm"]
    );
    let sink_lines = &lines[sinks + 1..];
    let registry = switchyard_sinks::builtin();
    let expected: Vec<String> = registry
        .describe()
        .map(|(name, description)| format!("{name:<12} {description}"))
        .collect();
    assert_eq!(sink_lines, expected, "{stdout}");
}
