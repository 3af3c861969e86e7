//! `switchyard dispatcher`: wires its inputs (HTTP ingest, a Redis bus, the
//! tail, network, Docker and demo sources) → engine → sink and
//! runs until SIGINT/SIGTERM, then drains (up to `--shutdown-timeout`, see
//! [`crate::process::shutdown`]) and prints the final counters.
//!
//! The engine is the same pipeline graph as `switchyard run` builds from a
//! file ([`switchyard_engine::topology`]), made from the flags: one source
//! called `intake` that every input writes to, one transform node (the LLM
//! payload transformer, then `--transforms`), and one sink named after
//! `--service`, with its buffer (`--queue-capacity`, `--buffer-type`),
//! batching and delivery stack.

use crate::cli::buffer::BufferType;
use crate::cli::sources::{FlagSource, Slot};
use crate::cli::DispatcherArgs;
use crate::pipeline::admin::{AdminState, SinkView};
use anyhow::Context;
use serde_json::{json, Value};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use switchyard_core::{SinkConfig, Transform};
use switchyard_engine::disk_buffer::DiskBufferConfig;
use switchyard_engine::metrics::Metrics;
use switchyard_engine::source::{RunningSource, Source, SourceContext, StatsFn};
use switchyard_engine::supervise::Health;
use switchyard_engine::topology::{Observers, Pipeline, SinkNode, SourceStats, TransformNode};
use switchyard_engine::{BufferConfig, Counters, CountersSnapshot, Dlq, SinkPolicy};
use switchyard_sources::http::source::HttpSource;
use switchyard_transforms::llm::{LlmConfig, LlmTransform, Redactor};
use switchyard_transforms::Chain;
use tokio::sync::watch;
use tracing::info;

pub fn main(args: DispatcherArgs) -> anyhow::Result<()> {
    crate::process::run(run(args))
}

fn env_fallback(value: Option<String>, name: &str) -> Option<String> {
    value.or_else(|| std::env::var(name).ok().filter(|v| !v.is_empty()))
}

async fn run(args: DispatcherArgs) -> anyhow::Result<()> {
    let redis_kind = crate::cli::sources::Kind::from_flag(&args.event_bus)?;
    // Every source the flags ask for, checked before anything starts.
    let flag_sources = crate::cli::sources::sources(&args, redis_kind)?;
    let http = HttpSource::new(crate::cli::sources::http(&args, ACK_WAIT))
        .context("check --listen, --max-body and the --ingest-* flags")?;
    // The in-process bus's subscriber buffer of the original. The dispatcher
    // has no in-process publisher, so builds no bus: the value is only
    // checked, so that a deployment's setting keeps starting.
    let _bus_buffer = match args.buffer {
        Some(b) => b,
        None => match std::env::var("OBSERVABILITY_BUFFER_SIZE") {
            Ok(v) => v
                .parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .with_context(|| {
                    format!(
                        "OBSERVABILITY_BUFFER_SIZE={v:?}: expected a whole number greater than 0"
                    )
                })?,
            Err(_) => 1000,
        },
    };

    // `--endpoint`, `--api-key` and `--file-sync` are offered to whichever
    // sink `--service` names (a sink without the key leaves it); each
    // `--sink-option` must be a key of that sink.
    let mut cfg = SinkConfig::new();
    let endpoint = env_fallback(args.endpoint.clone(), "LLM_PROXY_ENDPOINT")
        .or_else(|| (args.service == "file").then(|| "events.jsonl".to_string()));
    if let Some(e) = endpoint {
        cfg.offer("endpoint", e, "--endpoint");
    }
    if let Some(k) = &args.api_key {
        cfg.offer("api-key", k.clone(), "--api-key");
    }
    cfg.offer("sync", args.file_sync.to_string(), "--file-sync");
    for (key, value) in &args.sink_options {
        cfg.insert(key.clone(), value.clone());
    }
    let delivery = args
        .delivery
        .delivery(args.retry_attempts, args.retry_backoff)?;
    let dlq = match args.delivery.dlq()? {
        Some(config) => {
            let dir = config.dir.clone();
            let dlq = Dlq::open(config).with_context(|| {
                format!(
                    "cannot open the dead-letter queue in `{}` — check --dlq-dir",
                    dir.display()
                )
            })?;
            if !dlq.is_empty() {
                info!(records = dlq.len(), dir = %dir.display(), "dead-letter queue holds records");
            }
            Some(Arc::new(dlq))
        }
        None => None,
    };
    let sink = switchyard_sinks::builtin()
        .build(&args.service, &cfg)
        .with_context(|| format!("cannot start service `{}`", args.service))?;

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {} — check --listen", args.listen))?;
    let local = listener.local_addr()?;

    let metrics = Arc::new(Metrics::new());
    let policy = SinkPolicy {
        batch_size: args.batch_size,
        flush_interval: args.flush_interval,
        delivery,
        sink_name: args.service.clone(),
        dlq: dlq.clone(),
    };
    // The LLM payload transformer for every service, as in the original:
    // exchanges become LLM payloads, log records pass unchanged; then the
    // user's --transforms, if any.
    let mut steps: Vec<Box<dyn Transform>> =
        vec![Box::new(LlmTransform::default_with(LlmConfig {
            verbose: args.verbose,
            redact: Redactor::new(&args.redact_headers),
            ..LlmConfig::default()
        }))];
    if let Some(path) = &args.transforms.transforms {
        steps.push(Box::new(crate::transforms::load(path)?));
    }
    let transform: Arc<dyn Transform> = Arc::new(Chain::new(steps));
    let pipeline = start_pipeline(&args, &metrics, transform, sink, policy)?;
    let source_stats = pipeline.sources[0].stats.clone();
    let lost_in_router = pipeline.lost_in_routers();
    let tx = pipeline.sources[0].sender.clone();
    let sink = &pipeline.sinks[0];
    let counters = sink.counters.clone();
    let delivery_stats = sink.delivery.clone();
    let disk_stats = sink.disk.clone();
    let ingest_counters = http.counters();
    if let Some(d) = &dlq {
        metrics.add_extra(switchyard_engine::dlq::metrics::extra(d.clone()));
    }
    // A second signal exits at once: say what that loses from memory.
    let at_once = {
        let (source, counters, intake, disk) = (
            source_stats.clone(),
            counters.clone(),
            tx.stats(),
            disk_stats.clone(),
        );
        let pid_file = args.pid_file.clone();
        move || {
            let c = engine_counters(&source, &counters);
            let queued = intake.events.load(Relaxed);
            let lost = queued
                + match &disk {
                    // What the router took and did not hand to the disk
                    // buffer; the disk buffer keeps the rest.
                    Some(d) => c
                        .received
                        .saturating_sub(source.filtered.load(Relaxed) + d().written),
                    None => c.received.saturating_sub(settled(&c)),
                };
            tracing::error!(lost, "stopped at once: {lost} events in memory lost");
            crate::process::stdout::final_line(format_args!(
                "final counters: received={} sent={} filtered={} dropped={} dead_lettered={} kept_on_disk={} lost={} stopped_at_once=1",
                c.received, c.sent, c.filtered, c.dropped, c.dead_lettered, c.kept_on_disk, c.lost + lost,
            ));
            if let Some(p) = &pid_file {
                crate::process::pid_file::remove(p);
            }
        }
    };
    let stopping =
        crate::process::shutdown::watch(pipeline.cutoff(), args.delivery.shutdown_timeout, at_once);

    let health = Health::new();
    {
        let health = health.clone();
        metrics.add_extra(Arc::new(move |out| health.series(out)));
    }
    let disk_backed = sink.disk.is_some();
    let (stop_sources, shutdown) = watch::channel(false);
    let context = |name: &str| SourceContext {
        name: name.to_string(),
        output: tx.clone(),
        shutdown: shutdown.clone(),
        health: health.clone(),
        durable_sinks: disk_backed,
    };
    let mut running = Vec::new();
    for FlagSource {
        name,
        component,
        slot,
        hint,
        source,
    } in flag_sources
    {
        let started = source
            .start(context(name))
            .await
            .with_context(|| format!("cannot start {hint}"))?;
        started.report_discards(&metrics, component);
        running.push((name, slot, started));
    }
    let source_stats_json = flag_stats(&running);
    let stats = {
        let (counters, ingest, tx, source_stats) = (
            counters.clone(),
            ingest_counters.clone(),
            tx.clone(),
            source_stats.clone(),
        );
        let sink_buffer = sink.buffer.clone();
        let (delivery_stats, dlq) = (delivery_stats.clone(), dlq.clone());
        Arc::new(move || {
            let mut out = source_stats_json();
            let more = json!({
                "engine": engine_counters(&source_stats, &counters),
                "delivery": delivery_stats.snapshot(),
                "dlq": dlq.as_ref().map(|d| json!({"records": d.len(), "expired": d.expired()})),
                "ingest": ingest.snapshot(),
                // Both queues in memory: the intake's and the sink's buffer.
                "queue": {
                    "capacity": tx.capacity() as u64 + sink_buffer.max_events.load(Relaxed),
                    "free": (tx.room() as u64 + sink_buffer.max_events.load(Relaxed))
                        .saturating_sub(sink_buffer.events.load(Relaxed)),
                },
                "disk_buffer": disk_stats.as_ref().map(|f| f()),
            });
            if let (Value::Object(out), Value::Object(more)) = (&mut out, more) {
                out.extend(more);
            }
            out
        })
    };
    metrics.add_source(&pipeline.sources[0]);
    metrics.add_sink(sink);
    let sampler = crate::process::rates::sample_rates_every_second(metrics.clone());
    let admin = crate::pipeline::admin::metrics_and_ready(Arc::new(AdminState {
        metrics: metrics.clone(),
        sources: vec![(SOURCE.to_string(), source_stats.clone())],
        sinks: vec![SinkView::from(sink)],
        health: health.clone(),
    }));
    // `stats` holds an intake sender: it must live only inside the server,
    // so the engine sees the queue close once the server is gone.
    let http = Box::new(
        http.with_listener(listener)
            .with_routes(admin)
            .with_stats(stats),
    )
    .start(context("http"))
    .await
    .context("cannot serve ingest — check --listen")?;
    drop(tx);

    if let Some(pid_file) = &args.pid_file {
        crate::process::pid_file::write(pid_file)?;
    }
    info!(listen = %local, service = %args.service, bus = %args.event_bus, "dispatcher listening");
    crate::process::notify::ready();

    stopping.await;
    // Stop accepting; in-flight requests finish first.
    let _ = stop_sources.send(true);
    http.stop().await;
    info!("shutting down: stopping the sources, draining the queue");
    let redis_stats = running
        .iter()
        .find(|(_, slot, _)| *slot == Slot::Redis)
        .map(|(_, _, r)| r.stats());
    // Sources that wait for their events in flight (the tail, Docker, Redis)
    // need the engine running meanwhile: stop them beside it. Every sender
    // is gone once they have stopped; the pipeline then drains its queues
    // and the sink.
    let stopped: Vec<_> = running
        .into_iter()
        .map(|(_, _, r)| tokio::spawn(r.stop()))
        .collect();
    let finished = tokio::spawn(pipeline.finish());
    for s in stopped {
        s.await.ok();
    }
    let disk_finals = finished.await.context("engine task failed")?;
    sampler.abort();
    let disk_final = disk_finals
        .first()
        .map(|(_, s)| {
            format!(
                " disk_written={} disk_read={} disk_read_earlier={} disk_corrupt_records={} disk_pending_bytes={}",
                s.written, s.read, s.read_earlier, s.corrupt_records, s.used_bytes
            )
        })
        .unwrap_or_default();
    let redis_final = redis_stats
        .map(|s| redis_counters(&s()))
        .unwrap_or_default();

    if let Some(pid_file) = &args.pid_file {
        crate::process::pid_file::remove(pid_file);
    }
    let mut c = engine_counters(&source_stats, &counters);
    c.lost += lost_in_router.load(Relaxed);
    if let Some((_, s)) = disk_finals.first() {
        // This run's events still on disk, never read back, are kept too;
        // with `disk_read_earlier` (what an earlier run left) the line adds
        // up: received + disk_read_earlier = sent + filtered + … + lost.
        c.kept_on_disk += s.written.saturating_sub(s.read - s.read_earlier);
    }
    crate::process::stdout::final_line(format_args!(
        "final counters: received={} sent={} filtered={} dropped={} dead_lettered={} kept_on_disk={} lost={} ingest_accepted={} ingest_rejected_requests={}{}{}",
        c.received,
        c.sent,
        c.filtered,
        c.dropped,
        c.dead_lettered,
        c.kept_on_disk,
        c.lost,
        ingest_counters.accepted.load(Relaxed),
        ingest_counters.rejected_requests.load(Relaxed),
        redis_final,
        disk_final,
    ));
    Ok(())
}

/// The flag sources' counters, by their `/stats` keys: `tail`, `net` (by
/// listener), `demo`, `docker`, `redis` (`null` when not running).
fn flag_stats(
    running: &[(&'static str, Slot, Box<dyn RunningSource>)],
) -> impl Fn() -> Value + Send + Sync + 'static {
    let one = |slot: Slot| {
        running
            .iter()
            .find(|(_, s, _)| *s == slot)
            .map(|(_, _, r)| r.stats())
    };
    let (tail, demo, docker, redis) = (
        one(Slot::Tail),
        one(Slot::Demo),
        one(Slot::Docker),
        one(Slot::Redis),
    );
    let net: Vec<(&'static str, StatsFn)> = running
        .iter()
        .filter(|(_, s, _)| *s == Slot::Net)
        .map(|(name, _, r)| (*name, r.stats()))
        .collect();
    let read = |f: &Option<StatsFn>| f.as_ref().map_or(Value::Null, |f| f());
    move || {
        let net: serde_json::Map<String, Value> =
            net.iter().map(|(n, f)| (n.to_string(), f())).collect();
        json!({
            "tail": read(&tail),
            "net": net,
            "demo": read(&demo),
            "docker": read(&docker),
            "redis": read(&redis),
        })
    }
}

/// The Redis part of the final counters line, from the source's counters.
fn redis_counters(stats: &Value) -> String {
    const KEYS: [&str; 12] = [
        "read",
        "redelivered",
        "claimed",
        "acked",
        "not_acked",
        "delivered",
        "filtered",
        "dead_lettered",
        "dropped",
        "unresolved",
        "poison",
        "lost",
    ];
    KEYS.iter()
        .map(|k| format!(" redis_{k}={}", stats[k].as_u64().unwrap_or(0)))
        .collect()
}

/// The name of the dispatcher's one source, as in metrics and `/ready`.
const SOURCE: &str = "intake";
/// The shortest wait for a disk-buffered request's acknowledgement.
const ACK_WAIT: Duration = Duration::from_secs(10);

/// The flags' pipeline: `intake` → transforms → the service's sink.
fn start_pipeline(
    args: &DispatcherArgs,
    metrics: &Metrics,
    transform: Arc<dyn Transform>,
    sink: Box<dyn switchyard_core::Sink>,
    policy: SinkPolicy,
) -> anyhow::Result<Pipeline> {
    let service = &args.service;
    let mut observers = Observers::default();
    observers
        .processing
        .insert(SOURCE.into(), metrics.processing(SOURCE));
    observers
        .queue_wait
        .insert(service.clone(), metrics.queue_wait(service));
    observers
        .delivery
        .insert(service.clone(), metrics.delivery(service));
    observers
        .worker_task
        .insert(service.clone(), metrics.worker_task(service));
    let disk = (args.disk_buffer.buffer_type == BufferType::Disk).then(|| {
        DiskBufferConfig::new(
            &args.disk_buffer.buffer_dir,
            args.disk_buffer.buffer_max_bytes,
        )
    });
    if disk.is_some() {
        info!(dir = %args.disk_buffer.buffer_dir.display(), max_bytes = args.disk_buffer.buffer_max_bytes, "disk buffer open");
    }
    // `--queue-capacity` bounds the events waiting in memory: an eighth in
    // the source's own queue in front of the transforms (enough to keep them
    // busy), the rest in the sink's buffer, which is the one that fills
    // when the sink is slow — so `--queue-max-bytes` bounds that one too.
    // (With 2 KB bodies a payload is ~6 KB: 17 500 of them held ~110 MB.)
    let source_queue = (args.queue_capacity / 8).max(1);
    let sink_buffer = args.queue_capacity.saturating_sub(source_queue).max(1);
    let transforms = vec![TransformNode {
        name: "transforms".into(),
        inputs: vec![SOURCE.into()],
        transform,
    }];
    let sinks = vec![SinkNode {
        name: service.clone(),
        inputs: vec!["transforms".into()],
        sink,
        buffer: BufferConfig {
            max_events: sink_buffer,
            max_bytes: args.queue_max_bytes,
            ..BufferConfig::default()
        },
        policy,
        disk,
    }];
    Pipeline::start(
        vec![SOURCE.into()],
        source_queue,
        transforms,
        sinks,
        observers,
    )
    .map_err(|errors| {
        anyhow::anyhow!(
            "{} — check --buffer-dir",
            errors.join("; ").replace("sinks.", "service ")
        )
    })
}

/// Events of the ledger whose fate is decided.
fn settled(c: &CountersSnapshot) -> u64 {
    c.sent + c.filtered + c.dropped + c.dead_lettered + c.kept_on_disk + c.lost
}

/// The engine's ledger as the dispatcher has always reported it: events
/// taken in, and what became of them (filtered by the transforms or by the
/// sink's loop, sent, dropped, dead-lettered).
fn engine_counters(source: &SourceStats, sink: &Counters) -> CountersSnapshot {
    let s = sink.snapshot();
    CountersSnapshot {
        received: source.received.load(Relaxed),
        filtered: source.filtered.load(Relaxed) + s.filtered,
        ..s
    }
}
