//! Field paths: the one way configuration names a part of a log record —
//! in transforms (`condition`, `remap`, `dedupe`) and in the sinks'
//! templates ([`crate::template`]).
//!
//! A path is `message` (or `msg`), `level`, `labels.NAME`, or any other
//! name as a field, with `.` stepping into JSON objects (`user.id`).

use crate::LogRecord;
use serde_json::value::RawValue;
use serde_json::Value;
use std::borrow::Cow;

/// A parsed path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Path {
    /// The message (`message` or `msg`).
    Message,
    /// The level.
    Level,
    /// One label.
    Label(String),
    /// A field, then keys inside its JSON value.
    Field(String, Vec<String>),
}

/// The text was not a path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a field path")]
pub struct PathError(pub String);

/// For callers that report errors as text.
impl From<PathError> for String {
    fn from(e: PathError) -> String {
        e.to_string()
    }
}

impl Path {
    /// Parse `text` (surrounding spaces ignored); an empty name, or an empty
    /// part between dots, is an error.
    pub fn parse(text: &str) -> Result<Self, PathError> {
        let text = text.trim();
        let segments: Vec<&str> = text.split('.').collect();
        Self::from_segments(&segments).ok_or_else(|| PathError(text.to_string()))
    }

    /// The path of the dot-separated `segments`; `None` if any is empty.
    pub fn from_segments<S: AsRef<str>>(segments: &[S]) -> Option<Self> {
        if segments.iter().any(|s| s.as_ref().is_empty()) {
            return None;
        }
        let (first, rest) = segments.split_first()?;
        Some(match (first.as_ref(), rest) {
            ("message" | "msg", []) => Path::Message,
            ("level", []) => Path::Level,
            ("labels", [_, ..]) => Path::Label(join(rest)),
            (first, rest) => Path::Field(
                first.to_string(),
                rest.iter().map(|s| s.as_ref().to_string()).collect(),
            ),
        })
    }

    /// The value at this path in a record, as JSON.
    pub fn get(&self, rec: &LogRecord) -> Option<Value> {
        match self {
            Path::Message => rec.message.clone().map(Value::String),
            Path::Level => rec.level.clone().map(Value::String),
            Path::Label(name) => rec.labels.get(name).cloned().map(Value::String),
            Path::Field(name, inner) => {
                let raw = rec.fields.get(name)?;
                let mut value: Value = serde_json::from_str(raw.get()).ok()?;
                for key in inner {
                    value = value.get_mut(key)?.take();
                }
                Some(value)
            }
        }
    }

    /// The value at this path as text: a string without quotes, `null` as
    /// nothing, any other JSON as its text. Borrowed from the record where
    /// it can be (everything but nested fields and strings with escapes).
    #[inline]
    pub fn text<'a>(&self, rec: &'a LogRecord) -> Option<Cow<'a, str>> {
        match self {
            Path::Message => rec.message.as_deref().map(Cow::Borrowed),
            Path::Level => rec.level.as_deref().map(Cow::Borrowed),
            Path::Label(name) => rec.labels.get(name).map(|s| Cow::Borrowed(s.as_str())),
            Path::Field(name, inner) => {
                let raw = rec.fields.get(name)?;
                if inner.is_empty() {
                    return raw_text(raw);
                }
                let mut v: Value = serde_json::from_str(raw.get()).ok()?;
                for key in inner {
                    v = v.get_mut(key)?.take();
                }
                value_text(&v).map(|s| Cow::Owned(s.into_owned()))
            }
        }
    }

    /// Set the value at this path. Message, level and labels take strings
    /// (other values are written as their JSON text).
    pub fn set(&self, rec: &mut LogRecord, value: Value) {
        let text = |v: Value| match v {
            Value::String(s) => s,
            other => other.to_string(),
        };
        match self {
            Path::Message => rec.message = Some(text(value)),
            Path::Level => rec.level = Some(text(value)),
            Path::Label(name) => {
                rec.labels.insert(name.clone(), text(value));
            }
            Path::Field(name, inner) if inner.is_empty() => {
                let _ = rec.fields.insert_value(name, &value);
            }
            Path::Field(name, inner) => {
                let mut root = field_root(rec, name)
                    .filter(Value::is_object)
                    .unwrap_or_else(|| Value::Object(Default::default()));
                let mut at = &mut root;
                for key in &inner[..inner.len() - 1] {
                    let obj = at.as_object_mut().expect("kept an object");
                    at = obj
                        .entry(key.clone())
                        .or_insert_with(|| Value::Object(Default::default()));
                    if !at.is_object() {
                        *at = Value::Object(Default::default());
                    }
                }
                at.as_object_mut()
                    .expect("kept an object")
                    .insert(inner[inner.len() - 1].clone(), value);
                let _ = rec.fields.insert_value(name, &root);
            }
        }
    }

    /// Remove the value at this path; true if there was one.
    pub fn delete(&self, rec: &mut LogRecord) -> bool {
        match self {
            Path::Message => rec.message.take().is_some(),
            Path::Level => rec.level.take().is_some(),
            Path::Label(name) => rec.labels.remove(name).is_some(),
            Path::Field(name, inner) if inner.is_empty() => rec.fields.remove(name),
            Path::Field(name, inner) => {
                let Some(mut root) = field_root(rec, name) else {
                    return false;
                };
                let mut at = &mut root;
                for key in &inner[..inner.len() - 1] {
                    match at.get_mut(key) {
                        Some(next) => at = next,
                        None => return false,
                    }
                }
                let removed = at
                    .as_object_mut()
                    .and_then(|o| o.remove(&inner[inner.len() - 1]))
                    .is_some();
                if removed {
                    let _ = rec.fields.insert_value(name, &root);
                }
                removed
            }
        }
    }
}

fn join<S: AsRef<str>>(segments: &[S]) -> String {
    let mut out = String::new();
    for (i, s) in segments.iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        out.push_str(s.as_ref());
    }
    out
}

fn field_root(rec: &LogRecord, name: &str) -> Option<Value> {
    serde_json::from_str(rec.fields.get(name)?.get()).ok()
}

/// A raw JSON value as text: a string without quotes (borrowed when it has
/// no escapes), null as nothing, anything else as its JSON text.
fn raw_text(raw: &RawValue) -> Option<Cow<'_, str>> {
    let t = raw.get();
    if t == "null" {
        None
    } else if t.starts_with('"') {
        let inner = &t[1..t.len() - 1];
        if inner.contains('\\') {
            serde_json::from_str::<String>(t).ok().map(Cow::Owned)
        } else {
            Some(Cow::Borrowed(inner))
        }
    } else {
        Some(Cow::Borrowed(t))
    }
}

/// A JSON value as text, by the same rules as [`raw_text`].
pub(crate) fn value_text(v: &Value) -> Option<Cow<'_, str>> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(Cow::Borrowed(s)),
        other => Some(Cow::Owned(other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rec(json: &str) -> LogRecord {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn get_set_delete_across_the_model_and_nested_fields() {
        let mut r = rec(r#"{"msg":"m","level":"info","labels":{"app":"api"},"user":{"id":7}}"#);
        let p = |s| Path::parse(s).unwrap();
        assert_eq!(p("message").get(&r), Some(json!("m")));
        assert_eq!(p("labels.app").get(&r), Some(json!("api")));
        assert_eq!(p("user.id").get(&r), Some(json!(7)));
        assert_eq!(p("user.name").get(&r), None);
        p("user.name.first").set(&mut r, json!("Ada"));
        assert_eq!(
            p("user").get(&r),
            Some(json!({"id":7,"name":{"first":"Ada"}}))
        );
        assert!(p("user.id").delete(&mut r));
        assert!(!p("user.id").delete(&mut r));
        p("labels.env").set(&mut r, json!(3));
        assert_eq!(r.labels["env"], "3");
        assert!(Path::parse("a..b").is_err());
        assert!(Path::parse(" ").is_err());
    }

    #[test]
    fn text_is_unquoted_and_borrowed_where_it_can_be() {
        let r = rec(
            r#"{"msg":"m","labels":{"app":"api"},"code":503,"s":"plain","e":"a\"b","n":null,"geo":{"region":"eu"}}"#,
        );
        let t = |s: &str| Path::parse(s).unwrap().text(&r).map(Cow::into_owned);
        assert_eq!(t("msg").as_deref(), Some("m"));
        assert_eq!(t("labels.app").as_deref(), Some("api"));
        assert_eq!(t("code").as_deref(), Some("503"));
        assert_eq!(t("s").as_deref(), Some("plain"));
        assert_eq!(t("e").as_deref(), Some("a\"b"));
        assert_eq!(t("n"), None);
        assert_eq!(t("geo.region").as_deref(), Some("eu"));
        assert_eq!(t("geo").as_deref(), Some(r#"{"region":"eu"}"#));
        assert_eq!(t("level"), None);
        assert!(matches!(
            Path::parse("s").unwrap().text(&r),
            Some(Cow::Borrowed("plain"))
        ));
    }

    #[test]
    fn labels_paths_keep_dots_in_the_name() {
        assert_eq!(
            Path::parse("labels.a.b").unwrap(),
            Path::Label("a.b".into())
        );
        assert_eq!(
            Path::parse("labels").unwrap(),
            Path::Field("labels".into(), vec![])
        );
        let e = Path::parse("a..b").unwrap_err().to_string();
        assert!(e.contains("`a..b` is not a field path"), "{e}");
    }
}

#[cfg(test)]
mod props {
    //! Paths are config text: any text parses or is refused; what parses
    //! can get, set and delete on any record without panicking.
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn any_path_parses_or_is_refused_and_works_on_records(
            text in prop_oneof![any::<String>(), "[a-zé.]{0,12}", "labels\\.[a-z.]{0,6}"],
            value in any::<String>(),
            existing in any::<String>(),
        ) {
            let Ok(path) = Path::parse(&text) else {
                return Ok(());
            };
            let mut rec = LogRecord::new("m");
            rec.fields
                .insert_value("a", &serde_json::json!({"b": existing, "c": [1, 2]}))
                .unwrap();
            let _ = path.get(&rec);
            let _ = path.text(&rec);
            path.set(&mut rec, Value::String(value.clone()));
            prop_assert_eq!(path.get(&rec), Some(Value::String(value.clone())));
            let text = path.text(&rec).map(Cow::into_owned);
            prop_assert_eq!(text.as_deref(), Some(value.as_str()));
            prop_assert!(path.delete(&mut rec));
            let mut out = Vec::new();
            rec.write_json(&mut out).unwrap();
            prop_assert!(serde_json::from_slice::<serde::de::IgnoredAny>(&out).is_ok());
        }
    }
}
