//! `switchyard bench ingest`: the end-to-end load tool. Starts a dispatcher
//! (this same binary) with the file sink, posts N log records in JSON-array
//! batches over C keep-alive connections, waits until the engine reports all of
//! them written, then prints events/s, MiB/s and the server's peak RSS.
//!
//! The client is a minimal blocking HTTP/1.1 writer on purpose: it costs the
//! shared CPU as little as possible, so the numbers are the server's.

use anyhow::{bail, Context};
use clap::Args;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
pub struct IngestArgs {
    /// Records to send.
    #[arg(long, default_value = "1000000")]
    pub records: usize,
    /// Records per request (one JSON array).
    #[arg(long, default_value = "1000")]
    pub batch: usize,
    /// Parallel connections.
    #[arg(long, default_value = "4")]
    pub connections: usize,
    /// Engine batch size of the dispatcher under test.
    #[arg(long, default_value = "1000")]
    pub sink_batch: usize,
    /// fdatasync once per engine batch (the dispatcher's default).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub sync: bool,
}

/// One ~170-byte record.
fn record(seq: usize, out: &mut String) {
    use std::fmt::Write as _;
    let _ = write!(
        out,
        r#"{{"timestamp":"2026-11-22T09:00:00.{:06}Z","level":"info","message":"GET /api/v1/users/{} completed in {}ms","service":"api-gateway","host":"web-01","seq":{seq}}}"#,
        seq % 1_000_000,
        seq % 100_000,
        seq % 997
    );
}

fn http(
    stream: &mut TcpStream,
    reader: &mut BufReader<TcpStream>,
    method: &str,
    path: &str,
    body: &[u8],
) -> anyhow::Result<(u16, Vec<u8>)> {
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )?;
    stream.write_all(body)?;
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let status: u16 = line.get(9..12).context("bad status line")?.parse()?;
    let mut len = 0;
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        if line == "\r\n" || line.is_empty() {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse()?;
        }
    }
    let mut resp = vec![0; len];
    reader.read_exact(&mut resp)?;
    Ok((status, resp))
}

fn connect(port: u16) -> anyhow::Result<(TcpStream, BufReader<TcpStream>)> {
    let s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_nodelay(true)?;
    let r = BufReader::new(s.try_clone()?);
    Ok((s, r))
}

fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// User + system CPU time a process has used, from `/proc/<pid>/stat`.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at `) `.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split(' ');
    let utime: f64 = fields.nth(11)?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    // Clock ticks; Linux reports them at 100 Hz to user space.
    Some((utime + stime) / 100.0)
}

pub fn ingest(args: IngestArgs) -> anyhow::Result<()> {
    if args.records == 0 || args.batch == 0 || args.connections == 0 {
        bail!("--records, --batch and --connections must be greater than 0");
    }
    let dir = std::env::temp_dir().join(format!("switchyard-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let out = dir.join("bench.jsonl");
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let mut server = Command::new(std::env::current_exe()?)
        .args([
            "dispatcher",
            "--service",
            "file",
            "--flush-interval",
            "200ms",
        ])
        .args([
            "--endpoint",
            out.to_str().context("temp path is not UTF-8")?,
        ])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--batch-size", &args.sink_batch.to_string()])
        .args(["--file-sync", &args.sync.to_string()])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot start the dispatcher under test")?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            let _ = server.kill();
            bail!("the dispatcher did not start listening");
        }
        std::thread::sleep(Duration::from_millis(10));
    }

    // Every request body is built before the clock starts, so the client
    // spends the shared cores on sending only.
    let requests = args.records.div_ceil(args.batch);
    let bodies: std::sync::Arc<Vec<Vec<u8>>> = std::sync::Arc::new(
        (0..requests)
            .map(|req| {
                let mut body = String::with_capacity(args.batch * 200);
                body.push('[');
                for seq in req * args.batch..((req + 1) * args.batch).min(args.records) {
                    if body.len() > 1 {
                        body.push(',');
                    }
                    record(seq, &mut body);
                }
                body.push(']');
                body.into_bytes()
            })
            .collect(),
    );
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let server_cpu_before = cpu_seconds(server.id()).unwrap_or(0.0);
    let client_cpu_before = cpu_seconds(std::process::id()).unwrap_or(0.0);
    let start = Instant::now();
    let workers: Vec<_> = (0..args.connections)
        .map(|_| {
            let (next, bodies) = (next.clone(), bodies.clone());
            std::thread::spawn(move || -> anyhow::Result<u64> {
                let (mut s, mut r) = connect(port)?;
                let mut bytes = 0u64;
                loop {
                    let req = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(body) = bodies.get(req) else {
                        return Ok(bytes);
                    };
                    let (status, resp) = http(&mut s, &mut r, "POST", "/v1/logs", body)?;
                    if status != 202 {
                        bail!(
                            "request {req}: HTTP {status}: {}",
                            String::from_utf8_lossy(&resp)
                        );
                    }
                    bytes += body.len() as u64;
                }
            })
        })
        .collect();
    let mut bytes = 0;
    for w in workers {
        bytes += w
            .join()
            .map_err(|_| anyhow::anyhow!("a client thread panicked"))??;
    }
    // Wait until the engine has written every record.
    let (mut s, mut r) = connect(port)?;
    loop {
        let (_, body) = http(&mut s, &mut r, "GET", "/stats", b"")?;
        let v: serde_json::Value = serde_json::from_slice(&body)?;
        if v["engine"]["sent"].as_u64() >= Some(args.records as u64) {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let elapsed = start.elapsed();
    let rss = peak_rss_kib(server.id());
    let server_cpu = cpu_seconds(server.id()).map(|c| c - server_cpu_before);
    let client_cpu = cpu_seconds(std::process::id()).map(|c| c - client_cpu_before);
    Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()?;
    let output = server.wait_with_output()?;
    let lines = BufReader::new(std::fs::File::open(&out)?).lines().count();
    let _ = std::fs::remove_dir_all(&dir);
    let secs = elapsed.as_secs_f64();
    println!(
        "records:      {} ({} per request, {} connections)",
        args.records, args.batch, args.connections
    );
    println!("lines on disk: {lines}");
    println!(
        "avg record:   {:.0} bytes",
        bytes as f64 / args.records as f64
    );
    println!("elapsed:      {secs:.3} s");
    println!("events/s:     {:.0}", args.records as f64 / secs);
    println!(
        "MiB/s:        {:.1}",
        bytes as f64 / secs / (1024.0 * 1024.0)
    );
    match rss {
        Some(kib) => println!("server peak RSS: {:.1} MiB", kib as f64 / 1024.0),
        None => println!("server peak RSS: unknown (no /proc)"),
    }
    for (who, cpu) in [("server", server_cpu), ("client", client_cpu)] {
        if let Some(cpu) = cpu {
            println!(
                "{who} CPU:   {cpu:.2} s ({:.2} µs per event)",
                cpu * 1e6 / args.records as f64
            );
        }
    }
    print!("{}", String::from_utf8_lossy(&output.stdout));
    if lines != args.records {
        bail!("expected {} lines on disk, found {lines}", args.records);
    }
    Ok(())
}
