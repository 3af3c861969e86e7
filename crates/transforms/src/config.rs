//! Transform settings as they appear in configuration files, and building a
//! chain from them. Every error names the transform's position and key.

use crate::dedupe::Dedupe;
use crate::enrich::Enrich;
use crate::filter::Filter;
use crate::path::Path;
use crate::remap::{Op, Parse, Remap};
use crate::sample::Sample;
use crate::Chain;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use switchyard_core::Transform;

/// One transform's settings, told apart by `type`.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum TransformConfig {
    /// Keep records matching `condition`.
    Filter {
        /// The condition.
        condition: String,
    },
    /// Add labels.
    Enrich {
        /// Static labels.
        #[serde(default)]
        labels: BTreeMap<String, String>,
        /// Label that receives the host name.
        hostname: Option<String>,
        /// Label → environment variable.
        #[serde(default)]
        env: BTreeMap<String, String>,
        /// Replace labels that are already there.
        #[serde(default)]
        overwrite: bool,
    },
    /// Rename/set/delete/parse.
    Remap {
        /// Steps, in order.
        ops: Vec<RemapOp>,
    },
    /// Drop repeats within a window.
    Dedupe {
        /// Paths compared.
        fields: Vec<String>,
        /// Window, e.g. `10s`.
        window: String,
        /// Keys remembered at most.
        #[serde(default = "default_dedupe_entries")]
        max_entries: usize,
    },
    /// Keep one in `rate`.
    Sample {
        /// One in how many.
        rate: u64,
        /// Condition of records never sampled out.
        always_keep: Option<String>,
    },
}

fn default_dedupe_entries() -> usize {
    100_000
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

impl TransformConfig {
    /// Build the transform; errors name the key at fault.
    pub fn build(&self) -> Result<Box<dyn Transform>, String> {
        Ok(match self {
            TransformConfig::Filter { condition } => {
                Box::new(Filter::new(condition).map_err(|e| format!("condition: {e}"))?)
            }
            TransformConfig::Enrich {
                labels,
                hostname,
                env,
                overwrite,
            } => Box::new(Enrich::new(labels, hostname.as_deref(), env, *overwrite)?),
            TransformConfig::Remap { ops } => {
                let mut built = Vec::new();
                for (i, op) in ops.iter().enumerate() {
                    let at = |key: &str, e: String| format!("ops[{i}].{key}: {e}");
                    match op {
                        RemapOp::Rename(map) => {
                            for (from, to) in map {
                                built.push(Op::Rename(
                                    Path::parse(from).map_err(|e| at("rename", e.into()))?,
                                    Path::parse(to).map_err(|e| at("rename", e.into()))?,
                                ));
                            }
                        }
                        RemapOp::Set(map) => {
                            for (path, value) in map {
                                built.push(Op::Set(
                                    Path::parse(path).map_err(|e| at("set", e.into()))?,
                                    value.clone(),
                                ));
                            }
                        }
                        RemapOp::Delete(paths) => {
                            for path in paths {
                                built.push(Op::Delete(
                                    Path::parse(path).map_err(|e| at("delete", e.into()))?,
                                ));
                            }
                        }
                        RemapOp::Parse(how) => built.push(Op::Parse(match how.as_str() {
                            "json" => Parse::Json,
                            "logfmt" => Parse::Logfmt,
                            other => {
                                return Err(at("parse", format!("`{other}` is not json or logfmt")))
                            }
                        })),
                    }
                }
                Box::new(Remap::new(built))
            }
            TransformConfig::Dedupe {
                fields,
                window,
                max_entries,
            } => {
                let paths = fields
                    .iter()
                    .map(|f| Path::parse(f))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| format!("fields: {e}"))?;
                let window = humantime::parse_duration(window)
                    .map_err(|e| format!("window: `{window}`: {e}"))?;
                Box::new(Dedupe::new(paths, window, *max_entries)?)
            }
            TransformConfig::Sample { rate, always_keep } => {
                Box::new(Sample::new(*rate, always_keep.as_deref())?)
            }
        })
    }
}

/// Build a chain from a list; errors start with `transforms[i]`.
pub fn build_chain(configs: &[TransformConfig]) -> Result<Chain, String> {
    configs
        .iter()
        .enumerate()
        .map(|(i, c)| c.build().map_err(|e| format!("transforms[{i}].{e}")))
        .collect::<Result<Vec<_>, _>>()
        .map(Chain::new)
}
