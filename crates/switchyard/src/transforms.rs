//! `--transforms FILE`: a YAML (or JSON) list of transforms applied to every
//! event before batching, built through the transform registry.

use anyhow::Context;
use clap::Args;
use std::path::{Path, PathBuf};
use switchyard_transforms::Chain;

/// Transform options of `switchyard dispatcher`.
#[derive(Args, Debug, Clone)]
pub struct TransformArgs {
    /// YAML list of transforms (filter, enrich, remap, dedupe, sample, llm), applied in order.
    #[arg(long, value_name = "FILE", env = "DISPATCHER_TRANSFORMS")]
    pub transforms: Option<PathBuf>,
}

/// Read and build the chain; errors name the file, the line of the
/// transform, the transform and the key.
pub fn load(path: &Path) -> anyhow::Result<Chain> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read --transforms `{}`", path.display()))?;
    let configs: Vec<serde_json::Value> = serde_norway::from_str(&text)
        .with_context(|| format!("--transforms `{}`", path.display()))?;
    switchyard_transforms::builtin()
        .build_chain(&configs)
        .map_err(|e| match item_line(&text, e.index) {
            Some(line) => anyhow::anyhow!("line {line}: {e}"),
            None => anyhow::Error::new(e),
        })
        .with_context(|| format!("--transforms `{}`", path.display()))
}

/// The 1-based line where item `index` of a block-style top-level list
/// starts (`- type: …`), if the file is written that way.
fn item_line(text: &str, index: usize) -> Option<usize> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| l.starts_with('-') && !l.starts_with("---"))
        .nth(index)
        .map(|(n, _)| n + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_line_of_the_transform() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("t.yaml");
        let text = "# comment\n- type: filter\n  condition: 'level == \"error\"'\n- type: llm\n  verbos: true\n";
        std::fs::write(&file, text).unwrap();
        let err = format!("{:#}", load(&file).err().unwrap());
        assert!(
            err.contains("line 4: transforms[1].verbos: unknown field `verbos`"),
            "{err}"
        );
        assert_eq!(item_line(text, 0), Some(2));
        assert_eq!(item_line("[{\"type\": \"llm\"}]", 0), None);
    }

    #[test]
    fn every_type_builds_from_the_list() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("t.yaml");
        let text = "- type: filter\n  condition: 'level == \"error\"'\n- type: enrich\n  labels: {team: core}\n- type: remap\n  ops: [{parse: json}]\n- type: dedupe\n  fields: [message]\n  window: 10s\n- type: sample\n  rate: 2\n- type: llm\n  redact_headers: [x-key]\n";
        std::fs::write(&file, text).unwrap();
        assert_eq!(load(&file).unwrap().len(), 6);
    }
}
