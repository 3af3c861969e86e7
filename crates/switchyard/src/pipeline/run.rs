//! `switchyard run --config FILE` and `switchyard validate --config FILE`.

use super::admin::{self, AdminState, SinkView};
use super::validate::{check_bytes, Checked};
use anyhow::Context;
use clap::Args;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use switchyard_core::SinkConfig;
use switchyard_engine::disk_buffer::DiskBufferConfig;
use switchyard_engine::metrics::Metrics;
use switchyard_engine::source::SourceContext;
use switchyard_engine::supervise::Health;
use switchyard_engine::topology::{Observers, Pipeline, Shape, SinkNode, TransformNode};
use switchyard_engine::SinkPolicy;
use tokio::sync::watch;
use tracing::info;

/// Options of `run` and `validate`.
#[derive(Args, Debug)]
pub struct ConfigArgs {
    /// The pipeline file (YAML).
    #[arg(long, short = 'c', env = "SWITCHYARD_CONFIG")]
    pub config: PathBuf,
}

fn load(path: &Path) -> anyhow::Result<Checked> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read `{}`", path.display()))?;
    let registry = switchyard_sinks::builtin();
    check_bytes(&bytes, |k| std::env::var(k).ok(), &registry).map_err(|errors| {
        for e in &errors {
            eprintln!("{}: {e}", path.display());
        }
        anyhow::anyhow!(
            "`{}` has {} error(s); nothing was started",
            path.display(),
            errors.len()
        )
    })
}

/// `switchyard validate`.
pub fn validate(args: ConfigArgs) -> anyhow::Result<()> {
    let c = load(&args.config)?;
    crate::process::stdout::print_line(&format!(
        "{}: ok ({} source(s), {} transform(s), {} sink(s))",
        args.config.display(),
        c.sources.len(),
        c.transforms.len(),
        c.sinks.len()
    ))
}

/// `switchyard run`.
pub fn main(args: ConfigArgs) -> anyhow::Result<()> {
    let checked = load(&args.config)?;
    crate::process::run(run(checked))
}

async fn run(c: Checked) -> anyhow::Result<()> {
    let shutdown_timeout = c.shutdown_timeout;
    let registry = switchyard_sinks::builtin();
    let metrics = Arc::new(Metrics::new());
    // On by default, as for `switchyard dispatcher`; its directory is made
    // only with the first record.
    let on_disk = disk_backed_sources(&c);
    let dlq = match Some(c.dlq.unwrap_or_default()).filter(|d| d.enabled) {
        Some(config) => {
            let dir = config.dir.display().to_string();
            Some(Arc::new(
                switchyard_engine::Dlq::open(config)
                    .with_context(|| format!("dlq: cannot open `{dir}`"))?,
            ))
        }
        None => None,
    };
    let mut observers = Observers::default();
    for (name, _) in &c.sources {
        observers
            .processing
            .insert(name.clone(), metrics.processing(name));
    }
    let mut sinks = Vec::new();
    for (name, s) in c.sinks {
        let options = SinkConfig::from_value(s.options, &format!("sinks.{name}.options"))?;
        let sink = registry
            .build(&s.kind, &options)
            .with_context(|| format!("sinks.{name}: cannot start `{}`", s.kind))?;
        observers
            .queue_wait
            .insert(name.clone(), metrics.queue_wait(&name));
        observers
            .delivery
            .insert(name.clone(), metrics.delivery(&name));
        observers
            .worker_task
            .insert(name.clone(), metrics.worker_task(&name));
        let disk = match s.buffer.kind {
            super::schema::BufferKind::Memory => None,
            super::schema::BufferKind::Disk => {
                let dir = s
                    .buffer
                    .dir
                    .clone()
                    .unwrap_or_else(|| PathBuf::from("switchyard-buffer").join(&name));
                Some(DiskBufferConfig::new(dir, s.buffer.max_bytes as u64))
            }
        };
        let sink_name = name.clone();
        sinks.push(SinkNode {
            name,
            inputs: s.inputs,
            sink,
            buffer: s.buffer.config(),
            policy: SinkPolicy {
                batch_size: s.batch.max_events,
                flush_interval: s.batch.timeout,
                delivery: s.delivery,
                sink_name: sink_name.clone(),
                dlq: dlq.clone(),
            },
            disk,
        });
    }
    let transforms = c
        .transforms
        .into_iter()
        .map(|t| TransformNode {
            name: t.name,
            inputs: t.inputs,
            transform: t.transform,
        })
        .collect();
    let names = c.sources.iter().map(|(n, _)| n.clone()).collect();
    // Each source has its own queue; its bound is the largest asked for.
    let queue = c
        .sources
        .iter()
        .map(|(_, s)| s.queue_size())
        .max()
        .unwrap_or(10_000);
    let pipeline = Pipeline::start(names, queue, transforms, sinks, observers)
        .map_err(|e| anyhow::anyhow!(e.join("; ")))?;
    for s in &pipeline.sources {
        metrics.add_source(s);
    }
    for s in &pipeline.sinks {
        metrics.add_sink(s);
    }
    let health = Health::new();
    {
        let health = health.clone();
        metrics.add_extra(Arc::new(move |out| health.series(out)));
    }
    if let Some(d) = &dlq {
        metrics.add_extra(switchyard_engine::dlq::metrics::extra(d.clone()));
    }
    let state = Arc::new(AdminState {
        metrics: metrics.clone(),
        sources: pipeline
            .sources
            .iter()
            .map(|s| (s.name.clone(), s.stats.clone()))
            .collect(),
        sinks: pipeline.sinks.iter().map(SinkView::from).collect(),
        health: health.clone(),
    });

    let (stop, stop_rx) = watch::channel(false);
    // The admin server listens before any source: once a source accepts
    // events, /metrics and /ready answer.
    if let Some(a) = &c.admin {
        let listener = tokio::net::TcpListener::bind(a.address)
            .await
            .with_context(|| format!("admin.address: cannot listen on {}", a.address))?;
        info!(address = %listener.local_addr()?, "admin server listening (/metrics, /health, /ready)");
        let app = admin::router(state.clone());
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .await;
        });
    }
    let mut running = Vec::new();
    for (name, source) in c.sources {
        let cx = SourceContext {
            output: pipeline.sender(&name).expect("every source has a queue"),
            shutdown: stop_rx.clone(),
            health: health.clone(),
            durable_sinks: on_disk(&name),
            name,
        };
        let name = cx.name.clone();
        let started = source
            .start(cx)
            .await
            .with_context(|| format!("sources.{name}: cannot start"))?;
        started.report_discards(&metrics, &name);
        running.push(started);
    }
    let sampler = crate::process::rates::sample_rates_every_second(metrics.clone());
    info!(
        sources = pipeline.sources.len(),
        sinks = pipeline.sinks.len(),
        "pipeline running"
    );
    crate::process::notify::ready();

    stopping_at_once_loses(&pipeline, shutdown_timeout).await;
    info!("shutting down: stopping sources, draining sinks");
    let _ = stop.send(true);
    for source in running {
        source.stop().await;
    }
    let sinks: Vec<SinkView> = pipeline.sinks.iter().map(SinkView::from).collect();
    let sources = state.sources.clone();
    let lost_in_routers = pipeline.lost_in_routers();
    pipeline.finish().await;
    sampler.abort();
    for (name, st) in &sources {
        crate::process::stdout::final_line(format_args!(
            "final counters: source={name} received={} filtered={}",
            st.received.load(std::sync::atomic::Ordering::Relaxed),
            st.filtered.load(std::sync::atomic::Ordering::Relaxed),
        ));
    }
    let lost = lost_in_routers.load(std::sync::atomic::Ordering::Relaxed);
    if lost > 0 {
        crate::process::stdout::final_line(format_args!(
            "final counters: lost_before_disk_buffers={lost}"
        ));
    }
    for s in &sinks {
        let c = s.counters.snapshot();
        crate::process::stdout::final_line(format_args!(
            "final counters: sink={} received={} delivered={} dead_lettered={} failed={} kept_on_disk={} lost={} dropped_newest={} dropped_oldest={}",
            s.name,
            c.received,
            c.sent,
            c.dead_lettered,
            c.dropped,
            c.kept_on_disk,
            c.lost,
            s.buffer.dropped_newest.load(std::sync::atomic::Ordering::Relaxed),
            s.buffer.dropped_oldest.load(std::sync::atomic::Ordering::Relaxed),
        ));
    }
    Ok(())
}

/// Wait for the first SIGTERM or SIGINT; from then on the pipeline's cutoff
/// comes after `timeout`, and a second signal exits at once, reporting the
/// events still in memory (source queues, memory buffers, batches) as lost.
async fn stopping_at_once_loses(pipeline: &Pipeline, timeout: Duration) {
    let queues: Vec<_> = pipeline.sources.iter().map(|s| s.sender.stats()).collect();
    let sinks: Vec<_> = pipeline
        .sinks
        .iter()
        .filter(|s| s.disk.is_none())
        .map(|s| (s.buffer.clone(), s.counters.clone()))
        .collect();
    let at_once = move || {
        let relaxed = std::sync::atomic::Ordering::Relaxed;
        let lost: u64 = queues.iter().map(|q| q.events.load(relaxed)).sum::<u64>()
            + sinks
                .iter()
                .map(|(b, c)| b.events.load(relaxed) + c.unsettled() + c.snapshot().lost)
                .sum::<u64>();
        tracing::error!(lost, "stopped at once: {lost} events in memory lost");
        crate::process::stdout::final_line(format_args!(
            "final counters: stopped_at_once=1 lost={lost}"
        ));
    };
    crate::process::shutdown::watch(pipeline.cutoff(), timeout, at_once).await
}

/// For each source: whether every sink it feeds has a disk buffer. Such an
/// HTTP source acknowledges by default, so its `202` means "on disk".
fn disk_backed_sources(c: &Checked) -> impl Fn(&str) -> bool {
    let shape = Shape {
        sources: c.sources.iter().map(|(n, _)| n.clone()).collect(),
        transforms: c
            .transforms
            .iter()
            .map(|t| (t.name.clone(), t.inputs.clone()))
            .collect(),
        sinks: c
            .sinks
            .iter()
            .map(|(n, s)| (n.clone(), s.inputs.clone()))
            .collect(),
    };
    let disk: BTreeSet<&str> = c
        .sinks
        .iter()
        .filter(|(_, s)| matches!(s.buffer.kind, super::schema::BufferKind::Disk))
        .map(|(n, _)| n.as_str())
        .collect();
    let backed: BTreeSet<String> = shape
        .sources
        .iter()
        .filter(|src| {
            let fed = shape.sinks_fed_by(src);
            !fed.is_empty() && fed.iter().all(|s| disk.contains(s))
        })
        .cloned()
        .collect();
    move |name: &str| backed.contains(name)
}
