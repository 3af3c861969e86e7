//! `--buffer-type`: whether the sink's events wait for it in memory (its
//! buffer alone) or on disk first, so that an accepted event survives a
//! crash and is delivered after a restart.

use clap::{Args, ValueEnum};
use std::path::PathBuf;

/// Where accepted events wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BufferType {
    /// The intake queue only: fast; a crash loses what it holds.
    Memory,
    /// A log on disk in front of the queue: sources hear "accepted" only
    /// once events are synced to disk.
    Disk,
}

/// Buffer options of `switchyard dispatcher`.
#[derive(Args, Debug, Clone)]
pub struct BufferArgs {
    /// `memory` (the intake queue alone) or `disk` (events are on disk before
    /// sources are told they are accepted; delivered after a crash).
    #[arg(
        long,
        env = "DISPATCHER_BUFFER_TYPE",
        value_enum,
        default_value = "memory"
    )]
    pub buffer_type: BufferType,
    /// Directory of the disk buffer (`--buffer-type disk`); one dispatcher per
    /// directory.
    #[arg(
        long,
        env = "DISPATCHER_BUFFER_DIR",
        default_value = "switchyard-buffer"
    )]
    pub buffer_dir: PathBuf,
    /// Bound of the disk buffer, bytes written and not yet delivered; when
    /// full, sources wait (HTTP ingest up to --ingest-wait, then 503).
    #[arg(long, env = "DISPATCHER_BUFFER_MAX_BYTES", default_value = "268435456", value_parser = clap::value_parser!(u64).range(1..))]
    pub buffer_max_bytes: u64,
}
