//! `switchyard run --config FILE` and `switchyard validate --config FILE`.

use super::admin::{self, AdminState, SinkView};
use super::schema::{HttpSource, NetSource, SourceConfig};
use super::validate::{check, Checked};
use anyhow::Context;
use clap::Args;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use switchyard_core::SinkConfig;
use switchyard_engine::disk_buffer::DiskBufferConfig;
use switchyard_engine::metrics::Metrics;
use switchyard_engine::supervise::{supervise, Health};
use switchyard_engine::topology::{Observers, Pipeline, Shape, SinkNode, TransformNode};
use switchyard_engine::{IntakeSender, Pipeline as SinkPolicy};
use switchyard_sources::file_tail::TailSource;
use switchyard_sources::http::{IngestConfig, IngestCounters, IngestLimits};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::info;

/// Options of `run` and `validate`.
#[derive(Args, Debug)]
pub struct ConfigArgs {
    /// The pipeline file (YAML).
    #[arg(long, short = 'c', env = "SWITCHYARD_CONFIG")]
    pub config: PathBuf,
}

fn load(path: &Path) -> anyhow::Result<Checked> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read `{}`", path.display()))?;
    let registry = switchyard_sinks::builtin();
    check(&text, |k| std::env::var(k).ok(), &registry).map_err(|errors| {
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
        let mut options = SinkConfig::new();
        for (k, v) in s.options.into_iter().filter(|(_, v)| !v.0.is_empty()) {
            options.insert(k, v.0);
        }
        let sink = registry
            .build(&s.kind, &options)
            .map_err(anyhow::Error::msg)
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
    for (name, config) in c.sources {
        let tx = pipeline.sender(&name).expect("every source has a queue");
        running.push(
            start_source(
                &name,
                config,
                tx,
                on_disk(&name),
                (&metrics, &health),
                stop_rx.clone(),
            )
            .await
            .with_context(|| format!("sources.{name}: cannot start"))?,
        );
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

/// A started source, stopped on shutdown.
enum Running {
    Task(JoinHandle<()>),
    Tail(switchyard_sources::file_tail::TailSource),
    Net(crate::net::NetSources),
}

impl Running {
    async fn stop(self) {
        match self {
            Running::Task(t) => {
                let _ = t.await;
            }
            Running::Tail(t) => {
                // Waits for its lines in flight while the sinks drain.
                tokio::task::spawn_blocking(move || t.stop()).await.ok();
            }
            Running::Net(n) => n.stop().await,
        }
    }
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

async fn start_source(
    name: &str,
    config: SourceConfig,
    tx: IntakeSender,
    disk_backed: bool,
    (metrics, health): (&Metrics, &Health),
    stop: watch::Receiver<bool>,
) -> anyhow::Result<Running> {
    Ok(match config {
        SourceConfig::Http(HttpSource {
            address,
            max_body,
            token,
            queue_wait,
            acknowledgements,
            ack_timeout,
            max_connections,
            max_concurrent_requests,
            max_body_memory,
            header_timeout,
            body_timeout,
            idle_timeout,
            ..
        }) => {
            let acknowledge = acknowledgements
                .unwrap_or(disk_backed)
                .then_some(ack_timeout);
            let limits = IngestLimits {
                max_connections,
                max_concurrent_requests,
                max_body_memory,
                header_timeout,
                body_timeout,
                idle_timeout,
            };
            let listener = tokio::net::TcpListener::bind(address)
                .await
                .with_context(|| format!("address: cannot listen on {address}"))?;
            info!(source = name, address = %listener.local_addr()?, acknowledgements = acknowledge.is_some(), "HTTP ingest listening");
            let counters = Arc::new(IngestCounters::default());
            let stats_counters = counters.clone();
            let app = switchyard_sources::http::router(
                tx,
                IngestConfig {
                    max_body,
                    token,
                    queue_wait,
                    acknowledge,
                    limits: limits.clone(),
                },
                counters.clone(),
                Arc::new(move || stats_counters.snapshot()),
            );
            // Supervised: should the server end while not stopping (a
            // panic in its accept loop), it is bound again and restarted.
            let addr = listener.local_addr()?;
            let mut first = Some(listener);
            let stop_for_attempts = stop.clone();
            let attempt = move || {
                let (first, app, limits, counters) =
                    (first.take(), app.clone(), limits.clone(), counters.clone());
                let mut stop = stop_for_attempts.clone();
                async move {
                    let listener = match first {
                        Some(l) => l,
                        None => tokio::net::TcpListener::bind(addr)
                            .await
                            .map_err(|e| format!("cannot listen on {addr} again: {e}"))?,
                    };
                    let stopped = async move {
                        let _ = stop.wait_for(|s| *s).await;
                    };
                    switchyard_sources::http::serve(listener, app, &limits, counters, stopped)
                        .await;
                    Ok(())
                }
            };
            Running::Task(tokio::spawn(supervise(
                health.register(name),
                stop,
                attempt,
            )))
        }
        SourceConfig::File(f) => {
            let runtime = tokio::runtime::Handle::current();
            let task = Some(health.register(name));
            let t = TailSource::spawn_supervised(f.tail_config(), tx, runtime, task)
                .map_err(anyhow::Error::msg)?;
            crate::tail::report_discards(&t, metrics, name);
            Running::Tail(t)
        }
        SourceConfig::Tcp(n) => net(name, n, tx, health, |a, n| a.tcp = Some(n)).await?,
        SourceConfig::Udp(n) => net(name, n, tx, health, |a, n| a.udp = Some(n)).await?,
        SourceConfig::SyslogTcp(n) => {
            net(name, n, tx, health, |a, n| a.syslog_tcp = Some(n)).await?
        }
        SourceConfig::SyslogUdp(n) => {
            net(name, n, tx, health, |a, n| a.syslog_udp = Some(n)).await?
        }
    })
    .inspect(|running| {
        // The one listener of a network source reports under its name.
        if let Running::Net(sources) = running {
            sources.report_discards(metrics, Some(name));
        }
    })
}

async fn net(
    name: &str,
    n: NetSource,
    tx: IntakeSender,
    health: &Health,
    set: impl FnOnce(&mut crate::net::NetArgs, std::net::SocketAddr),
) -> anyhow::Result<Running> {
    let mut args = crate::net::NetArgs {
        tcp: None,
        udp: None,
        syslog_tcp: None,
        syslog_udp: None,
        max_message_bytes: n.max_message_bytes,
        max_connections: n.max_connections,
    };
    set(&mut args, n.address);
    let sources = crate::net::NetSources::start(&args, &tx, health, Some(name)).await?;
    Ok(Running::Net(sources))
}
