//! Templates: literal text with `{reference}` parts, filled from each event —
//! the file sink's paths (`{service}/{date}/app.log`) and the Loki sink's
//! label values (`app={app},region={geo.region}`) are both this one language.
//!
//! # Syntax
//! `{{` and `}}` stand for literal braces. Anything else between `{` and `}`
//! is a reference, surrounding spaces ignored. A sink may declare its own
//! variables, filled the same for a whole batch (the file sink's `{date}` and
//! `{hour}`); every other reference names a value of the event.
//!
//! # What a reference reads
//! In a log record, in this order:
//! 1. the record's label of exactly that name (`{service}`, `{k8s.pod}`);
//! 2. `source_type`: the kind of source that produced the record;
//! 3. a field [`Path`]: `message`/`msg`, `level`, `labels.NAME`, or a field
//!    with `.` stepping into JSON objects (`geo.region`).
//!
//! In an LLM payload or HTTP exchange: a dotted path into its JSON (`name`
//! is the model, `metadata.status` the HTTP status).
//!
//! A string renders without quotes, other JSON as its text, and `null` or a
//! missing value as nothing; what a sink does with nothing is the sink's
//! (the file sink writes `_missing`, Loki leaves the label out).

use crate::path::{value_text, Path};
use crate::{Event, LogRecord, Payload};
use serde_json::Value;
use std::borrow::Cow;

/// One reference: what was written between the braces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// The text between the braces, as written.
    written: String,
    /// The same without surrounding spaces: the label name it reads.
    name: String,
    /// Its dot-separated parts, each without surrounding spaces.
    segments: Vec<String>,
    /// The field path it names; `None` when a part is empty (`{a..b}`),
    /// which can then only be a label's name.
    path: Option<Path>,
}

impl Reference {
    fn new(written: &str) -> Self {
        let segments: Vec<String> = written
            .trim()
            .split('.')
            .map(|s| s.trim().to_string())
            .collect();
        let path = Path::from_segments(&segments);
        Self {
            written: written.to_string(),
            name: written.trim().to_string(),
            segments,
            path,
        }
    }

    /// The text between the braces, exactly as written.
    pub fn written(&self) -> &str {
        &self.written
    }

    /// The reference without surrounding spaces: the label name it reads.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its dot-separated parts.
    pub fn segments(&self) -> &[String] {
        &self.segments
    }

    /// The field path it names, if it is one (no empty part).
    pub fn path(&self) -> Option<&Path> {
        self.path.as_ref()
    }

    #[inline]
    fn in_record<'a>(&self, rec: &'a LogRecord) -> Option<Cow<'a, str>> {
        if let Some(v) = rec.labels.get(&self.name) {
            return Some(Cow::Borrowed(v));
        }
        if self.name == "source_type" {
            return rec.source_type.map(Cow::Borrowed);
        }
        self.path.as_ref()?.text(rec)
    }
}

/// A piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// Literal text (braces already unescaped).
    Text(String),
    /// The sink's variable with this index in the list given to
    /// [`Template::parse`].
    Var(usize),
    /// A value of the event.
    Ref(Reference),
}

/// A template that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// `{` with no `}` after it.
    #[error("`{{{0}` is not closed: `{{` without `}}` (write `{{{{` for a literal brace)")]
    Unclosed(String),
    /// `}` with no `{` before it.
    #[error("a lone `}}` at byte {0} (write `}}}}` for a literal brace)")]
    LoneClose(usize),
    /// `{}` or `{ }`.
    #[error("`{{{0}}}` names nothing: write a label, a field name or a dotted path")]
    Empty(String),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    text: String,
    parts: Vec<Part>,
}

impl Template {
    /// Parse `text`. A reference equal to one of `vars` becomes that
    /// variable, filled by the caller at render time.
    pub fn parse(text: &str, vars: &[&str]) -> Result<Self, TemplateError> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(at) = rest.find(['{', '}']) {
            literal.push_str(&rest[..at]);
            let brace = rest.as_bytes()[at];
            let after = &rest[at + 1..];
            if after.as_bytes().first() == Some(&brace) {
                literal.push(char::from(brace));
                rest = &after[1..];
                continue;
            }
            if brace == b'}' {
                return Err(TemplateError::LoneClose(text.len() - rest.len() + at));
            }
            let close = after
                .find('}')
                .ok_or_else(|| TemplateError::Unclosed(after.to_string()))?;
            let written = &after[..close];
            let name = written.trim();
            if name.is_empty() {
                return Err(TemplateError::Empty(written.to_string()));
            }
            if !literal.is_empty() {
                parts.push(Part::Text(std::mem::take(&mut literal)));
            }
            parts.push(match vars.iter().position(|v| *v == name) {
                Some(i) => Part::Var(i),
                None => Part::Ref(Reference::new(written)),
            });
            rest = &after[close + 1..];
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            parts.push(Part::Text(literal));
        }
        Ok(Self {
            text: text.to_string(),
            parts,
        })
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Its pieces, in order.
    pub fn parts(&self) -> &[Part] {
        &self.parts
    }

    /// The event references, in order.
    pub fn references(&self) -> impl Iterator<Item = &Reference> {
        self.parts.iter().filter_map(|p| match p {
            Part::Ref(r) => Some(r),
            _ => None,
        })
    }

    /// Append the template for `values` to `out`: literal text as it is,
    /// variable `i` as `vars[i]`, and each reference through `fill`, which
    /// gets the reference's value (`None` when there is none) and writes
    /// what the sink wants in its place.
    pub fn render<F>(&self, values: &mut Values<'_>, vars: &[&str], out: &mut String, mut fill: F)
    where
        F: FnMut(Option<&str>, &mut String),
    {
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Var(i) => out.push_str(vars.get(*i).copied().unwrap_or_default()),
                Part::Ref(r) => fill(values.get(r).as_deref(), out),
            }
        }
    }
}

/// Read access to one event's values for references. A JSON payload is
/// parsed at most once per event, and only when a reference needs it.
pub struct Values<'a> {
    source: Source<'a>,
}

enum Source<'a> {
    Nothing,
    Log(&'a LogRecord),
    Json {
        event: &'a Event,
        parsed: Option<Value>,
    },
}

impl<'a> Values<'a> {
    /// The values of `event`.
    #[inline]
    pub fn new(event: &'a Event) -> Self {
        let source = match &event.payload {
            Payload::Log(r) => Source::Log(r),
            _ => Source::Json {
                event,
                parsed: None,
            },
        };
        Self { source }
    }

    /// No event: every reference finds nothing (to check what the literal
    /// parts of a template render to).
    pub fn none() -> Self {
        Self {
            source: Source::Nothing,
        }
    }

    /// The value `reference` names, as text.
    #[inline]
    pub fn get(&mut self, reference: &Reference) -> Option<Cow<'_, str>> {
        match &mut self.source {
            Source::Nothing => None,
            Source::Log(r) => reference.in_record(r),
            Source::Json { event, parsed } => {
                let root = parsed.get_or_insert_with(|| match &event.payload {
                    Payload::Json(doc) => serde_json::from_str(doc.get()).unwrap_or(Value::Null),
                    Payload::Http(x) => serde_json::to_value(x).unwrap_or(Value::Null),
                    Payload::Log(_) => Value::Null,
                });
                let mut v = &*root;
                for key in &reference.segments {
                    v = v.get(key)?;
                }
                value_text(v)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::JsonDocument;

    fn record(json: &str) -> Event {
        Event::from(serde_json::from_str::<LogRecord>(json).unwrap())
    }

    /// Render with `date`/`hour` variables; missing values as `-`.
    fn render(t: &str, event: Option<&Event>) -> String {
        let template = Template::parse(t, &["date", "hour"]).unwrap();
        let mut values = event.map_or_else(Values::none, Values::new);
        let mut out = String::new();
        template.render(&mut values, &["2026-11-30", "14"], &mut out, |v, out| {
            out.push_str(v.unwrap_or("-"))
        });
        out
    }

    #[test]
    fn references_read_labels_then_the_model_then_fields() {
        let mut e = record(
            r#"{"msg":"m","level":"warn","labels":{"app":"api","k8s.pod":"p-1","level":"L"},"service":"gw","geo":{"region":"eu"},"code":503}"#,
        );
        if let Payload::Log(r) = &mut e.payload {
            r.source_type = Some("http");
        }
        let e = Some(&e);
        assert_eq!(
            render("{app}/{date}/{hour}.log", e),
            "api/2026-11-30/14.log"
        );
        assert_eq!(
            render("{k8s.pod}|{labels.app}|{ service }", e),
            "p-1|api|gw"
        );
        assert_eq!(render("{geo.region}-{code}-{msg}", e), "eu-503-m");
        assert_eq!(render("{source_type}", e), "http");
        // A label of exactly that name comes first.
        assert_eq!(render("{level}", e), "L");
        assert_eq!(render("{nope}{geo.nope}{a..b}", e), "---");
    }

    #[test]
    fn braces_double_to_be_literal() {
        assert_eq!(
            render(
                "{{x}}-{{{app}}}",
                Some(&record(r#"{"labels":{"app":"a"}}"#))
            ),
            "{x}-{a}"
        );
        assert_eq!(render("{{date}}", None), "{date}");
    }

    #[test]
    fn json_payloads_are_read_by_path() {
        let doc = serde_json::value::to_raw_value(&serde_json::json!({
            "name": "gpt-4o-mini", "metadata": {"status": 200}, "none": null
        }))
        .unwrap();
        let e = Event::new(Payload::Json(JsonDocument::new(doc)));
        assert_eq!(
            render("{name}:{metadata.status}:{none}:{x}", Some(&e)),
            "gpt-4o-mini:200:-:-"
        );
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let err = |t: &str| Template::parse(t, &[]).unwrap_err().to_string();
        assert!(
            err("a{b").contains("`{b` is not closed: `{` without `}`"),
            "{}",
            err("a{b")
        );
        assert!(err("a}b").contains("lone `}` at byte 1"), "{}", err("a}b"));
        assert!(err("{ }").contains("names nothing"), "{}", err("{ }"));
        assert!(err("{}").contains("dotted path"));
    }

    #[test]
    fn parts_and_references_are_exposed() {
        let t = Template::parse("a{date}{ x.y }", &["date"]).unwrap();
        assert_eq!(t.as_str(), "a{date}{ x.y }");
        assert_eq!(t.parts().len(), 3);
        let r: Vec<_> = t.references().collect();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].written(), " x.y ");
        assert_eq!(r[0].name(), "x.y");
        assert_eq!(r[0].segments(), ["x", "y"]);
        assert_eq!(
            r[0].path(),
            Some(&Path::Field("x".into(), vec!["y".into()]))
        );
    }
}

#[cfg(test)]
mod props {
    //! Templates are config text: any text parses or is refused, and what
    //! parses renders for any record without panicking.
    use super::*;
    use proptest::prelude::*;

    fn template() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            prop_oneof![
                prop::sample::select(vec![
                    "{a}",
                    "{b.c}",
                    "{date}",
                    "{",
                    "}",
                    "{{",
                    "}}",
                    "{labels.a}",
                    "{msg}",
                    "x",
                ])
                .prop_map(str::to_string),
                any::<String>(),
            ],
            0..6,
        )
        .prop_map(|parts| parts.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn any_template_parses_or_is_refused_and_renders(
            text in template(),
            a in any::<String>(),
            c in any::<String>(),
        ) {
            let Ok(t) = Template::parse(&text, &["date"]) else {
                return Ok(());
            };
            let mut rec = LogRecord::new("m");
            rec.labels.insert("a".into(), a.clone());
            rec.fields.insert_value("b", &serde_json::json!({"c": c})).unwrap();
            let event = Event::from(rec);
            let mut out = String::new();
            t.render(&mut Values::new(&event), &["D"], &mut out, |v, out| {
                out.push_str(v.unwrap_or("?"))
            });
            // Without references or variables, the text is the literal.
            if t.parts().iter().all(|p| matches!(p, Part::Text(_))) {
                prop_assert_eq!(out, text.replace("{{", "{").replace("}}", "}"));
            }
        }
    }
}
