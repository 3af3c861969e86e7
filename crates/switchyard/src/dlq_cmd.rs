//! `switchyard dlq list | show | replay | purge`: look into and act on a
//! dead-letter queue directory. Run `replay` and `purge` while no dispatcher
//! is using the directory; `list` and `show` only read.

use crate::cli::duration;
use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use switchyard_core::SinkConfig;
use switchyard_engine::delivery::{DeliveryStats, RateLimit, RateLimitLayer, RateUnit};
use switchyard_engine::dlq::{self, Dlq, DlqConfig};
use time::OffsetDateTime;

#[derive(Subcommand)]
pub enum DlqCommand {
    /// One line per record: id, sink, error, attempts, last failure.
    List(DirArg),
    /// One record in full, as JSON.
    Show(ShowArgs),
    /// Send records again, to their own service or to another; delivered
    /// records leave the queue, failed ones stay with one more attempt.
    Replay(Box<ReplayArgs>),
    /// Remove records without sending them.
    Purge(PurgeArgs),
}

#[derive(Args)]
pub struct DirArg {
    /// The dead-letter queue directory (the dispatcher's --dlq-dir).
    #[arg(long, env = "DISPATCHER_DLQ_DIR", default_value = "switchyard-dlq")]
    pub dir: PathBuf,
}

#[derive(Args)]
pub struct ShowArgs {
    #[command(flatten)]
    pub dir: DirArg,
    /// Record id (see `switchyard dlq list`).
    pub id: u64,
}

#[derive(Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    pub dir: DirArg,
    /// Replay this record (repeatable).
    #[arg(long = "id", required_unless_present = "all", conflicts_with = "all")]
    pub ids: Vec<u64>,
    /// Replay every record.
    #[arg(long)]
    pub all: bool,
    /// Service to send to (see `switchyard plugins`); default: each record's own.
    #[arg(long)]
    pub to: Option<String>,
    /// File path or API endpoint of the service. Also read from LLM_PROXY_ENDPOINT.
    #[arg(long, env = "DISPATCHER_ENDPOINT")]
    pub endpoint: Option<String>,
    /// API key for external services (never logged; never stored in the queue).
    #[arg(long, env = "LLM_PROXY_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Extra sink option, repeatable (as for the dispatcher).
    #[arg(long = "sink-option", value_name = "KEY=VALUE", value_parser = crate::cli::key_value)]
    pub sink_options: Vec<(String, String)>,
    /// Records sent per request.
    #[arg(long, default_value = "100")]
    pub batch_size: usize,
    /// Deadline of one request.
    #[arg(long, default_value = "30s", value_parser = duration)]
    pub timeout: Duration,
    /// Send at most this many events per second (for a backend with a rate
    /// limit of its own); unlimited when unset.
    #[arg(long, value_name = "EVENTS_PER_SECOND", value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_limit: Option<u32>,
}

#[derive(Args)]
pub struct PurgeArgs {
    #[command(flatten)]
    pub dir: DirArg,
    /// Remove this record (repeatable).
    #[arg(long = "id", conflicts_with_all = ["all", "older_than"])]
    pub ids: Vec<u64>,
    /// Remove every record.
    #[arg(long, conflicts_with = "older_than")]
    pub all: bool,
    /// Remove records that first failed longer ago than this (e.g. 12h).
    #[arg(long, value_parser = duration)]
    pub older_than: Option<Duration>,
}

fn open(dir: &DirArg) -> anyhow::Result<Dlq> {
    // Retention is the dispatcher's business; here nothing expires on open.
    let config = DlqConfig {
        dir: dir.dir.clone(),
        max_size: usize::MAX,
        retention_period: Duration::from_secs(u64::MAX / 4),
        auto_retry: false,
        ..DlqConfig::default()
    };
    Dlq::open(config).with_context(|| {
        format!(
            "cannot open the dead-letter queue in `{}`",
            dir.dir.display()
        )
    })
}

pub fn main(command: DlqCommand) -> anyhow::Result<()> {
    match command {
        DlqCommand::List(dir) => list(&open(&dir)?),
        DlqCommand::Show(args) => {
            let dlq = open(&args.dir)?;
            let Some(record) = dlq.get(args.id)? else {
                bail!("no record {} in `{}`", args.id, args.dir.dir.display());
            };
            crate::process::stdout::print_line(&serde_json::to_string_pretty(&record)?)
        }
        DlqCommand::Replay(args) => crate::process::run(replay(*args)),
        DlqCommand::Purge(args) => purge(args),
    }
}

fn list(dlq: &Dlq) -> anyhow::Result<()> {
    // A closed pipe (`| head`) ends the listing quietly (see `main`).
    let mut out = crate::process::stdout::stdout();
    writeln!(
        out,
        "{:<8} {:<12} {:<60} {:>8}  LAST FAILURE",
        "ID", "SINK", "ERROR", "ATTEMPTS"
    )?;
    for s in dlq.list() {
        let kind = serde_json::to_value(s.error_kind)?;
        let mut error = format!("{}: {}", kind.as_str().unwrap_or("?"), s.error);
        if error.chars().count() > 60 {
            error = error.chars().take(59).chain(['…']).collect();
        }
        writeln!(
            out,
            "{:<8} {:<12} {:<60} {:>8}  {}",
            s.id, s.sink, error, s.attempts, s.last_failure
        )?;
    }
    out.flush()?;
    Ok(())
}

async fn replay(args: ReplayArgs) -> anyhow::Result<()> {
    let dlq = open(&args.dir)?;
    let chosen: Vec<_> = dlq
        .list()
        .into_iter()
        .filter(|s| args.all || args.ids.contains(&s.id))
        .collect();
    if let Some(missing) = args
        .ids
        .iter()
        .find(|id| !chosen.iter().any(|s| s.id == **id))
    {
        bail!("no record {missing} in `{}`", args.dir.dir.display());
    }
    // Group by destination: --to for all, else each record's own service.
    let mut by_service: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for s in &chosen {
        let service = args.to.clone().unwrap_or_else(|| s.sink.clone());
        by_service.entry(service).or_default().push(s.id);
    }
    let mut cfg = SinkConfig::new();
    let endpoint = args.endpoint.clone().or_else(|| {
        std::env::var("LLM_PROXY_ENDPOINT")
            .ok()
            .filter(|v| !v.is_empty())
    });
    if let Some(e) = endpoint {
        cfg.offer("endpoint", e, "--endpoint");
    }
    if let Some(k) = &args.api_key {
        cfg.offer("api-key", k.clone(), "--api-key");
    }
    for (k, v) in &args.sink_options {
        cfg.insert(k.clone(), v.clone());
    }
    let total = chosen.len() as u64;
    let rate = RateLimitLayer::new(
        args.rate_limit.map(|per_second| RateLimit {
            per_second,
            unit: RateUnit::Events,
        }),
        Arc::new(DeliveryStats::default()),
    );
    let mut summary = dlq::ReplaySummary::default();
    let registry = switchyard_sinks::builtin();
    for (service, ids) in by_service {
        let sink = registry
            .build(&service, &cfg)
            .with_context(|| format!("cannot start service `{service}` for replay — check --to, --endpoint and --sink-option"))?;
        let base = summary.replayed + summary.failed;
        let s = dlq::replay(
            &dlq,
            sink.as_ref(),
            &rate,
            &ids,
            args.batch_size,
            args.timeout,
            |done, _| {
                eprint!("\rreplaying: {}/{total}", base + done);
            },
        )
        .await?;
        if let Err(e) = sink.close().await {
            eprintln!();
            bail!("service `{service}` failed to close: {e}");
        }
        summary.replayed += s.replayed;
        summary.failed += s.failed;
    }
    if total > 0 {
        eprintln!();
    }
    crate::process::stdout::print_line(&format!(
        "replayed {}, failed {}",
        summary.replayed, summary.failed
    ))?;
    if summary.failed > 0 {
        bail!("{} record(s) could not be replayed; they stay in the queue (see `switchyard dlq list`)", summary.failed);
    }
    Ok(())
}

fn purge(args: PurgeArgs) -> anyhow::Result<()> {
    let dlq = open(&args.dir)?;
    let n = if args.all {
        let ids: Vec<u64> = dlq.list().iter().map(|s| s.id).collect();
        dlq.remove(&ids)?
    } else if let Some(age) = args.older_than {
        match dlq::store::cutoff(OffsetDateTime::now_utc(), age) {
            Some(cutoff) => dlq.remove_older_than(cutoff)?,
            None => 0,
        }
    } else if !args.ids.is_empty() {
        dlq.remove(&args.ids)?
    } else {
        bail!("say what to purge: --id ID, --all or --older-than DURATION");
    };
    crate::process::stdout::print_line(&format!("purged {n}"))
}
