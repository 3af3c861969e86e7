//! `--buffer-type`: whether sources' events wait for the engine in memory
//! (the intake queue alone) or on disk first, so that an accepted event
//! survives a crash and is delivered after a restart.

use anyhow::Context;
use clap::{Args, ValueEnum};
use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;
use switchyard_engine::disk_buffer::{DiskBuffer, DiskBufferConfig, DiskBufferHandle};
use switchyard_engine::IntakeSender;
use tracing::info;

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

/// Put the disk buffer in front of `intake` when asked for; returns the
/// sender the sources use and the buffer to finish at shutdown.
pub fn start(
    args: &BufferArgs,
    intake: IntakeSender,
) -> anyhow::Result<(IntakeSender, Option<DiskBufferHandle>)> {
    if args.buffer_type == BufferType::Memory {
        return Ok((intake, None));
    }
    let config = DiskBufferConfig::new(&args.buffer_dir, args.buffer_max_bytes);
    let buffer = DiskBuffer::open(config)?;
    let (tx, handle) = buffer.start(intake).with_context(|| {
        format!(
            "cannot start disk buffer in `{}` — check --buffer-dir",
            args.buffer_dir.display()
        )
    })?;
    info!(dir = %args.buffer_dir.display(), max_bytes = args.buffer_max_bytes, "disk buffer open");
    Ok((tx, Some(handle)))
}

/// `/stats` section of the disk buffer (`null` in memory mode).
pub fn stats_fn(handle: Option<&DiskBufferHandle>) -> impl Fn() -> Value + Send + Sync + 'static {
    let snapshot = handle.map(|h| h.stats_fn());
    move || match &snapshot {
        Some(f) => serde_json::to_value(f()).unwrap_or(Value::Null),
        None => Value::Null,
    }
}

/// Wait for the last acknowledgements and persist the pointer; the text to
/// add to the final counters line.
pub async fn finish(handle: Option<DiskBufferHandle>) -> String {
    let Some(h) = handle else {
        return String::new();
    };
    let s = h.finish(Duration::from_secs(10)).await;
    format!(
        " disk_written={} disk_read={} disk_corrupt_records={} disk_pending_bytes={}",
        s.written, s.read, s.corrupt_records, s.used_bytes
    )
}
