//! `switchyard bench redis-publish` and `switchyard bench redis-dispatch`:
//! load tools for the Redis bus.
//!
//! - `redis-publish` pushes N HTTP-exchange events through the library's
//!   publisher (`XADD ... MAXLEN ~ ...`, pipelined) and prints events/s; with
//!   `--print-sample` it prints one encoded event instead, so a script can
//!   give `redis-benchmark` the same payload.
//! - `redis-dispatch` fills a stream with N events, then starts a dispatcher
//!   (this same binary, `--event-bus redis`, file sink) and times until the
//!   engine reports all of them written.

use crate::usage::{cpu_seconds, machine_cpu, peak_rss_kib};
use anyhow::{bail, Context};
use clap::Args;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use switchyard_bus::redis::{Publisher, PublisherConfig, RedisTarget, Wire};
use switchyard_core::{Event, HttpExchange};

/// Flags of `switchyard bench redis-publish`.
#[derive(Args, Debug)]
pub struct RedisPublishArgs {
    /// Redis URL.
    #[arg(long, default_value = "redis://127.0.0.1:6379/")]
    pub redis_url: String,
    /// Stream key.
    #[arg(long, default_value = "switchyard-bench")]
    pub stream: String,
    /// Events to publish.
    #[arg(long, default_value = "200000")]
    pub events: usize,
    /// Bytes of request body and of response body per event.
    #[arg(long, default_value = "64")]
    pub body_bytes: usize,
    /// Events per pipelined round trip.
    #[arg(long, default_value = "512")]
    pub pipeline: usize,
    /// Approximate stream bound (`MAXLEN ~`).
    #[arg(long, default_value = "10000")]
    pub max_len: usize,
    /// Print one encoded event and exit.
    #[arg(long)]
    pub print_sample: bool,
}

/// Flags of `switchyard bench redis-dispatch`.
#[derive(Args, Debug)]
pub struct RedisDispatchArgs {
    /// Redis URL.
    #[arg(long, default_value = "redis://127.0.0.1:6379/")]
    pub redis_url: String,
    /// Events to fill the stream with and dispatch.
    #[arg(long, default_value = "200000")]
    pub events: usize,
    /// Bytes of request body and of response body per event (1–2 KB each is
    /// the case).
    #[arg(long, default_value = "1024")]
    pub body_bytes: usize,
    /// Entries per XREADGROUP of the dispatcher (default: the dispatcher's
    /// own, `--redis-stream-batch-size`).
    #[arg(long)]
    pub read_batch: Option<usize>,
    /// Engine batch size of the dispatcher.
    #[arg(long, default_value = "1000")]
    pub sink_batch: usize,
    /// fdatasync once per engine batch.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub sync: bool,
    /// File sink option `direct`: whole blocks written past the page cache.
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set)]
    pub direct: bool,
    /// `--worker-threads` of the dispatcher under test (default: its own).
    #[arg(long)]
    pub dispatcher_threads: Option<u16>,
}

/// One HTTP exchange with JSON-ish bodies of `body_bytes` each.
fn exchange(i: usize, body_bytes: usize) -> Event {
    let body = |prefix: &str| {
        let mut b = format!("{{\"{prefix}\":\"");
        while b.len() + 2 < body_bytes {
            b.push((b'a' + (b.len() % 26) as u8) as char);
        }
        b.push_str("\"}");
        bytes::Bytes::from(b)
    };
    HttpExchange {
        request_id: format!("req-{i}"),
        method: "POST".into(),
        path: "/v1/chat/completions".into(),
        status: 200,
        duration_ns: 1_234_567,
        response_headers: Some(
            [(
                "Content-Type".to_string(),
                vec!["application/json".to_string()],
            )]
            .into(),
        ),
        request_body: Some(body("model")),
        response_body: Some(body("choices")),
        ..Default::default()
    }
    .into()
}

/// Publish `n` exchanges with bodies of `body` bytes to `stream`, `pipeline`
/// per round trip, through the library's publisher; the time it took.
async fn fill(
    url: &str,
    stream: &str,
    n: usize,
    body: usize,
    pipeline: usize,
    max_len: usize,
) -> anyhow::Result<Duration> {
    let target = RedisTarget::new(Some(url), "", None).map_err(anyhow::Error::msg)?;
    let events: Vec<Event> = (0..n).map(|i| exchange(i, body)).collect();
    let start = Instant::now();
    let publisher = Publisher::start(
        &target,
        PublisherConfig {
            wire: Wire::Stream {
                stream: stream.into(),
                max_len,
            },
            buffer: n.max(1),
            pipeline,
        },
    )
    .map_err(anyhow::Error::msg)?;
    publisher.publish_all(events);
    let stats = publisher.close(Duration::from_secs(600)).await;
    let elapsed = start.elapsed();
    if stats.written != n as u64 {
        bail!("only {} of {n} events written: {stats:?}", stats.written);
    }
    Ok(elapsed)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Run `switchyard bench redis-publish`.
pub fn publish(args: RedisPublishArgs) -> anyhow::Result<()> {
    if args.print_sample {
        let mut json = Vec::new();
        exchange(0, args.body_bytes).write_json(&mut json)?;
        std::io::stdout().write_all(&json)?;
        return Ok(());
    }
    let elapsed = runtime()?.block_on(fill(
        &args.redis_url,
        &args.stream,
        args.events,
        args.body_bytes,
        args.pipeline,
        args.max_len,
    ))?;
    println!("events:   {}", args.events);
    println!("elapsed:  {:.3} s", elapsed.as_secs_f64());
    println!(
        "events/s: {:.0}",
        args.events as f64 / elapsed.as_secs_f64()
    );
    Ok(())
}

/// `used_cpu_user + used_cpu_sys` of the Redis server, in seconds, through
/// `redis-cli` (the bench's only other use of it is the final `DEL`).
fn redis_cpu(url: &str) -> Option<f64> {
    let out = Command::new("redis-cli")
        .args(["-u", url, "INFO", "cpu"])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(name)?.strip_prefix(':'))
            .and_then(|v| v.parse::<f64>().ok())
    };
    Some(field("used_cpu_user")? + field("used_cpu_sys")?)
}

/// Run `switchyard bench redis-dispatch`.
pub fn dispatch(args: RedisDispatchArgs) -> anyhow::Result<()> {
    let stream = format!("switchyard-bench-{}", std::process::id());
    let filled = runtime()?.block_on(fill(
        &args.redis_url,
        &stream,
        args.events,
        args.body_bytes,
        512,
        args.events * 2,
    ))?;
    let dir = std::env::temp_dir().join(format!("switchyard-bench-redis-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let out = dir.join("bench.jsonl");
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let before = Cpu::now(&args.redis_url);
    let start = Instant::now();
    let mut server = start_dispatcher(&args, &stream, &out, port)?;
    wait_delivered(&mut server, port, args.events)?;
    let elapsed = start.elapsed();
    let after = Cpu::now(&args.redis_url);
    // Read before the shutdown, so the figure covers the dispatch alone.
    let cpu = cpu_seconds(server.id()).map(Duration::from_secs_f64);
    let peak_rss = peak_rss_kib(server.id());
    Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()?;
    let output = server.wait_with_output()?;
    let file = std::fs::File::open(&out)?;
    let bytes = file.metadata()?.len();
    let lines = BufReader::new(file).lines().count();
    let _ = std::fs::remove_dir_all(&dir);
    let mut probe = Vec::new();
    exchange(0, args.body_bytes).write_json(&mut probe)?;
    println!(
        "events:          {} ({} B request + {} B response body, {} B as JSON)",
        args.events,
        args.body_bytes,
        args.body_bytes,
        probe.len()
    );
    println!("stream filled:   {:.3} s", filled.as_secs_f64());
    println!(
        "dispatch:        {:.3} s (process start to all written)",
        elapsed.as_secs_f64()
    );
    println!(
        "events/s:        {:.0}",
        args.events as f64 / elapsed.as_secs_f64()
    );
    println!(
        "MiB/s written:   {:.1}",
        bytes as f64 / elapsed.as_secs_f64() / (1024.0 * 1024.0)
    );
    print_usage(args.events, cpu, peak_rss, &before, &after);
    println!("lines on disk:   {lines}");
    print!("{}", String::from_utf8_lossy(&output.stdout));
    let _ = Command::new("redis-cli")
        .args(["-u", &args.redis_url, "DEL", &stream])
        .stdout(Stdio::null())
        .status();
    if lines != args.events {
        bail!("expected {} lines on disk, found {lines}", args.events);
    }
    Ok(())
}

/// Start `switchyard dispatcher` (this same program) reading `stream`
/// into the file sink at `out`, listening on loopback `port`.
fn start_dispatcher(
    args: &RedisDispatchArgs,
    stream: &str,
    out: &Path,
    port: u16,
) -> anyhow::Result<Child> {
    Command::new(std::env::current_exe()?)
        .args(["dispatcher", "--service", "file", "--event-bus", "redis"])
        .args([
            "--endpoint",
            out.to_str().context("temp path is not UTF-8")?,
        ])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--redis-url", &args.redis_url, "--redis-stream-key", stream])
        .args(
            args.read_batch
                .map(|n| ["--redis-stream-batch-size".to_string(), n.to_string()])
                .into_iter()
                .flatten(),
        )
        .args(["--batch-size", &args.sink_batch.to_string()])
        .args(["--flush-interval", "100ms", "--queue-capacity", "20000"])
        .args(["--file-sync", &args.sync.to_string()])
        .args(["--sink-option", &format!("direct={}", args.direct)])
        .args(
            args.dispatcher_threads
                .map(|n| ["--worker-threads".to_string(), n.to_string()])
                .into_iter()
                .flatten(),
        )
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot start the dispatcher under test")
}

/// Poll the dispatcher's `/stats` until it reports `events` sent; kill it
/// and fail after ten minutes.
fn wait_delivered(server: &mut Child, port: u16, events: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        if Instant::now() > deadline {
            let _ = server.kill();
            bail!("the dispatcher did not deliver every event in time");
        }
        if let Ok(v) = crate::http::stats(port) {
            if v["engine"]["sent"].as_u64() >= Some(events as u64) {
                return Ok(());
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// CPU readings taken around the dispatch: the Redis server's seconds
/// (a local server only) and the machine's busy and total jiffies.
struct Cpu {
    redis: Option<f64>,
    machine: Option<(u64, u64)>,
}

impl Cpu {
    fn now(redis_url: &str) -> Self {
        Self {
            redis: redis_cpu(redis_url),
            machine: machine_cpu(),
        }
    }
}

/// Print the CPU and memory the dispatch cost: the dispatcher's, the Redis
/// server's and the whole machine's.
fn print_usage(
    events: usize,
    cpu: Option<Duration>,
    peak_rss: Option<u64>,
    before: &Cpu,
    after: &Cpu,
) {
    if let Some(cpu) = cpu {
        // Wall time depends on what else runs on the machine; CPU time per
        // event much less so.
        println!(
            "dispatcher CPU:  {:.3} s ({:.1} µs/event, {:.0} events per CPU-second)",
            cpu.as_secs_f64(),
            cpu.as_secs_f64() * 1e6 / events as f64,
            events as f64 / cpu.as_secs_f64()
        );
    }
    if let Some(kib) = peak_rss {
        println!("dispatcher peak RSS: {:.1} MiB", kib as f64 / 1024.0);
    }
    // The other half of the work, on the same cores (a local server only).
    if let (Some(a), Some(b)) = (before.redis, after.redis) {
        let used = (b - a).max(0.0);
        println!(
            "redis-server CPU: {used:.3} s ({:.1} µs/event)",
            used * 1e6 / events as f64
        );
    }
    if let (Some((busy_a, all_a)), Some((busy_b, all_b))) = (before.machine, after.machine) {
        let (busy, all) = (busy_b.saturating_sub(busy_a), all_b.saturating_sub(all_a));
        if all > 0 {
            println!(
                "machine busy:    {:.0} % of all CPUs during the dispatch",
                busy as f64 * 100.0 / all as f64
            );
        }
    }
}
