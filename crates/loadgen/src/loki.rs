//! `switchyard bench loki`: the Loki sink against an in-process server that
//! answers every push at once (`204`, body read and counted, not decoded),
//! so the numbers are the sink's: label rendering, grouping and sorting,
//! protobuf encoding and snappy (or JSON), and the HTTP client.
//!
//! Batches go straight to the sink (`Sink::send`), not through the engine:
//! `--concurrency` sends are in flight at once, as the engine's
//! `--concurrency` would have them. The events are built before the clock
//! starts, as a pool of batches reused in turn, so the measure holds no
//! parsing and memory stays small; the default out-of-order policy
//! (`accept`) sends reused timestamps as they are.

use crate::record::record;
use crate::usage::{cpu_seconds, peak_rss_kib};
use anyhow::{bail, Context};
use axum::body::Bytes;
use axum::http::StatusCode;
use clap::Args;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use switchyard_core::{Event, LogRecord, Sink, SinkConfig};

/// Flags of `switchyard bench loki`.
#[derive(Args, Debug)]
pub struct LokiArgs {
    /// Events to push.
    #[arg(long, default_value = "1000000")]
    pub events: usize,
    /// Events per `send` (an engine batch).
    #[arg(long, default_value = "1000")]
    pub batch: usize,
    /// Sends in flight at once.
    #[arg(long, default_value = "4")]
    pub concurrency: usize,
    /// Distinct batches built up front and reused in turn.
    #[arg(long, default_value = "64")]
    pub pool: usize,
    /// Extra sink options (KEY=VALUE), e.g. encoding=json or labels=....
    #[arg(long = "sink-option", value_name = "KEY=VALUE")]
    pub sink_options: Vec<String>,
}

/// What the server saw.
#[derive(Default)]
struct Received {
    requests: AtomicU64,
    bytes: AtomicU64,
    first: Mutex<Option<Bytes>>,
}

/// Run `switchyard bench loki`.
pub fn run(args: LokiArgs) -> anyhow::Result<()> {
    if args.events == 0 || args.batch == 0 || args.concurrency == 0 || args.pool == 0 {
        bail!("--events, --batch, --concurrency and --pool must be greater than 0");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(measure(args))
}

async fn measure(args: LokiArgs) -> anyhow::Result<()> {
    let received = Arc::new(Received::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let app = instant_server(received.clone());
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let cfg = sink_config(port, &args.sink_options)?;
    let sink: Arc<dyn Sink> = Arc::from(switchyard_sinks::builtin().build("loki", &cfg)?);

    let (pool, line_bytes) = build_pool(&args)?;
    let cpu_before = cpu_seconds(std::process::id());
    let start = Instant::now();
    push_all(sink, Arc::new(pool), &args).await?;
    let elapsed = start.elapsed();
    let cpu = cpu_seconds(std::process::id())
        .zip(cpu_before)
        .map(|(a, b)| a - b);
    server.abort();
    let encoding = args
        .sink_options
        .iter()
        .rev()
        .find_map(|o| o.trim().strip_prefix("encoding="))
        .unwrap_or("protobuf");
    print_report(&args, encoding, &received, line_bytes, elapsed, cpu);
    Ok(())
}

/// A Loki push endpoint that answers `204` at once, counting what it got.
fn instant_server(received: Arc<Received>) -> axum::Router {
    axum::Router::new().route(
        "/loki/api/v1/push",
        axum::routing::post(move |body: Bytes| async move {
            received.requests.fetch_add(1, Relaxed);
            received.bytes.fetch_add(body.len() as u64, Relaxed);
            let mut first = received.first.lock().unwrap_or_else(|p| p.into_inner());
            first.get_or_insert(body);
            StatusCode::NO_CONTENT
        }),
    )
}

/// The sink's options: the server on `port`, three labels, then the
/// user's `--sink-option`s.
fn sink_config(port: u16, options: &[String]) -> anyhow::Result<SinkConfig> {
    let mut cfg = SinkConfig::new();
    cfg.insert("endpoint".into(), format!("http://127.0.0.1:{port}"));
    cfg.insert(
        "labels".into(),
        "app={service},level={level},host={host}".into(),
    );
    for opt in options {
        let (k, v) = opt
            .split_once('=')
            .with_context(|| format!("--sink-option `{opt}`: expected KEY=VALUE"))?;
        cfg.insert(k.trim().into(), v.into());
    }
    Ok(cfg)
}

/// Send `args.events` events in batches from the pool, `args.concurrency`
/// sends in flight at once.
async fn push_all(
    sink: Arc<dyn Sink>,
    pool: Arc<Vec<Vec<Event>>>,
    args: &LokiArgs,
) -> anyhow::Result<()> {
    let sends = args.events.div_ceil(args.batch);
    let next = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..args.concurrency)
        .map(|_| {
            let (sink, pool, next) = (sink.clone(), pool.clone(), next.clone());
            let (events, batch) = (args.events, args.batch);
            tokio::spawn(async move {
                loop {
                    let n = next.fetch_add(1, Relaxed);
                    if n >= sends {
                        return Ok::<(), anyhow::Error>(());
                    }
                    let full = &pool[n % pool.len()];
                    // The last send may be short.
                    let len = (events - n * batch).min(batch);
                    sink.send(&full[..len])
                        .await
                        .map_err(|e| anyhow::anyhow!("send {n}: {e}"))?;
                }
            })
        })
        .collect();
    for w in workers {
        w.await??;
    }
    Ok(())
}

/// Print the run's figures.
fn print_report(
    args: &LokiArgs,
    encoding: &str,
    received: &Received,
    line_bytes: f64,
    elapsed: Duration,
    cpu: Option<f64>,
) {
    let requests = received.requests.load(Relaxed);
    let wire = received.bytes.load(Relaxed);
    let secs = elapsed.as_secs_f64();
    let n = args.events as f64;
    println!(
        "events:       {} ({} per send, {} in flight, encoding {})",
        args.events, args.batch, args.concurrency, encoding
    );
    println!("pushes:       {requests}");
    println!("avg line:     {:.0} bytes", line_bytes);
    println!("elapsed:      {secs:.3} s");
    println!("events/s:     {:.0}", n / secs);
    println!(
        "wire MiB/s:   {:.1}",
        wire as f64 / secs / (1024.0 * 1024.0)
    );
    println!("wire bytes/event: {:.1}", wire as f64 / n);
    if let Some(first) = received
        .first
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
    {
        if let Ok(raw) = snap::raw::Decoder::new().decompress_vec(first) {
            println!(
                "first push:   {} bytes snappy, {} bytes protobuf ({:.1}x)",
                first.len(),
                raw.len(),
                raw.len() as f64 / first.len() as f64
            );
        }
    }
    match peak_rss_kib(std::process::id()) {
        Some(k) => println!(
            "peak RSS:     {:.1} MiB (sink, server and the event pool)",
            k as f64 / 1024.0
        ),
        None => println!("peak RSS:     unknown (no /proc)"),
    }
    if let Some(cpu) = cpu {
        println!(
            "CPU:          {cpu:.2} s ({:.2} µs per event, sink and server)",
            cpu * 1e6 / n
        );
    }
}

/// `pool` batches of `batch` log records (the shape the other tools send),
/// and the average line length.
fn build_pool(args: &LokiArgs) -> anyhow::Result<(Vec<Vec<Event>>, f64)> {
    let batches = args.pool.min(args.events.div_ceil(args.batch));
    let mut pool = Vec::with_capacity(batches);
    let mut text = String::with_capacity(256);
    let mut total = 0usize;
    for b in 0..batches {
        let mut events = Vec::with_capacity(args.batch);
        for i in 0..args.batch {
            text.clear();
            record(b * args.batch + i, &mut text);
            total += text.len();
            let rec: LogRecord = serde_json::from_str(&text)?;
            events.push(Event::from(rec));
        }
        pool.push(events);
    }
    Ok((pool, total as f64 / (batches * args.batch) as f64))
}
