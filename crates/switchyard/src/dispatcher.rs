//! `switchyard dispatcher`: wires bus source + HTTP ingest → engine → sink and
//! runs until SIGINT/SIGTERM, then drains and prints the final counters.

use crate::cli::DispatcherArgs;
use crate::pipeline::admin::{AdminState, SinkView};
use crate::redis_source::RedisSource;
use anyhow::Context;
use serde_json::json;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use switchyard_bus::MemoryBus;
use switchyard_core::{EventBus, SinkConfig, Transform};
use switchyard_engine::metrics::{Metrics, Series, SeriesKind};
use switchyard_engine::topology::SinkHandle;
use switchyard_engine::{BufferConfig, Counters, DeliveryStats, Dlq, Pipeline};
use switchyard_sources::http::{router, IngestConfig, IngestCounters};
use switchyard_transforms::llm::{LlmConfig, LlmTransform, Redactor};
use switchyard_transforms::Chain;
use tracing::info;

pub fn main(args: DispatcherArgs) -> anyhow::Result<()> {
    crate::process::run(run(args))
}

fn env_fallback(value: Option<String>, name: &str) -> Option<String> {
    value.or_else(|| std::env::var(name).ok().filter(|v| !v.is_empty()))
}

async fn run(args: DispatcherArgs) -> anyhow::Result<()> {
    let redis_kind = crate::redis_source::Kind::from_flag(&args.event_bus)?;
    let buffer = match args.buffer {
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

    let mut cfg = SinkConfig::new();
    let endpoint = env_fallback(args.endpoint.clone(), "LLM_PROXY_ENDPOINT")
        .or_else(|| (args.service == "file").then(|| "events.jsonl".to_string()));
    if let Some(e) = endpoint {
        cfg.insert("endpoint".into(), e);
    }
    if let Some(k) = &args.api_key {
        cfg.insert("api-key".into(), k.clone());
    }
    cfg.insert("sync".into(), args.file_sync.to_string());
    cfg.insert("verbose".into(), args.verbose.to_string());
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
        .map_err(anyhow::Error::msg)
        .with_context(|| format!("cannot start service `{}`", args.service))?;

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {} — check --listen", args.listen))?;
    let local = listener.local_addr()?;

    let bus = Arc::new(MemoryBus::new(buffer));
    let metrics = Arc::new(Metrics::new());
    let (tx, rx) = switchyard_engine::buffer(
        BufferConfig::events(args.queue_capacity),
        Some(metrics.queue_wait(&args.service)),
    );
    let queue_stats = tx.stats();
    // With a disk buffer every source below appends to disk; the buffer's
    // reader is then the queue's only direct sender.
    let (tx, disk) = crate::buffer::start(&args.disk_buffer, tx)?;
    let disk_stats = crate::buffer::stats_fn(disk.as_ref());
    let counters = Arc::new(Counters::with_worker_histogram(
        metrics.worker_task(&args.service),
    ));
    let ingest_counters = Arc::new(IngestCounters::default());

    let redis = redis_kind
        .map(|kind| RedisSource::start(kind, &args.redis, &args.service, tx.clone()))
        .transpose()?;
    let bus_task = tokio::spawn(switchyard_sources::bus::forward(
        bus.subscribe(),
        tx.clone(),
    ));
    let pipeline = Pipeline {
        batch_size: args.batch_size,
        flush_interval: args.flush_interval,
        delivery,
        sink_name: args.service.clone(),
        dlq: dlq.clone(),
    };
    let delivery_stats = Arc::new(DeliveryStats::default());
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
    let engine = tokio::spawn(switchyard_engine::run_pipeline(
        rx,
        transform,
        Arc::from(sink),
        pipeline,
        counters.clone(),
        delivery_stats.clone(),
    ));

    let tail = crate::tail::start(&args.tail, tx.clone())?;
    let net = crate::net::NetSources::start(&args.net, &tx).await?;
    let net_stats = net.stats_fn();
    let demo = crate::demo::DemoSource::start(&args.demo, &tx);
    let docker = crate::docker::start(&args.docker, &args.tail.state_dir, tx.clone())?;
    let docker_counters = docker.as_ref().map(|d| d.counters());
    let demo_stats = demo.as_ref().map(|d| d.stats_fn());
    let stats = {
        let (counters, ingest, bus, tx) = (
            counters.clone(),
            ingest_counters.clone(),
            bus.clone(),
            tx.clone(),
        );
        let tail_counters = tail.as_ref().map(|t| t.counters());
        let redis_stats = redis.as_ref().map(RedisSource::stats_handle);
        let (delivery_stats, dlq) = (delivery_stats.clone(), dlq.clone());
        Arc::new(move || {
            json!({
                "tail": tail_counters.as_deref().map(crate::tail::stats),
                "net": net_stats(),
                "demo": demo_stats.as_ref().map(|s| s()),
                "docker": docker_counters.as_deref().map(crate::docker::stats),
                "engine": counters.snapshot(),
                "delivery": delivery_stats.snapshot(),
                "dlq": dlq.as_ref().map(|d| json!({"records": d.len()})),
                "bus": bus.stats(),
                "redis": redis_stats.as_ref().map(|s| s.snapshot()),
                "ingest": {
                    "accepted": ingest.accepted.load(Relaxed),
                    "rejected_requests": ingest.rejected_requests.load(Relaxed),
                },
                "queue": {"capacity": tx.capacity(), "free": tx.room()},
                "disk_buffer": disk_stats(),
            })
        })
    };
    let sink = SinkHandle {
        name: args.service.clone(),
        buffer: queue_stats,
        counters: counters.clone(),
        delivery: delivery_stats.clone(),
    };
    metrics.add_sink(&sink);
    {
        let counters = counters.clone();
        metrics.add_extra(Arc::new(move |out: &mut Vec<Series>| {
            out.push(Series {
                name: "entries_received",
                help: "Events taken from a source",
                kind: SeriesKind::Counter(counters.snapshot().received),
                labels: vec![("component", "intake".to_string())],
            })
        }));
    }
    let sampler = crate::pipeline::run::sample_rates_every_second(metrics.clone());
    let admin = crate::pipeline::admin::metrics_and_ready(Arc::new(AdminState {
        metrics: metrics.clone(),
        sources: Vec::new(),
        sinks: vec![SinkView::from(&sink)],
    }));
    // `stats` holds an intake sender: it must live only inside the router, so
    // the engine sees the queue close once the server is gone.
    let app = router(
        tx,
        IngestConfig {
            max_body: args.max_body,
            token: args.ingest_token.clone(),
            queue_wait: args.ingest_wait,
            // With --buffer-type disk the intake itself appends to disk
            // before it returns, so the 202 is durable without waiting.
            acknowledge: None,
        },
        ingest_counters.clone(),
        stats,
    )
    .merge(admin);

    if let Some(pid_file) = &args.pid_file {
        let tmp = pid_file.with_extension("pid.tmp");
        std::fs::write(&tmp, format!("{}\n", std::process::id()))
            .and_then(|_| std::fs::rename(&tmp, pid_file))
            .with_context(|| format!("cannot write pid file `{}`", pid_file.display()))?;
    }
    info!(listen = %local, service = %args.service, bus = %args.event_bus, "dispatcher listening");

    // Stop accepting on the signal; in-flight requests finish first. Dropping
    // the router drops its intake sender.
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("ingest server failed")?;
    info!("shutting down: draining the bus and the queue");
    bus.stop();
    if let Some(r) = &redis {
        r.stop();
    }
    bus_task.await.ok();
    net.stop().await;
    if let Some(d) = demo {
        d.stop().await;
    }
    // Like the tail, the docker source waits (bounded) for its lines in
    // flight, so the engine must keep running meanwhile: stop it beside.
    let docker_stopped = tokio::spawn(async move {
        if let Some(d) = docker {
            let counters = d.counters();
            d.stop().await;
            info!(docker = %crate::docker::stats(&counters), "docker source stopped");
        }
    });
    // The tail source waits for its lines in flight to be confirmed while the
    // engine drains, then records their positions.
    let tail_stopped = tokio::task::spawn_blocking(move || {
        if let Some(tail) = tail {
            let counters = tail.counters();
            tail.stop();
            info!(tail = %crate::tail::stats(&counters), "file tail stopped");
        }
    });
    engine.await.context("engine task failed")?;
    sampler.abort();
    tail_stopped.await.ok();
    docker_stopped.await.ok();
    let disk_final = crate::buffer::finish(disk).await;
    let redis_final = match redis {
        Some(r) => crate::redis_source::final_counters(&r.finish().await?),
        None => String::new(),
    };

    if let Some(pid_file) = &args.pid_file {
        let _ = std::fs::remove_file(pid_file);
    }
    let c = counters.snapshot();
    let b = bus.stats();
    println!(
        "final counters: received={} sent={} filtered={} dropped={} dead_lettered={} bus_published={} bus_dropped={} ingest_accepted={} ingest_rejected_requests={}{}{}",
        c.received,
        c.sent,
        c.filtered,
        c.dropped,
        c.dead_lettered,
        b.published,
        b.dropped,
        ingest_counters.accepted.load(Relaxed),
        ingest_counters.rejected_requests.load(Relaxed),
        redis_final,
        disk_final,
    );
    Ok(())
}

pub(crate) async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot watch SIGTERM; only SIGINT stops the dispatcher");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
