//! `--transforms FILE`: a YAML (or JSON) list of transforms applied to every
//! event before batching.

use anyhow::Context;
use clap::Args;
use std::path::{Path, PathBuf};
use switchyard_transforms::{build_chain, Chain, TransformConfig};

/// Transform options of `switchyard dispatcher`.
#[derive(Args, Debug, Clone)]
pub struct TransformArgs {
    /// YAML list of transforms (filter, enrich, remap, dedupe, sample), applied in order.
    #[arg(long, value_name = "FILE", env = "DISPATCHER_TRANSFORMS")]
    pub transforms: Option<PathBuf>,
}

/// Read and build the chain; errors name the file, the transform and the key.
pub fn load(path: &Path) -> anyhow::Result<Chain> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read --transforms `{}`", path.display()))?;
    let configs: Vec<TransformConfig> = serde_norway::from_str(&text)
        .with_context(|| format!("--transforms `{}`", path.display()))?;
    build_chain(&configs)
        .map_err(anyhow::Error::msg)
        .with_context(|| format!("--transforms `{}`", path.display()))
}
