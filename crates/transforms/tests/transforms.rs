//! Transforms built from configuration, applied to records: tables.

use serde_json::{json, Value};
use switchyard_core::{Event, LogRecord, Payload, Transform, Verdict};
use switchyard_transforms::{build_chain, Chain};

fn chain(config: Value) -> Result<Chain, String> {
    let configs: Vec<Value> = serde_json::from_value(config).map_err(|e| format!("config: {e}"))?;
    build_chain(&configs).map_err(|e| e.to_string())
}

fn event(json: &str) -> Event {
    Event::new(Payload::Log(
        serde_json::from_str::<LogRecord>(json).unwrap(),
    ))
}

/// Apply and return the record as its JSON (without the generated time), or
/// None when filtered.
fn run(c: &Chain, json: &str) -> Option<Value> {
    let mut e = event(json);
    if c.apply(&mut e) == Verdict::Filter {
        return None;
    }
    let Payload::Log(rec) = &e.payload else {
        unreachable!()
    };
    let mut v = serde_json::to_value(rec).unwrap();
    v.as_object_mut().unwrap().remove("timestamp");
    Some(v)
}

#[test]
fn filter_enrich_remap_in_order() {
    std::env::set_var("SWITCHYARD_TEST_REGION", "eu-west");
    let c = chain(json!([
        {"type": "filter", "condition": "level == \"error\" or exists force"},
        {"type": "enrich", "labels": {"team": "core", "app": "ignored"}, "env": {"region": "SWITCHYARD_TEST_REGION"}},
        {"type": "remap", "ops": [
            {"rename": {"user_id": "user.id"}},
            {"set": {"labels.stage": "prod", "seen": true}},
            {"delete": ["secret"]}
        ]}
    ]))
    .unwrap();
    assert_eq!(run(&c, r#"{"msg":"fine","level":"info"}"#), None);
    let out = run(
        &c,
        r#"{"msg":"boom","level":"error","labels":{"app":"api"},"user_id":7,"secret":"x"}"#,
    )
    .unwrap();
    assert_eq!(
        out,
        json!({"msg":"boom","level":"error",
               "labels":{"app":"api","team":"core","region":"eu-west","stage":"prod"},
               "user":{"id":7},"seen":true})
    );
}

#[test]
fn remap_parses_json_and_logfmt_messages() {
    let c = chain(json!([{"type": "remap", "ops": [{"parse": "logfmt"}]}])).unwrap();
    assert_eq!(
        run(
            &c,
            r#"{"msg":"level=warn msg=\"disk almost full\" pct=93"}"#
        )
        .unwrap(),
        json!({"msg":"disk almost full","level":"warn","pct":"93"})
    );
    assert_eq!(
        run(&c, r#"{"msg":"   "}"#).unwrap(),
        json!({"msg":"   ","parse_error":"logfmt: no key=value pairs"})
    );
    let c = chain(json!([{"type": "remap", "ops": [{"parse": "json"}]}])).unwrap();
    assert_eq!(
        run(&c, r#"{"message":"{\"a\":{\"b\":1},\"level\":\"debug\"}"}"#).unwrap(),
        json!({"level":"debug","a":{"b":1}})
    );
}

#[test]
fn dedupe_within_the_window_and_sample_keeps_what_it_must() {
    let c = chain(json!([{"type": "dedupe", "fields": ["msg", "host"], "window": "1h"}])).unwrap();
    let kept: Vec<bool> = [
        r#"{"msg":"a","host":"h1"}"#,
        r#"{"msg":"a","host":"h1"}"#,
        r#"{"msg":"a","host":"h2"}"#,
        r#"{"msg":"b","host":"h1"}"#,
        r#"{"msg":"a","host":"h2","other":1}"#,
    ]
    .iter()
    .map(|r| run(&c, r).is_some())
    .collect();
    assert_eq!(kept, [true, false, true, true, false]);

    let c = chain(json!([{"type": "sample", "rate": 10, "always_keep": "level == \"error\""}]))
        .unwrap();
    let info = (0..100)
        .filter(|_| run(&c, r#"{"msg":"x","level":"info"}"#).is_some())
        .count();
    assert_eq!(info, 10);
    let errors = (0..20)
        .filter(|_| run(&c, r#"{"msg":"x","level":"error"}"#).is_some())
        .count();
    assert_eq!(errors, 20);
}

#[test]
fn dedupe_memory_is_bounded() {
    let c = chain(json!([{"type": "dedupe", "fields": ["n"], "window": "1h", "max_entries": 2}]))
        .unwrap();
    for n in 0..3 {
        assert!(run(&c, &format!(r#"{{"n":{n}}}"#)).is_some());
    }
    // 0 was forgotten to make room; 2 is still remembered.
    assert!(run(&c, r#"{"n":0}"#).is_some());
    assert!(run(&c, r#"{"n":2}"#).is_none());
}

#[test]
fn bad_settings_name_the_transform_and_key() {
    let table = [
        (
            json!([{"type": "filter", "condition": "level =="}]),
            "transforms[0].condition: expected a value",
        ),
        (
            json!([{"type": "filter", "condition": "x == 1", "extra": 1}]),
            "unknown field `extra`",
        ),
        (json!([{"type": "filter"}]), "missing field `condition`"),
        (
            json!([{"type": "nope"}]),
            "transforms[0].type: unknown transform type `nope`; expected one of filter, enrich, remap, dedupe, sample, llm",
        ),
        (
            json!([{"rate": 2}]),
            "transforms[0].type: required, one of filter",
        ),
        (
            json!([{"type": "sample", "rate": 0}]),
            "transforms[0].rate: must be at least 1",
        ),
        (
            json!([{"type": "sample", "rate": 2, "always_keep": "("}]),
            "transforms[0].always_keep:",
        ),
        (
            json!([{"type": "dedupe", "fields": [], "window": "1s"}]),
            "transforms[0].fields:",
        ),
        (
            json!([{"type": "dedupe", "fields": ["a"], "window": "soon"}]),
            "transforms[0].window: `soon`",
        ),
        (
            json!([{"type": "enrich", "env": {"r": "SWITCHYARD_SURELY_UNSET"}}]),
            "transforms[0].env.r: environment variable `SWITCHYARD_SURELY_UNSET` is not set",
        ),
        (
            json!([{"type": "filter", "condition": "a == 1"}, {"type": "remap", "ops": [{"parse": "xml"}]}]),
            "transforms[1].ops[0].parse: `xml` is not json or logfmt",
        ),
        (
            json!([{"type": "remap", "ops": [{"delete": ["a..b"]}]}]),
            "transforms[0].ops[0].delete: `a..b` is not a field path",
        ),
        (
            json!([{"type": "remap", "ops": [{"move": {}}]}]),
            "unknown variant `move`",
        ),
    ];
    for (config, expected) in table {
        let e = chain(config.clone())
            .err()
            .unwrap_or_else(|| panic!("{config} built"));
        assert!(e.contains(expected), "{config}: {e}");
    }
}

#[test]
fn events_that_are_not_log_records_pass_unchanged() {
    let c = chain(json!([
        {"type": "filter", "condition": "level == \"error\""},
        {"type": "remap", "ops": [{"set": {"x": 1}}]}
    ]))
    .unwrap();
    let x: switchyard_core::HttpExchange = serde_json::from_str(
        r#"{"LogID":1,"RequestID":"r","Method":"POST","URL":"/v1/chat","Status":200,"Duration":1,"RequestHeaders":{},"ResponseHeaders":{},"RequestBody":"","ResponseBody":""}"#,
    )
    .unwrap();
    let mut e = Event::new(Payload::Http(x.clone()));
    assert_eq!(c.apply(&mut e), Verdict::Keep);
    assert_eq!(e.payload, Payload::Http(x));
}
