//! A dispatcher under test: `switchyard dispatcher` started as a child
//! process on a free loopback port with the file or blackhole sink, watched
//! through its `/stats`, stopped with SIGTERM, and its output checked.

use crate::http;
use crate::usage::{cpu_seconds, peak_rss_kib};
use anyhow::{bail, Context};
use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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
        let (mut s, mut r) = http::connect(self.port)?;
        loop {
            let (_, body) = http::http(&mut s, &mut r, "GET", "/stats", b"")?;
            let v: serde_json::Value = serde_json::from_slice(&body)?;
            if v["engine"]["sent"].as_u64() >= Some(n) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// The server's `/stats` document.
    pub fn stats(&self) -> anyhow::Result<serde_json::Value> {
        http::stats(self.port)
    }

    /// Peak RSS (MiB) and CPU seconds used since start.
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
