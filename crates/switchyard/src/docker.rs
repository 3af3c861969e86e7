//! `--docker`: container logs through the Docker Engine API as a source of
//! the dispatcher.

use anyhow::Context;
use clap::Args;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use switchyard_engine::metrics::{ComponentKind, Metrics};
use switchyard_engine::IntakeSender;
use switchyard_sources::docker::{DockerConfig, DockerCounters, DockerSource, DEFAULT_SOCKET};

/// Container logs options of `switchyard dispatcher`.
#[derive(Args, Debug, Clone)]
pub struct DockerArgs {
    /// Follow the stdout and stderr of running containers through the Engine
    /// API at this unix socket (the flag alone: /var/run/docker.sock).
    #[arg(
        long = "docker",
        value_name = "SOCKET",
        env = "DISPATCHER_DOCKER",
        num_args = 0..=1,
        default_missing_value = DEFAULT_SOCKET
    )]
    pub socket: Option<PathBuf>,
    /// Follow only containers whose name matches this glob (repeatable).
    #[arg(
        long = "docker-include",
        value_name = "GLOB",
        env = "DISPATCHER_DOCKER_INCLUDE",
        value_delimiter = ','
    )]
    pub include: Vec<String>,
    /// Pause between two listings of the running containers.
    #[arg(long, default_value = "5s", value_parser = crate::cli::duration)]
    pub docker_list_interval: Duration,
}

/// Start following containers, if `--docker` was given. Positions live in
/// `state_dir` beside the file tail's.
pub fn start(
    args: &DockerArgs,
    state_dir: &Path,
    intake: IntakeSender,
) -> anyhow::Result<Option<DockerSource>> {
    let Some(socket) = &args.socket else {
        return Ok(None);
    };
    let mut config = DockerConfig::new(socket.clone(), state_dir.to_path_buf());
    config.include = args.include.clone();
    config.list_interval = args.docker_list_interval;
    DockerSource::start(config, intake)
        .map_err(anyhow::Error::msg)
        .context("cannot start --docker (check --docker-include, --state-dir)")
        .map(Some)
}

/// Report what the source loses on `/metrics`, as `docker`.
pub fn report_discards(source: &DockerSource, metrics: &Metrics) {
    let c = source.counters();
    metrics.add_discards(
        "docker",
        ComponentKind::Source,
        Arc::new(move || c.discards()),
    );
}

/// The counters as JSON for `/stats`.
pub fn stats(c: &DockerCounters) -> Value {
    json!({
        "lines": c.lines.load(Relaxed),
        "containers_followed": c.containers_followed.load(Relaxed),
        "cut_lines": c.cut_lines.load(Relaxed),
        "bad_timestamps": c.bad_timestamps.load(Relaxed),
        "errors": c.errors.load(Relaxed),
    })
}
