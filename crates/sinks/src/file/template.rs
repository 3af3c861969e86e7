//! Path templates: `{service}/{date}/app.log` under a base directory, in
//! the template language of [`switchyard_core::template`] with two
//! variables of the batch, `{date}` and `{hour}`.
//!
//! A template is checked once at start-up (literal parts cannot climb out of
//! the base directory or be absolute) and every rendered path is checked
//! again before it is used, so no event can name a file outside the base
//! directory. Label values are sanitized first: a value can never add a path
//! separator or be `.`/`..`, so it stays one ordinary path component.

use std::path::{Component, Path};
use switchyard_core::template::{Template, Values};
use switchyard_core::Event;

/// What a reference becomes when the event has no such value: a fixed,
/// visible name rather than a lost event.
pub const MISSING_LABEL: &str = "_missing";

/// Longest label value kept in a path component, in bytes (file names are
/// limited to 255 bytes on common file systems).
const MAX_VALUE_BYTES: usize = 128;

/// The variables a path template may use, in the order [`Stamp`] fills them.
const VARS: &[&str] = &["date", "hour"];

/// A parsed path template: core's template language, with references kept
/// to names that are safe to read in a path.
#[derive(Debug, Clone, PartialEq)]
pub struct PathTemplate {
    template: Template,
}

/// The time placeholders of one batch, formatted once.
#[derive(Debug, Clone)]
pub struct Stamp {
    /// `{date}`: `YYYY-MM-DD`.
    pub date: String,
    /// `{hour}`: `HH`.
    pub hour: String,
}

impl PathTemplate {
    /// Parse `text`. Placeholders are `{date}`, `{hour}` and references to
    /// the event (`{LABEL}`, `{labels.NAME}`, `{level}`, `{a.b}`: see
    /// [`switchyard_core::template`]) written with letters, digits, `_`,
    /// `-` or `.`; `{{` and `}}` are literal braces.
    pub fn parse(text: &str) -> Result<Self, String> {
        let template = Template::parse(text, VARS).map_err(|e| format!("`{text}`: {e}"))?;
        for reference in template.references() {
            let name = reference.written();
            let valid = name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
            if !valid {
                return Err(format!(
                    "`{{{name}}}` is not a placeholder: use {{date}}, {{hour}} or {{LABEL}} (letters, digits, `_`, `-`, `.`)"
                ));
            }
        }
        let template = Self { template };
        // Every placeholder renders to at least one safe character, so a
        // sample rendering shows whether the literal parts alone escape.
        let mut sample = String::new();
        let stamp = Stamp {
            date: "2000-01-01".into(),
            hour: "00".into(),
        };
        template.render_values(&mut Values::none(), &stamp, &mut sample);
        check_relative(&sample).map_err(|reason| format!("`{text}` {reason}"))?;
        Ok(template)
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        self.template.as_str()
    }

    /// Append the path for `event` to `out`.
    pub fn render(&self, event: &Event, stamp: &Stamp, out: &mut String) {
        self.render_values(&mut Values::new(event), stamp, out);
    }

    fn render_values(&self, values: &mut Values<'_>, stamp: &Stamp, out: &mut String) {
        let vars = [stamp.date.as_str(), stamp.hour.as_str()];
        self.template
            .render(values, &vars, out, |value, out| match value {
                Some(value) => sanitize(value, out),
                None => out.push_str(MISSING_LABEL),
            });
    }
}

/// Append `value` as one safe path component: separators, NUL and control
/// characters become `_`; an empty value, `.` and `..` become underscores;
/// long values are cut at a character boundary.
pub fn sanitize(value: &str, out: &mut String) {
    match value {
        "" | "." => return out.push('_'),
        ".." => return out.push_str("__"),
        _ => {}
    }
    let mut end = value.len().min(MAX_VALUE_BYTES);
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    out.extend(value[..end].chars().map(|c| {
        if c == '/' || c == '\\' || c.is_control() {
            '_'
        } else {
            c
        }
    }));
}

/// Check that a rendered path stays below its base directory: relative, no
/// NUL, no `..` component, and naming a file.
pub fn check_relative(rendered: &str) -> Result<(), &'static str> {
    if rendered.contains('\0') {
        return Err("contains a NUL byte");
    }
    if rendered.is_empty() || rendered.ends_with('/') {
        return Err("does not name a file");
    }
    let mut depth = 0usize;
    for component in Path::new(rendered).components() {
        match component {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir => {
                return Err("contains `..`, which would leave the base directory")
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err("is absolute; paths are relative to the base directory")
            }
        }
    }
    if depth == 0 {
        return Err("does not name a file");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_core::LogRecord;

    fn render(t: &str, labels: &[(&str, &str)]) -> String {
        let mut rec = LogRecord::new("m");
        for (k, v) in labels {
            rec.labels.insert(k.to_string(), v.to_string());
        }
        let stamp = Stamp {
            date: "2026-11-30".into(),
            hour: "14".into(),
        };
        let mut out = String::new();
        PathTemplate::parse(t)
            .unwrap()
            .render(&Event::from(rec), &stamp, &mut out);
        out
    }

    #[test]
    fn placeholders_take_time_and_labels() {
        assert_eq!(
            render("{service}/{date}/{hour}-app.log", &[("service", "api")]),
            "api/2026-11-30/14-app.log"
        );
        assert_eq!(render("{nope}.log", &[]), "_missing.log");
    }

    /// The Loki sink's references work here too: explicit labels, the
    /// model's level, fields and nested fields, and literal braces.
    #[test]
    fn references_are_the_loki_label_language() {
        let rec: LogRecord = serde_json::from_str(
            r#"{"msg":"m","level":"warn","labels":{"app":"api","k8s.pod":"p/1"},"service":"gw","geo":{"region":"eu"}}"#,
        )
        .unwrap();
        let stamp = Stamp {
            date: "2026-11-30".into(),
            hour: "14".into(),
        };
        let path = |t: &str| {
            let mut out = String::new();
            PathTemplate::parse(t)
                .unwrap()
                .render(&Event::from(rec.clone()), &stamp, &mut out);
            out
        };
        assert_eq!(
            path("{labels.app}/{level}/{service}.log"),
            "api/warn/gw.log"
        );
        assert_eq!(path("{geo.region}/{k8s.pod}.log"), "eu/p_1.log");
        assert_eq!(path("{{x}}/{app}.log"), "{x}/api.log");
        assert_eq!(path("{geo.nope}.log"), "_missing.log");
    }

    #[test]
    fn label_values_cannot_add_components() {
        assert_eq!(
            render("{a}/x.log", &[("a", "../../etc")]),
            ".._.._etc/x.log"
        );
        assert_eq!(render("{a}/x.log", &[("a", "..")]), "__/x.log");
        assert_eq!(
            render("{a}{b}/x.log", &[("a", "."), ("b", ".")]),
            "__/x.log"
        );
        assert_eq!(render("{a}.log", &[("a", "/abs\0x")]), "_abs_x.log");
        let long = "é".repeat(100);
        assert!(render("{a}", &[("a", &long)]).len() <= MAX_VALUE_BYTES);
    }

    #[test]
    fn templates_that_escape_are_refused() {
        for bad in [
            "../x.log",
            "/var/log/x.log",
            "a/../../x.log",
            "{a}/..",
            "a/",
            "",
            "{a",
            "a}",
            "{a b}",
            "x\0.log",
        ] {
            assert!(PathTemplate::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(PathTemplate::parse("./a/b.log").is_ok());
    }
}

#[cfg(test)]
mod props {
    //! Templates come from the config and label values from events: any
    //! template parses or is refused, and any label values render a path
    //! that stays below the base directory.
    use super::*;
    use proptest::prelude::*;

    fn stamp() -> Stamp {
        Stamp {
            date: "2024-02-29".into(),
            hour: "23".into(),
        }
    }

    /// Values that try to escape: dots, separators, NUL, controls, long text.
    fn label_value() -> impl Strategy<Value = String> {
        prop_oneof![
            prop::sample::select(vec!["", ".", "..", "/", "\\", "\0", "../..", "a/../../b"])
                .prop_map(str::to_string),
            "[./\\\\\\x00\\n]{0,6}",
            any::<String>(),
            ".{120,140}",
        ]
    }

    fn template() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            prop_oneof![
                prop::sample::select(vec![
                    "{a}", "{b}", "{date}", "{hour}", "/", ".", "..", "x", "{", "}", "{{", "é",
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
        fn any_template_and_labels_render_below_the_base(
            text in template(),
            a in label_value(),
            b in label_value(),
        ) {
            let Ok(t) = PathTemplate::parse(&text) else {
                return Ok(());
            };
            let mut rec = switchyard_core::LogRecord::new("m");
            rec.labels.insert("a".to_string(), a);
            rec.labels.insert("b".to_string(), b);
            let mut out = String::new();
            t.render(&Event::from(rec), &stamp(), &mut out);
            prop_assert_eq!(check_relative(&out), Ok(()), "{:?} rendered {:?}", text, out);
        }

        #[test]
        fn sanitized_values_are_one_bounded_component(value in any::<String>()) {
            let mut out = String::new();
            sanitize(&value, &mut out);
            prop_assert!(!out.is_empty() && out != "." && out != "..");
            prop_assert!(!out.contains(['/', '\\', '\0']));
            prop_assert!(out.len() <= MAX_VALUE_BYTES);
        }
    }
}
