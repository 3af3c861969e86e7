//! Addressing parts of a log record by name: `message`, `level`,
//! `labels.NAME`, and any other name as a field, with `.` stepping into JSON
//! objects (`user.id`).

use serde_json::Value;
use switchyard_core::{Event, LogRecord, Payload};

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

impl Path {
    /// Parse `text`; an empty name is an error.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.is_empty() || text.split('.').any(str::is_empty) {
            return Err(format!("`{text}` is not a field path"));
        }
        Ok(match text {
            "message" | "msg" => Path::Message,
            "level" => Path::Level,
            _ => match text.strip_prefix("labels.") {
                Some(name) => Path::Label(name.to_string()),
                None => {
                    let mut parts = text.split('.').map(String::from);
                    let first = parts.next().expect("not empty");
                    Path::Field(first, parts.collect())
                }
            },
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
                let mut root = self
                    .field_root(rec, name)
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
                let Some(mut root) = self.field_root(rec, name) else {
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

    fn field_root(&self, rec: &LogRecord, name: &str) -> Option<Value> {
        serde_json::from_str(rec.fields.get(name)?.get()).ok()
    }
}

/// The log record inside an event, if it carries one.
pub fn record(event: &mut Event) -> Option<&mut LogRecord> {
    match &mut event.payload {
        Payload::Log(rec) => Some(rec),
        _ => None,
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
            path.set(&mut rec, Value::String(value.clone()));
            prop_assert_eq!(path.get(&rec), Some(Value::String(value)));
            prop_assert!(path.delete(&mut rec));
            let mut out = Vec::new();
            rec.write_json(&mut out).unwrap();
            prop_assert!(serde_json::from_slice::<serde::de::IgnoredAny>(&out).is_ok());
        }
    }
}
