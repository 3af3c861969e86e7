//! `switchyard bench ...`: load tools that measure a real dispatcher (this
//! same binary, started as a child process with the file or blackhole sink).
//!
//! - [`ingest`]: HTTP ingest → file.
//! - [`tail`]: file tail → file or blackhole.
//! - [`syslog_udp`]: syslog over UDP → blackhole, with drops counted.
//! - [`loki`]: the Loki sink against an instant in-process server.

pub mod ingest;
pub mod loki;
pub mod syslog_udp;
pub mod tail;

use anyhow::{bail, Context};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One ~170-byte log record as JSON, the shape both tools use.
pub fn record(seq: usize, out: &mut String) {
    use std::fmt::Write as _;
    let _ = write!(
        out,
        r#"{{"timestamp":"2026-11-22T09:00:00.{:06}Z","level":"info","message":"GET /api/v1/users/{} completed in {}ms","service":"api-gateway","host":"web-01","seq":{seq}}}"#,
        seq % 1_000_000,
        seq % 100_000,
        seq % 997
    );
}

/// The sink of the dispatcher under test.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum BenchSink {
    /// JSON lines in a file of the scratch directory (checked after the run).
    File,
    /// Accept and discard: measures everything but the sink.
    Blackhole,
}

/// A dispatcher under test and its scratch directory.
pub struct Server {
    child: Child,
    /// Its ingest port.
    pub port: u16,
    /// Scratch directory (removed when done).
    pub dir: PathBuf,
    /// The JSONL file it writes (with the file sink).
    pub out: Option<PathBuf>,
    cpu_at_start: f64,
}

impl Server {
    /// A scratch directory for a run, before the server starts.
    pub fn scratch() -> anyhow::Result<PathBuf> {
        let dir = std::env::temp_dir().join(format!("switchyard-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        Ok(dir)
    }

    /// Start `switchyard dispatcher` with the file sink into `dir` plus `extra`
    /// arguments, and wait until it listens.
    pub fn start(dir: PathBuf, extra: &[String]) -> anyhow::Result<Self> {
        Self::start_with(dir, BenchSink::File, extra)
    }

    /// Start `switchyard dispatcher` with `sink` (the file sink writes into
    /// `dir`) plus `extra` arguments, and wait until it listens.
    pub fn start_with(dir: PathBuf, sink: BenchSink, extra: &[String]) -> anyhow::Result<Self> {
        let out = (sink == BenchSink::File).then(|| dir.join("bench.jsonl"));
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut command = Command::new(std::env::current_exe()?);
        command.args(["dispatcher", "--flush-interval", "200ms"]);
        match &out {
            Some(out) => command.args([
                "--service",
                "file",
                "--endpoint",
                out.to_str().context("temp path is not UTF-8")?,
            ]),
            None => command.args(["--service", "blackhole"]),
        };
        let mut child = command
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .context("cannot start the dispatcher under test")?;
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                let _ = child.kill();
                bail!("the dispatcher did not start listening");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let cpu_at_start = cpu_seconds(child.id()).unwrap_or(0.0);
        Ok(Self {
            child,
            port,
            dir,
            out,
            cpu_at_start,
        })
    }

    /// Wait until the engine reports `n` events delivered.
    pub fn wait_sent(&self, n: u64) -> anyhow::Result<()> {
        let (mut s, mut r) = connect(self.port)?;
        loop {
            let (_, body) = http(&mut s, &mut r, "GET", "/stats", b"")?;
            let v: serde_json::Value = serde_json::from_slice(&body)?;
            if v["engine"]["sent"].as_u64() >= Some(n) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// The server's `/stats` document.
    pub fn stats(&self) -> anyhow::Result<serde_json::Value> {
        let (mut s, mut r) = connect(self.port)?;
        let (_, body) = http(&mut s, &mut r, "GET", "/stats", b"")?;
        Ok(serde_json::from_slice(&body)?)
    }

    /// Peak RSS and CPU seconds used since start.
    pub fn usage(&self) -> (Option<f64>, Option<f64>) {
        let rss = peak_rss_kib(self.child.id()).map(|k| k as f64 / 1024.0);
        let cpu = cpu_seconds(self.child.id()).map(|c| c - self.cpu_at_start);
        (rss, cpu)
    }

    /// SIGTERM it, check the JSONL (if any) holds `expected` lines, print
    /// its final counters, remove the scratch directory.
    pub fn finish(self, expected: usize) -> anyhow::Result<()> {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        let output = self.child.wait_with_output()?;
        let lines = match &self.out {
            Some(out) => Some(BufReader::new(std::fs::File::open(out)?).lines().count()),
            None => None,
        };
        let _ = std::fs::remove_dir_all(&self.dir);
        print!("{}", String::from_utf8_lossy(&output.stdout));
        if let Some(lines) = lines {
            println!("lines on disk: {lines}");
            if lines != expected {
                bail!("expected {expected} lines on disk, found {lines}");
            }
        }
        Ok(())
    }
}

/// Print the numbers every tool reports.
pub fn report(events: usize, bytes: u64, elapsed: Duration, rss: Option<f64>, cpu: Option<f64>) {
    let secs = elapsed.as_secs_f64();
    println!("avg record:   {:.0} bytes", bytes as f64 / events as f64);
    println!("elapsed:      {secs:.3} s");
    println!("events/s:     {:.0}", events as f64 / secs);
    println!(
        "MiB/s:        {:.1}",
        bytes as f64 / secs / (1024.0 * 1024.0)
    );
    match rss {
        Some(mib) => println!("server peak RSS: {mib:.1} MiB"),
        None => println!("server peak RSS: unknown (no /proc)"),
    }
    if let Some(cpu) = cpu {
        println!(
            "server CPU:   {cpu:.2} s ({:.2} µs per event)",
            cpu * 1e6 / events as f64
        );
    }
}

/// Minimal HTTP/1.1 request on a keep-alive connection; returns (status, body).
pub fn http(
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

/// A keep-alive connection to the server under test.
pub fn connect(port: u16) -> anyhow::Result<(TcpStream, BufReader<TcpStream>)> {
    let s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_nodelay(true)?;
    let r = BufReader::new(s.try_clone()?);
    Ok((s, r))
}

pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// User + system CPU time a process has used, from `/proc/<pid>/stat`.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at `) `.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split(' ');
    let utime: f64 = fields.nth(11)?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    // Clock ticks; Linux reports them at 100 Hz to user space.
    Some((utime + stime) / 100.0)
}

/// Size of a file, for reports.
pub fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}
