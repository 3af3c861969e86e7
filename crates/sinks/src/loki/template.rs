//! Label templates: `labels=app={app},level={level},env=prod`.
//!
//! Each comma-separated item is `name=template`; a template is core's
//! template language ([`switchyard_core::template`]), the same as the file
//! sink's paths: literal text with `{reference}` parts (`{{` and `}}` stand
//! for literal braces). A reference names a value of the event:
//!
//! - log records: the record's label of that name if it has one, else
//!   `level`, `source_type`, `labels.NAME`, or a dotted path into the
//!   record's fields (`user.country`);
//! - LLM payloads and HTTP exchanges: a dotted path into their JSON
//!   (`name` is the model, `metadata.status` the HTTP status).
//!
//! A reference that finds nothing renders empty, and a label whose value is
//! empty is left out (Loki does the same); strings render without quotes,
//! other JSON as its text. Everything is checked when the sink is built:
//! names are sanitized, duplicates, reserved `__` names and high-cardinality
//! or credential keys are refused, with the item at fault in the message.

use super::labels::{self, refusal};
use switchyard_core::template::{Template, Values};
use switchyard_core::Event;

/// The label set of the events, as configured.
#[derive(Debug, Clone)]
pub struct LabelTemplate {
    /// Sorted by name, names unique and valid.
    labels: Vec<(String, Template)>,
}

/// The default label set when `labels` is not given: Loki needs at least one.
pub const DEFAULT_LABELS: &str = "job=switchyard";

impl LabelTemplate {
    /// Parse the `labels` option.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let mut out: Vec<(String, Template)> = Vec::new();
        for item in spec.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let fail = |why: String| format!("`labels`: item `{item}`: {why}");
            let (raw_name, template) = item
                .split_once('=')
                .ok_or_else(|| fail("expected NAME=TEMPLATE, e.g. app={app}".into()))?;
            let name =
                labels::sanitize(raw_name).ok_or_else(|| fail("the name is empty".into()))?;
            if name.starts_with("__") {
                return Err(fail(format!(
                    "`{name}`: names starting with __ are reserved by Loki"
                )));
            }
            if let Some(why) = refusal(&name) {
                return Err(fail(format!("`{name}` may not be a label: {why}")));
            }
            if out.iter().any(|(n, _)| *n == name) {
                return Err(fail(format!(
                    "label `{name}` is given twice (names are compared after sanitizing)"
                )));
            }
            let template = parse_template(template).map_err(fail)?;
            out.push((name, template));
        }
        if out.is_empty() {
            return Err(
                "`labels`: Loki needs at least one label, e.g. labels=job=switchyard".into(),
            );
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(Self { labels: out })
    }

    /// The label names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.labels.iter().map(|(n, _)| n.as_str())
    }

    /// The labels of `event`, sorted by name, empty values left out. Values
    /// longer than [`labels::MAX_VALUE_BYTES`] are cut.
    pub fn render(&self, event: &Event) -> Vec<(&str, String)> {
        let mut values = Values::new(event);
        let mut out = Vec::with_capacity(self.labels.len());
        for (name, template) in &self.labels {
            let mut value = String::new();
            template.render(&mut values, &[], &mut value, |v, value| {
                if let Some(v) = v {
                    value.push_str(v);
                }
            });
            if !value.is_empty() {
                out.push((name.as_str(), labels::bound_value(value)));
            }
        }
        out
    }
}

/// One label's template: core's language, with every reference a field
/// name or dotted path, none of whose parts may feed a label.
fn parse_template(t: &str) -> Result<Template, String> {
    let template = Template::parse(t, &[]).map_err(|e| e.to_string())?;
    for reference in template.references() {
        let written = reference.written();
        if reference.path().is_none() {
            return Err(format!(
                "`{{{written}}}` is not a field name or dotted path"
            ));
        }
        for segment in reference.segments() {
            if let Some(why) = refusal(segment) {
                return Err(format!("`{{{written}}}` may not feed a label: {why}"));
            }
        }
    }
    Ok(template)
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_core::{LogRecord, Payload};

    fn record(json: &str) -> Event {
        Event::from(serde_json::from_str::<LogRecord>(json).unwrap())
    }

    #[test]
    fn templates_read_the_record_and_sort_the_names() {
        let t = LabelTemplate::parse(
            "level={level}, app={app},env=prod,region={geo.region}-x,job=svc-{service}",
        )
        .unwrap();
        assert_eq!(
            t.names().collect::<Vec<_>>(),
            ["app", "env", "job", "level", "region"]
        );
        let e = record(
            r#"{"msg":"m","level":"warn","labels":{"app":"api"},"service":"gw","geo":{"region":"eu"}}"#,
        );
        let got = t.render(&e);
        let want: Vec<(&str, String)> = vec![
            ("app", "api".into()),
            ("env", "prod".into()),
            ("job", "svc-gw".into()),
            ("level", "warn".into()),
            ("region", "eu-x".into()),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn missing_values_leave_the_label_out_and_scalars_render_as_text() {
        let t = LabelTemplate::parse("level={level},code={code},ok={ok},app={labels.app}").unwrap();
        let got = t.render(&record(r#"{"code":503,"ok":true}"#));
        assert_eq!(
            got,
            vec![("code", "503".to_string()), ("ok", "true".to_string())]
        );
    }

    #[test]
    fn llm_payloads_are_read_as_json() {
        let t = LabelTemplate::parse("model={name},status={metadata.status}").unwrap();
        let doc = serde_json::value::to_raw_value(&serde_json::json!({
            "name": "gpt-4o-mini", "metadata": {"status": 200, "request_id": "r1"}
        }))
        .unwrap();
        let e = Event::new(Payload::Json(switchyard_core::JsonDocument::new(doc)));
        assert_eq!(
            t.render(&e),
            vec![
                ("model", "gpt-4o-mini".to_string()),
                ("status", "200".to_string())
            ]
        );
    }

    #[test]
    fn bad_templates_name_the_item_and_the_reason() {
        let cases = [
            ("", "at least one label"),
            ("app", "NAME=TEMPLATE"),
            ("app={app", "not closed"),
            ("app={}", "dotted path"),
            ("a=x,a={b}", "given twice"),
            ("a.b=x,a_b=y", "given twice"),
            ("__name__=x", "reserved"),
            ("request_id={rid}", "high cardinality"),
            ("rid={request_id}", "high cardinality"),
            ("rid={metadata.request_id}", "high cardinality"),
            ("t={ts}", "high cardinality"),
            ("key={api_key}", "credential"),
            ("auth={headers.Authorization}", "credential"),
            ("x=a}b", "lone"),
        ];
        for (spec, why) in cases {
            let e = LabelTemplate::parse(spec).unwrap_err();
            assert!(e.starts_with("`labels`"), "{spec}: {e}");
            assert!(e.contains(why), "{spec}: {e}");
        }
        let t = LabelTemplate::parse("service.name=x,1st={{y}}").unwrap();
        assert_eq!(t.names().collect::<Vec<_>>(), ["_1st", "service_name"]);
        assert_eq!(t.render(&record("{}"))[0].1, "{y}");
    }
}

#[cfg(test)]
mod props {
    //! Label specs come from the config and values from events: any spec
    //! parses or is refused, and what renders is sorted, valid and bounded.
    use super::*;
    use proptest::prelude::*;
    use switchyard_core::LogRecord;

    fn spec() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            prop_oneof![
                prop::sample::select(vec![
                    "app=",
                    "{app}",
                    "{level}",
                    "{labels.x}",
                    "{a.b}",
                    ",",
                    "=",
                    "{",
                    "}",
                    "{{",
                    "}}",
                    "__x=",
                    "9z=",
                    "é=",
                    " ",
                ])
                .prop_map(str::to_string),
                any::<String>(),
            ],
            0..8,
        )
        .prop_map(|parts| parts.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn any_spec_parses_or_is_refused_and_renders_valid_labels(
            text in spec(),
            message in any::<String>(),
            app in any::<String>(),
            field in any::<String>(),
        ) {
            let Ok(t) = LabelTemplate::parse(&text) else {
                return Ok(());
            };
            let mut rec = LogRecord::new(message);
            rec.labels.insert("app".into(), app.repeat(3));
            rec.fields.insert_value("a", &serde_json::json!({"b": field})).unwrap();
            let event = Event::from(rec);
            let got = t.render(&event);
            for pair in got.windows(2) {
                prop_assert!(pair[0].0 < pair[1].0);
            }
            for (name, value) in &got {
                prop_assert!(labels::is_valid_name(name), "{:?}", name);
                prop_assert!(!value.is_empty());
                prop_assert!(value.len() <= labels::MAX_VALUE_BYTES);
            }
        }
    }
}
