//! Source types by name: each registers a typed configuration
//! ([`SourceConfig`]) under its type name (`type: file`), so the pipeline
//! file, `validate` and the documentation read one set.
//!
//! ```
//! use serde::Deserialize;
//! use switchyard_engine::source::{
//!     RunningSource, Source, SourceConfig, SourceContext, SourceError, SourceRegistry,
//! };
//!
//! /// `type: nothing`: a source that never produces anything.
//! #[derive(Deserialize)]
//! #[serde(deny_unknown_fields)]
//! struct Nothing {
//!     #[serde(default)]
//!     queue_size: Option<usize>,
//! }
//!
//! impl SourceConfig for Nothing {
//!     fn build(self) -> Result<Box<dyn Source>, SourceError> {
//!         if self.queue_size == Some(0) {
//!             return Err(SourceError::config("queue_size", "must be greater than 0"));
//!         }
//!         Ok(Box::new(self))
//!     }
//! }
//!
//! #[async_trait::async_trait]
//! impl Source for Nothing {
//!     fn queue_size(&self) -> usize {
//!         self.queue_size.unwrap_or(100)
//!     }
//!     async fn start(
//!         self: Box<Self>,
//!         _cx: SourceContext,
//!     ) -> Result<Box<dyn RunningSource>, SourceError> {
//!         unimplemented!("not started in this example")
//!     }
//! }
//!
//! let mut registry = SourceRegistry::new();
//! registry.register::<Nothing>("nothing", "produces nothing");
//! let built = registry.build("nothing", serde_json::json!({"queue_size": 5})).unwrap();
//! assert_eq!(built.queue_size(), 5);
//! let err = registry.build("nothing", serde_json::json!({"colour": "red"})).err().unwrap();
//! assert_eq!(err.key(), Some("colour"));
//! ```

use super::{Source, SourceError};
use serde::de::DeserializeOwned;
use serde_json::Value;
use switchyard_core::type_table::TypeTable;

/// A source type's settings, read from its part of a pipeline file (or made
/// from flags). Implementations derive `Deserialize` with
/// `#[serde(deny_unknown_fields)]`, so a misspelt key is an error that names
/// it.
pub trait SourceConfig: DeserializeOwned + Send + 'static {
    /// Check the settings and make the source, without effects: nothing is
    /// bound, opened or spawned until [`Source::start`]. Errors name the key.
    fn build(self) -> Result<Box<dyn Source>, SourceError>;
}

type BuildFn = fn(Value) -> Result<Box<dyn Source>, SourceError>;

/// Source types by name, in registration order.
pub struct SourceRegistry {
    types: TypeTable<BuildFn>,
}

impl Default for SourceRegistry {
    fn default() -> Self {
        Self {
            types: TypeTable::new("source"),
        }
    }
}

impl SourceRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Register `C` under `name`.
    ///
    /// # Panics
    /// When `name` is taken: two types under one name is a programming error
    /// that would make one of them unreachable.
    pub fn register<C: SourceConfig>(&mut self, name: &'static str, description: &'static str) {
        self.types.register(name, description, read::<C>);
    }

    /// The registered type names, in registration order.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.types.names()
    }

    /// Each type with its one-line description.
    pub fn describe(&self) -> impl Iterator<Item = (&'static str, &'static str)> + '_ {
        self.types.describe()
    }

    /// Read `settings` (the source's mapping without its `type`) as the
    /// type `name` and build the source. Nothing starts.
    pub fn build(&self, name: &str, settings: Value) -> Result<Box<dyn Source>, SourceError> {
        match self.types.get(name) {
            Some(build) => build(settings),
            None => Err(SourceError::UnknownType {
                name: name.to_string(),
                known: self.names().collect(),
            }),
        }
    }
}

/// Deserialize as `C` (keeping the key path of an error) and build.
fn read<C: SourceConfig>(settings: Value) -> Result<Box<dyn Source>, SourceError> {
    let config: C = serde_path_to_error::deserialize(settings).map_err(config_error)?;
    config.build()
}

/// A deserialization error as a [`SourceError::Config`] at its key path; an
/// unknown key names itself ("unknown key; expected one of …").
fn config_error(e: serde_path_to_error::Error<serde_json::Error>) -> SourceError {
    let path = e.path().to_string();
    let mut keys: Vec<String> = if path == "." {
        Vec::new()
    } else {
        path.split('.').map(str::to_string).collect()
    };
    let mut message = e.into_inner().to_string();
    if let Some(key) = unknown_field(&message) {
        if keys.last() != Some(&key) {
            keys.push(key);
        }
        message = message
            .split_once(", expected")
            .map(|(_, rest)| format!("unknown key; expected{rest}"))
            .unwrap_or(message);
    }
    SourceError::config(keys.join("."), message)
}

/// The key of serde's "unknown field `x`, expected ..." message.
fn unknown_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    Some(rest.split('`').next()?.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{RunningSource, SourceContext};
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Probe {
        inner: Option<Inner>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        #[allow(dead_code)] // read to check its type
        start: String,
    }

    impl SourceConfig for Probe {
        fn build(self) -> Result<Box<dyn Source>, SourceError> {
            Ok(Box::new(self))
        }
    }

    #[async_trait::async_trait]
    impl Source for Probe {
        fn queue_size(&self) -> usize {
            if self.inner.is_some() {
                2
            } else {
                1
            }
        }
        async fn start(
            self: Box<Self>,
            _cx: SourceContext,
        ) -> Result<Box<dyn RunningSource>, SourceError> {
            Err(SourceError::start("", "a probe does not start"))
        }
    }

    fn registry() -> SourceRegistry {
        let mut r = SourceRegistry::new();
        r.register::<Probe>("probe", "checks the registry");
        r.register::<Probe>("another", "a second name");
        r
    }

    #[test]
    fn builds_by_name_in_registration_order() {
        let r = registry();
        assert_eq!(r.names().collect::<Vec<_>>(), ["probe", "another"]);
        let built = r
            .build("probe", json!({"inner": {"start": "x"}}))
            .ok()
            .unwrap();
        assert_eq!(built.queue_size(), 2);
        let err = r.build("pigeon", json!({})).err().unwrap();
        assert_eq!(
            err.to_string(),
            "`pigeon` is not a source type; expected one of probe, another"
        );
    }

    #[test]
    fn unknown_keys_are_refused_with_their_path() {
        let err = r_err(json!({"inner": {"start": "x", "stop": 1}}));
        assert_eq!(err.key(), Some("inner.stop"));
        assert_eq!(err.message(), "unknown key; expected `start`");
        let err = r_err(json!({"colour": "red"}));
        assert_eq!(err.key(), Some("colour"));
        let err = r_err(json!({"inner": {"start": 5}}));
        assert_eq!(err.key(), Some("inner.start"));
        assert!(
            err.message().starts_with("invalid type: integer `5`"),
            "{err}"
        );
    }

    fn r_err(v: Value) -> SourceError {
        registry().build("probe", v).err().unwrap()
    }

    #[test]
    #[should_panic(expected = "registered twice")]
    fn a_name_registers_once() {
        let mut r = registry();
        r.register::<Probe>("probe", "again");
    }
}
