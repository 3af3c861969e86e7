//! Transform types by name: each registers its typed settings
//! ([`TransformConfig`]) under its type name (`type: filter`), so the
//! pipeline file, the dispatcher's `--transforms` list and `switchyard
//! plugins` read one set.
//!
//! ```
//! use serde_json::json;
//! use switchyard_transforms::registry::builtin;
//!
//! let registry = builtin();
//! assert!(registry.build("sample", json!({"rate": 10})).is_ok());
//! let err = registry.build("sample", json!({"rate": 10, "colour": "red"})).err().unwrap();
//! assert_eq!(err.key(), Some("colour"));
//! ```

use crate::config::{
    DedupeConfig, EnrichConfig, FilterConfig, LlmTransformConfig, RemapConfig, SampleConfig,
    TransformConfig,
};
use crate::error::{ChainError, TransformError};
use crate::Chain;
use serde_json::Value;
use switchyard_core::type_table::TypeTable;
use switchyard_core::Transform;

type BuildFn = fn(Value) -> Result<Box<dyn Transform>, TransformError>;

/// Transform types by name, in registration order.
pub struct TransformRegistry {
    types: TypeTable<BuildFn>,
}

impl Default for TransformRegistry {
    fn default() -> Self {
        Self {
            types: TypeTable::new("transform"),
        }
    }
}

/// Every transform type this crate provides.
pub fn builtin() -> TransformRegistry {
    let mut r = TransformRegistry::new();
    r.register::<FilterConfig>("filter", "keep log records matching a condition");
    r.register::<EnrichConfig>(
        "enrich",
        "add labels: static, the host name, environment variables",
    );
    r.register::<RemapConfig>(
        "remap",
        "rename, set, delete fields; parse JSON or logfmt messages",
    );
    r.register::<DedupeConfig>("dedupe", "drop repeated log records within a time window");
    r.register::<SampleConfig>(
        "sample",
        "keep one log record in N, and those matching always_keep",
    );
    r.register::<LlmTransformConfig>("llm", "turn captured LLM exchanges into LLM payloads");
    r
}

impl TransformRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Register `C` under `name`.
    ///
    /// # Panics
    /// When `name` is taken: two types under one name is a programming error
    /// that would make one of them unreachable.
    pub fn register<C: TransformConfig>(&mut self, name: &'static str, description: &'static str) {
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

    /// Read `settings` (the transform's mapping without its `type`) as the
    /// type `name` and build the transform.
    pub fn build(&self, name: &str, settings: Value) -> Result<Box<dyn Transform>, TransformError> {
        match self.types.get(name) {
            Some(build) => build(settings),
            None => Err(TransformError::UnknownType {
                name: name.to_string(),
                known: self.names().collect(),
            }),
        }
    }

    /// Build one transform from its whole mapping, `type` included.
    pub fn build_tagged(&self, config: &Value) -> Result<Box<dyn Transform>, TransformError> {
        let Value::Object(map) = config else {
            return Err(TransformError::config("", "expected a mapping with `type`"));
        };
        let mut settings = map.clone();
        let Some(Value::String(kind)) = settings.remove("type") else {
            let known: Vec<&str> = self.names().collect();
            return Err(TransformError::config(
                "type",
                format!("required, one of {}", known.join(", ")),
            ));
        };
        self.build(&kind, Value::Object(settings))
    }

    /// Build a chain from a list of mappings with `type`, in order; the
    /// error names the position and key.
    pub fn build_chain(&self, configs: &[Value]) -> Result<Chain, ChainError> {
        configs
            .iter()
            .enumerate()
            .map(|(index, c)| {
                self.build_tagged(c)
                    .map_err(|error| ChainError { index, error })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Chain::new)
    }
}

/// Build a chain with the [`builtin`] types; see
/// [`TransformRegistry::build_chain`].
pub fn build_chain(configs: &[Value]) -> Result<Chain, ChainError> {
    builtin().build_chain(configs)
}

/// Deserialize as `C` (keeping the key path of an error) and build.
fn read<C: TransformConfig>(settings: Value) -> Result<Box<dyn Transform>, TransformError> {
    let config: C = serde_path_to_error::deserialize(settings).map_err(config_error)?;
    config.build()
}

/// A deserialization error at its key path; an unknown key is named in the
/// path as well as in serde's message (`unknown field `x`, expected …`).
fn config_error(e: serde_path_to_error::Error<serde_json::Error>) -> TransformError {
    let path = e.path().to_string();
    let mut key = if path == "." { String::new() } else { path };
    let message = e.into_inner().to_string();
    if let Some(name) = unknown_field(&message) {
        if !key.ends_with(name) {
            if !key.is_empty() {
                key.push('.');
            }
            key.push_str(name);
        }
    }
    TransformError::config(key, message)
}

/// The name in serde's "unknown field `name`, expected …".
fn unknown_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("unknown field `")?;
    rest.split_once('`').map(|(name, _)| name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_type_lists_the_known_ones() {
        let err = builtin().build("nope", json!({})).err().unwrap();
        assert_eq!(err.key(), Some("type"));
        assert_eq!(
            err.to_string(),
            "type: unknown transform type `nope`; expected one of filter, enrich, remap, dedupe, sample, llm"
        );
    }

    #[test]
    fn unknown_key_names_its_path() {
        let r = builtin();
        let err = r
            .build("llm", json!({"verbose": true, "colour": 1}))
            .err()
            .unwrap();
        assert_eq!(err.key(), Some("colour"));
        assert!(err.message().contains("unknown field `colour`"), "{err}");
        assert!(err.message().contains("redact_headers"), "{err}");
        let err = r
            .build(
                "remap",
                json!({"ops": [{"rename": {"a": "b"}}, {"parse": "xml"}]}),
            )
            .err()
            .unwrap();
        assert_eq!(err.key(), Some("ops[1].parse"));
        let err = r.build("sample", json!({"rate": "often"})).err().unwrap();
        assert_eq!(err.key(), Some("rate"));
    }

    #[test]
    fn missing_type_is_named() {
        let err = builtin().build_tagged(&json!({"rate": 2})).err().unwrap();
        assert_eq!(err.key(), Some("type"));
        assert!(
            err.message().starts_with("required, one of filter, enrich"),
            "{err}"
        );
    }

    #[test]
    fn llm_defaults() {
        let c: LlmTransformConfig = serde_json::from_value(json!({})).unwrap();
        assert!(!c.verbose);
        assert!(c.redact_headers.is_none());
        let config = c.llm_config();
        assert!(!config.verbose);
        assert_eq!(
            config.max_body_bytes,
            crate::llm::LlmConfig::default().max_body_bytes
        );
        assert!(builtin().build("llm", json!({})).is_ok());
        let c: LlmTransformConfig =
            serde_json::from_value(json!({"verbose": true, "redact_headers": ["x-key"]})).unwrap();
        assert!(c.llm_config().verbose);
    }

    #[test]
    fn each_type_is_registered_once_and_described() {
        let names: Vec<_> = builtin().names().collect();
        assert_eq!(
            names,
            ["filter", "enrich", "remap", "dedupe", "sample", "llm"]
        );
        assert!(builtin().describe().all(|(_, d)| !d.is_empty()));
    }

    #[test]
    #[should_panic(expected = "registered twice")]
    fn a_name_registers_once() {
        let mut r = builtin();
        r.register::<FilterConfig>("filter", "again");
    }
}
