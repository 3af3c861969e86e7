//! A component's options as the user gave them — a YAML mapping, or
//! `KEY=VALUE` flags — and reading them into the component's typed config.
//!
//! A config is a `#[derive(Deserialize)]` struct with
//! `#[serde(deny_unknown_fields)]`: the same struct reads both forms, because
//! option values are read leniently (`"5"` is a number where a number is
//! wanted, see `lenient`), and a dotted key (`rotate.max_bytes=1MiB`) is the
//! nested mapping YAML can also write (`rotate: {max_bytes: 1MiB}`). Every
//! error names the key where the user wrote it: `sinks.out.options.colour`
//! in a file, `--sink-option colour` on the command line.
//!
//! ```
//! use serde::Deserialize;
//! use switchyard_core::Options;
//!
//! #[derive(Deserialize)]
//! #[serde(deny_unknown_fields, rename_all = "kebab-case")]
//! struct Config {
//!     batch_max_events: Option<usize>,
//! }
//!
//! let mut flags = Options::new();
//! flags.insert("batch-max-events".into(), "5".into());
//! assert_eq!(flags.read::<Config>().unwrap().batch_max_events, Some(5));
//!
//! let yaml = serde_json::json!({"batch-max-events": 5, "colour": "red"});
//! let file = Options::from_value(yaml, "sinks.out.options").unwrap();
//! let error = file.read::<Config>().err().unwrap();
//! assert!(error.to_string().starts_with("sinks.out.options.colour: unknown option"));
//! ```
//!
//! # Layout
//! - `error`: [`BuildError`] and the [`OptionKey`] it names.
//! - `lenient`: the deserializer that reads text as numbers and back.
//! - `fields`: the keys a config struct has, read from its serde derive.
//! - `values`: [`Span`], [`ByteSize`], [`Positive`]: values configs share.

mod error;
mod fields;
mod lenient;
mod values;

pub use error::{BuildError, OptionKey};
pub use fields::fields_of;
pub use values::{ByteSize, Positive, Span};

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};

/// Options given to one component, not yet read into its config.
#[derive(Debug, Clone, Default)]
pub struct Options {
    tree: Map<String, Value>,
    /// `Some("sinks.out.options")` for options from a file; `None` for flags.
    at: Option<String>,
    /// Keys offered to whichever component is built: left out when its
    /// config has no such key.
    offered: BTreeSet<String>,
    /// Top-level keys set by a flag of their own (`endpoint` by `--endpoint`).
    flags: BTreeMap<String, String>,
    /// A key given both as a value and as a mapping (`rotate=x` and
    /// `rotate.max_bytes=y`): reported when the options are read.
    clash: Option<String>,
}

impl Options {
    /// No options, to be set from command-line flags.
    pub fn new() -> Self {
        Self::default()
    }

    /// Options from a configuration file: `value` is the mapping under
    /// `at` (a dotted key path such as `sinks.out.options`, used in errors).
    /// A key with an empty or null value is left unset, so that
    /// `tenant: ${TENANT:-}` means "no tenant".
    pub fn from_value(value: Value, at: &str) -> Result<Self, BuildError> {
        let mut options = Self {
            at: Some(at.to_string()),
            ..Self::default()
        };
        match value {
            Value::Null => {}
            Value::Object(map) => {
                for (key, value) in map {
                    options.put(key, value);
                }
            }
            other => {
                let mut key = OptionKey::new::<&str>(&[]);
                key.shown_as(at.to_string());
                return Err(BuildError::Invalid {
                    key,
                    message: format!(
                        "expected a mapping of option names to values, not {}",
                        kind_of(&other)
                    ),
                });
            }
        }
        Ok(options)
    }

    /// Set `key` from `--sink-option KEY=VALUE`. A dotted key sets a nested
    /// option (`rotate.max_bytes`); an empty value leaves the key unset.
    pub fn insert(&mut self, key: String, value: String) {
        self.offered.remove(top(&key));
        self.flags.remove(top(&key));
        self.put(key, Value::String(value));
    }

    /// Set `key` from a flag of its own (`--api-key`): errors about it name
    /// that flag.
    pub fn insert_flag(&mut self, key: &str, value: String, flag: &str) {
        self.insert(key.to_string(), value);
        self.flags.insert(top(key).to_string(), flag.to_string());
    }

    /// Offer `key` from a flag shared by every component (`--endpoint`,
    /// `--file-sync`): used by a component whose config has the key, left
    /// out by one that has not. A later [`Options::insert`] of the same key
    /// wins.
    pub fn offer(&mut self, key: &str, value: String, flag: &str) {
        self.insert_flag(key, value, flag);
        self.offered.insert(top(key).to_string());
    }

    /// Whether no option is set.
    pub fn is_empty(&self) -> bool {
        self.tree.is_empty()
    }

    /// The top-level keys set, sorted.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.tree.keys().map(String::as_str)
    }

    /// Read the options into the config `T`; errors name the key where the
    /// user wrote it.
    pub fn read<T: DeserializeOwned>(&self) -> Result<T, BuildError> {
        if let Some(key) = &self.clash {
            return Err(self.locate(BuildError::invalid(
                &[key.as_str()],
                "given both as a value and as a mapping of options; give one",
            )));
        }
        let mut tree = self.tree.clone();
        if let Some(fields) = fields_of::<T>() {
            tree.retain(|k, _| !self.offered.contains(k) || fields.contains(&k.as_str()));
        }
        serde_path_to_error::deserialize(lenient::Lenient(Value::Object(tree)))
            .map_err(|e| self.locate(from_serde(e)))
    }

    /// Say where the option an error names was written.
    pub fn locate(&self, mut error: BuildError) -> BuildError {
        if let Some(key) = error.key_mut() {
            let shown = self.shown(key.segments());
            key.shown_as(shown);
        }
        error
    }

    /// How the user wrote the option at `segments`.
    fn shown(&self, segments: &[String]) -> String {
        let dotted = segments.join(".");
        match (&self.at, segments.first()) {
            (Some(at), _) => format!("{at}.{dotted}"),
            (None, Some(first)) => match self.flags.get(first) {
                Some(flag) if segments.len() == 1 => flag.clone(),
                _ => format!("--sink-option {dotted}"),
            },
            (None, None) => "the options".to_string(),
        }
    }

    fn put(&mut self, key: String, value: Value) {
        let Some(value) = without_empty(value) else {
            self.tree.remove(&key);
            return;
        };
        match key.split_once('.') {
            Some((parent, child)) if !parent.is_empty() && !child.is_empty() => {
                let slot = self
                    .tree
                    .entry(parent.to_string())
                    .or_insert_with(|| Value::Object(Map::new()));
                match slot {
                    Value::Object(map) => {
                        map.insert(child.to_string(), value);
                    }
                    _ => self.clash = Some(parent.to_string()),
                }
            }
            _ => match (self.tree.get_mut(&key), value) {
                // `rotate: {max_bytes: x}` beside `rotate.interval: y`.
                (Some(Value::Object(old)), Value::Object(new)) => old.extend(new),
                (Some(Value::Object(_)), _) => self.clash = Some(key),
                (_, value) => {
                    self.tree.insert(key, value);
                }
            },
        }
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Options {
    /// Options as from `--sink-option` flags.
    fn from_iter<I: IntoIterator<Item = (K, V)>>(pairs: I) -> Self {
        let mut options = Options::new();
        for (k, v) in pairs {
            options.insert(k.into(), v.into());
        }
        options
    }
}

fn top(key: &str) -> &str {
    key.split_once('.').map_or(key, |(parent, _)| parent)
}

/// `value` without null or empty-text entries; `None` if it is itself one.
fn without_empty(value: Value) -> Option<Value> {
    match value {
        Value::Null => None,
        Value::String(s) if s.is_empty() => None,
        Value::Object(map) => Some(Value::Object(
            map.into_iter()
                .filter_map(|(k, v)| without_empty(v).map(|v| (k, v)))
                .collect(),
        )),
        other => Some(other),
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "text",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// serde's error, with its path, as a [`BuildError`] naming the key.
fn from_serde(e: serde_path_to_error::Error<serde_json::Error>) -> BuildError {
    use serde_path_to_error::Segment;
    let mut path: Vec<String> = e
        .path()
        .iter()
        .filter_map(|s| match s {
            Segment::Map { key } => Some(key.clone()),
            Segment::Seq { index } => Some(index.to_string()),
            Segment::Enum { variant } => Some(variant.clone()),
            Segment::Unknown => None,
        })
        .collect();
    let message = e.into_inner().to_string();
    if let Some(rest) = message.strip_prefix("unknown field `") {
        if let Some((key, expected)) = rest.split_once("`, ") {
            if path.last().map(String::as_str) != Some(key) {
                path.push(key.to_string());
            }
            let expected = match expected {
                "there are no fields" => "this component takes none".to_string(),
                other => other.to_string(),
            };
            return BuildError::UnknownOption {
                key: OptionKey::new(&path),
                expected,
            };
        }
    }
    if path.is_empty() {
        BuildError::options(message)
    } else {
        BuildError::invalid(&path, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Debug, Deserialize, PartialEq, Default)]
    #[serde(deny_unknown_fields, rename_all = "kebab-case")]
    struct Config {
        endpoint: Option<String>,
        sync: Option<bool>,
        #[serde(default)]
        rotate: Rotate,
    }

    #[derive(Debug, Deserialize, PartialEq, Default)]
    #[serde(deny_unknown_fields)]
    struct Rotate {
        max_bytes: Option<ByteSize>,
        interval: Option<Span>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Nothing {}

    #[test]
    fn flags_and_yaml_read_into_the_same_config() {
        let flags: Options = [
            ("sync", "false"),
            ("rotate.max_bytes", "1KiB"),
            ("rotate.interval", "1h"),
        ]
        .into_iter()
        .collect();
        let yaml = Options::from_value(
            json!({"sync": false, "rotate": {"max_bytes": 1024}, "rotate.interval": "1h"}),
            "sinks.f.options",
        )
        .unwrap();
        let a: Config = flags.read().unwrap();
        assert_eq!(a, yaml.read().unwrap());
        assert_eq!(a.rotate.max_bytes, Some(ByteSize(1024)));
    }

    #[test]
    fn unknown_keys_are_refused_where_they_were_written() {
        let flags: Options = [("colour", "red")].into_iter().collect();
        let e = flags.read::<Config>().err().unwrap();
        assert_eq!(
            e.to_string(),
            "--sink-option colour: unknown option; expected one of `endpoint`, `sync`, `rotate`"
        );
        let yaml =
            Options::from_value(json!({"rotate": {"max_size": 1}}), "sinks.f.options").unwrap();
        let e = yaml.read::<Config>().err().unwrap();
        assert!(
            e.to_string().starts_with("sinks.f.options.rotate.max_size: unknown option; expected `max_bytes` or `interval`"),
            "{e}"
        );
        assert_eq!(e.key().unwrap().segments(), ["rotate", "max_size"]);
        let e = flags.read::<Nothing>().err().unwrap();
        assert_eq!(
            e.to_string(),
            "--sink-option colour: unknown option; this component takes none"
        );
    }

    #[test]
    fn bad_values_name_their_key_and_flag() {
        let mut flags = Options::new();
        flags.insert_flag("sync", "maybe".into(), "--file-sync");
        let e = flags.read::<Config>().err().unwrap();
        assert_eq!(
            e.to_string(),
            "--file-sync: expected true or false, not `maybe`"
        );
        let flags: Options = [("rotate.interval", "soon")].into_iter().collect();
        let e = flags.read::<Config>().err().unwrap();
        assert!(
            e.to_string()
                .starts_with("--sink-option rotate.interval: expected a duration"),
            "{e}"
        );
    }

    #[test]
    fn offered_keys_are_left_out_where_the_config_lacks_them() {
        let mut o = Options::new();
        o.offer("endpoint", "x".into(), "--endpoint");
        o.offer("api-key", "k".into(), "--api-key");
        assert_eq!(o.read::<Config>().unwrap().endpoint.as_deref(), Some("x"));
        assert!(o.read::<Nothing>().is_ok());
        // Named by the user for this component: refused.
        o.insert("api-key".into(), "k".into());
        assert!(o.read::<Config>().is_err());
    }

    #[test]
    fn empty_values_leave_options_unset_and_clashes_are_refused() {
        let yaml = Options::from_value(json!({"endpoint": "", "sync": null}), "s").unwrap();
        assert!(yaml.is_empty());
        let e = Options::from_value(json!([1]), "sinks.s.options")
            .err()
            .unwrap();
        assert_eq!(
            e.to_string(),
            "sinks.s.options: expected a mapping of option names to values, not a list"
        );
        let flags: Options = [("rotate", "x"), ("rotate.interval", "1h")]
            .into_iter()
            .collect();
        let e = flags.read::<Config>().err().unwrap();
        assert!(
            e.to_string()
                .starts_with("--sink-option rotate: given both"),
            "{e}"
        );
    }
}
