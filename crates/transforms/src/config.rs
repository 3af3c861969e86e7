//! Each transform type's settings as written in configuration
//! (`#[serde(deny_unknown_fields)]`, so a misspelt key is refused with its
//! path), and how each builds its transform.

use crate::dedupe::Dedupe;
use crate::enrich::Enrich;
use crate::error::TransformError;
use crate::filter::Filter;
use crate::llm::{LlmConfig, LlmTransform, Redactor};
use crate::path::Path;
use crate::remap::{Op, Parse, Remap};
use crate::sample::Sample;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use switchyard_core::Transform;

/// A transform type's settings, read from its part of a pipeline file (the
/// mapping without `type`). Implementations derive `Deserialize` with
/// `#[serde(deny_unknown_fields)]`.
pub trait TransformConfig: DeserializeOwned + Send + 'static {
    /// Check the settings and make the transform; errors name the key.
    fn build(self) -> Result<Box<dyn Transform>, TransformError>;
}

/// `type: filter`: keep records matching `condition`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterConfig {
    /// The condition.
    pub condition: String,
}

impl TransformConfig for FilterConfig {
    fn build(self) -> Result<Box<dyn Transform>, TransformError> {
        Ok(Box::new(Filter::new(&self.condition)?))
    }
}

/// `type: enrich`: add labels.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrichConfig {
    /// Static labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Label that receives the host name.
    pub hostname: Option<String>,
    /// Label → environment variable.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Replace labels that are already there.
    #[serde(default)]
    pub overwrite: bool,
}

impl TransformConfig for EnrichConfig {
    fn build(self) -> Result<Box<dyn Transform>, TransformError> {
        Ok(Box::new(Enrich::new(
            &self.labels,
            self.hostname.as_deref(),
            &self.env,
            self.overwrite,
        )?))
    }
}

/// `type: remap`: rename/set/delete/parse, in order.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemapConfig {
    /// Steps, in order.
    pub ops: Vec<RemapOp>,
}

/// One remap step: exactly one of its keys.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum RemapOp {
    /// `{rename: {from: to}}`.
    Rename(BTreeMap<String, String>),
    /// `{set: {path: value}}`.
    Set(BTreeMap<String, Value>),
    /// `{delete: [paths]}`.
    Delete(Vec<String>),
    /// `{parse: json | logfmt}`.
    Parse(String),
}

/// `text` as a field path; the error is at `key`.
fn path(key: &str, text: &str) -> Result<Path, TransformError> {
    Path::parse(text).map_err(|e| TransformError::config(key, e.to_string()))
}

impl RemapOp {
    /// The step's operations, appended to `out`; errors name the op's key.
    fn build(self, out: &mut Vec<Op>) -> Result<(), TransformError> {
        match self {
            RemapOp::Rename(map) => {
                for (from, to) in map {
                    out.push(Op::Rename(path("rename", &from)?, path("rename", &to)?));
                }
            }
            RemapOp::Set(map) => {
                for (at, value) in map {
                    out.push(Op::Set(path("set", &at)?, value));
                }
            }
            RemapOp::Delete(paths) => {
                for at in paths {
                    out.push(Op::Delete(path("delete", &at)?));
                }
            }
            RemapOp::Parse(how) => out.push(Op::Parse(match how.as_str() {
                "json" => Parse::Json,
                "logfmt" => Parse::Logfmt,
                other => {
                    return Err(TransformError::config(
                        "parse",
                        format!("`{other}` is not json or logfmt"),
                    ))
                }
            })),
        }
        Ok(())
    }
}

impl TransformConfig for RemapConfig {
    fn build(self) -> Result<Box<dyn Transform>, TransformError> {
        let mut built = Vec::new();
        for (i, op) in self.ops.into_iter().enumerate() {
            op.build(&mut built)
                .map_err(|e| e.within(&format!("ops[{i}]")))?;
        }
        Ok(Box::new(Remap::new(built)))
    }
}

/// `type: dedupe`: drop repeats within a window.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DedupeConfig {
    /// Paths compared.
    pub fields: Vec<String>,
    /// Window, e.g. `10s`.
    pub window: String,
    /// Keys remembered at most.
    #[serde(default = "default_dedupe_entries")]
    pub max_entries: usize,
}

fn default_dedupe_entries() -> usize {
    100_000
}

impl TransformConfig for DedupeConfig {
    fn build(self) -> Result<Box<dyn Transform>, TransformError> {
        let paths = self
            .fields
            .iter()
            .map(|f| path("fields", f))
            .collect::<Result<Vec<_>, _>>()?;
        let window = humantime::parse_duration(&self.window)
            .map_err(|e| TransformError::config("window", format!("`{}`: {e}", self.window)))?;
        Ok(Box::new(Dedupe::new(paths, window, self.max_entries)?))
    }
}

/// `type: sample`: keep one in `rate`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SampleConfig {
    /// One in how many.
    pub rate: u64,
    /// Condition of records never sampled out.
    pub always_keep: Option<String>,
}

impl TransformConfig for SampleConfig {
    fn build(self) -> Result<Box<dyn Transform>, TransformError> {
        Ok(Box::new(Sample::new(
            self.rate,
            self.always_keep.as_deref(),
        )?))
    }
}

/// `type: llm`: turn captured LLM exchanges into the payload the LLM sinks
/// read.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlmTransformConfig {
    /// Include debug information (the response headers) in payloads.
    #[serde(default)]
    pub verbose: bool,
    /// Captured headers whose values are redacted (replaces the default
    /// list).
    pub redact_headers: Option<Vec<String>>,
}

impl LlmTransformConfig {
    /// The transformer's settings.
    pub fn llm_config(&self) -> LlmConfig {
        let mut config = LlmConfig {
            verbose: self.verbose,
            ..LlmConfig::default()
        };
        if let Some(names) = &self.redact_headers {
            config.redact = Redactor::new(names);
        }
        config
    }
}

impl TransformConfig for LlmTransformConfig {
    fn build(self) -> Result<Box<dyn Transform>, TransformError> {
        Ok(Box::new(LlmTransform::default_with(self.llm_config())))
    }
}
