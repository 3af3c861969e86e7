//! `--tail`: follow files as a source of the dispatcher.

use anyhow::Context;
use clap::Args;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use switchyard_engine::metrics::{ComponentKind, Metrics};
use switchyard_engine::supervise::Health;
use switchyard_engine::IntakeSender;
use switchyard_sources::file_tail::{
    MultilineConfig, ReadFrom, TailConfig, TailCounters, TailSource,
};

/// File tail options of `switchyard dispatcher`.
#[derive(Args, Debug, Clone)]
pub struct TailArgs {
    /// Follow files matching this glob (repeatable), one log record per line.
    #[arg(
        long = "tail",
        value_name = "GLOB",
        env = "DISPATCHER_TAIL",
        value_delimiter = ','
    )]
    pub globs: Vec<String>,
    /// Where tailed files' delivered positions are kept across restarts.
    #[arg(long, env = "DISPATCHER_STATE_DIR", default_value = "switchyard-state")]
    pub state_dir: PathBuf,
    /// Where to start in files that exist at start-up and have no position yet.
    #[arg(long, env = "DISPATCHER_TAIL_FROM", default_value = "head", value_parser = ["head", "tail"])]
    pub tail_from: String,
    /// Read tailed lines that are JSON objects as structured records.
    #[arg(long, env = "DISPATCHER_TAIL_JSON")]
    pub tail_json: bool,
    /// How long a tailed line without its newline waits before it is sent as is.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub tail_partial_timeout: Duration,
    /// Join tailed lines into multiline events: a line matching this regular
    /// expression starts an event, the lines after it that do not match are
    /// appended (stack traces, tracebacks).
    #[arg(long, value_name = "REGEX", env = "DISPATCHER_TAIL_MULTILINE_START")]
    pub tail_multiline_start: Option<String>,
    /// Most lines in one multiline event; longer events are cut and counted.
    #[arg(long, default_value = "500")]
    pub tail_multiline_max_lines: usize,
    /// Most bytes in one multiline event; longer events are cut and counted.
    #[arg(long, default_value = "262144")]
    pub tail_multiline_max_bytes: usize,
}

/// Start following, if `--tail` was given; a failure of the reading thread
/// is reported on `health` as `name`.
pub fn start(
    args: &TailArgs,
    intake: IntakeSender,
    health: &Health,
    name: &str,
) -> anyhow::Result<Option<TailSource>> {
    if args.globs.is_empty() {
        return Ok(None);
    }
    let runtime = tokio::runtime::Handle::current();
    TailSource::spawn_supervised(config(args), intake, runtime, Some(health.register(name)))
        .map_err(anyhow::Error::msg)
        .context("cannot start --tail (check --tail and the --tail-multiline-* flags)")
        .map(Some)
}

/// The tail source's settings from its flags.
pub fn config(args: &TailArgs) -> TailConfig {
    let mut config = TailConfig::new(args.globs.clone(), args.state_dir.clone());
    config.read_from = match args.tail_from.as_str() {
        "tail" => ReadFrom::Tail,
        _ => ReadFrom::Head,
    };
    config.parse_json = args.tail_json;
    config.partial_line_timeout = args.tail_partial_timeout;
    config.multiline = args
        .tail_multiline_start
        .as_ref()
        .map(|start| MultilineConfig {
            max_lines: args.tail_multiline_max_lines,
            max_bytes: args.tail_multiline_max_bytes,
            ..MultilineConfig::new(start.clone())
        });
    config
}

/// Report what the tail loses on `/metrics`, as `component`.
pub fn report_discards(source: &TailSource, metrics: &Metrics, component: &str) {
    let c = source.counters();
    metrics.add_discards(
        component,
        ComponentKind::Source,
        Arc::new(move || c.discards()),
    );
}

/// The tail counters as JSON for `/stats`.
pub fn stats(c: &TailCounters) -> Value {
    json!({
        "lines": c.lines.load(Relaxed),
        "files_opened": c.files_opened.load(Relaxed),
        "truncations": c.truncations.load(Relaxed),
        "json_errors": c.json_errors.load(Relaxed),
        "io_errors": c.io_errors.load(Relaxed),
        "multiline_cut": c.multiline_cut.load(Relaxed),
        "restarts": c.restarts.load(Relaxed),
    })
}
