//! `switchyard bench ingest`: posts N log records in JSON-array batches over
//! C keep-alive connections, waits until the engine reports all of them
//! written, then prints events/s, MiB/s, peak RSS and CPU.
//!
//! The client is a minimal blocking HTTP/1.1 writer on purpose, and builds
//! every body before the clock starts: it costs the shared CPU as little as
//! possible, so the numbers are the server's.

use crate::http::{connect, http};
use crate::record::record;
use crate::report::report;
use crate::server::Server;
use crate::usage::cpu_seconds;
use anyhow::bail;
use clap::Args;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

/// Flags of `switchyard bench ingest`.
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

/// Run `switchyard bench ingest`.
pub fn run(args: IngestArgs) -> anyhow::Result<()> {
    if args.records == 0 || args.batch == 0 || args.connections == 0 {
        bail!("--records, --batch and --connections must be greater than 0");
    }
    let server = Server::start(
        Server::scratch()?,
        &[
            "--batch-size".into(),
            args.sink_batch.to_string(),
            "--file-sync".into(),
            args.sync.to_string(),
        ],
    )?;
    let bodies = Arc::new(bodies(args.records, args.batch));
    let client_cpu_before = cpu_seconds(std::process::id()).unwrap_or(0.0);
    let start = Instant::now();
    let bytes = post_all(server.port, bodies, args.connections)?;
    server.wait_sent(args.records as u64)?;
    let elapsed = start.elapsed();
    let (rss, cpu) = server.usage();
    let client_cpu = cpu_seconds(std::process::id()).map(|c| c - client_cpu_before);
    println!(
        "records:      {} ({} per request, {} connections)",
        args.records, args.batch, args.connections
    );
    report(args.records, bytes, elapsed, rss, cpu);
    if let Some(cpu) = client_cpu {
        println!(
            "client CPU:   {cpu:.2} s ({:.2} µs per event)",
            cpu * 1e6 / args.records as f64
        );
    }
    server.finish(args.records)
}

/// Every request body: `records` log records as JSON arrays of `batch`.
fn bodies(records: usize, batch: usize) -> Vec<Vec<u8>> {
    (0..records.div_ceil(batch))
        .map(|req| {
            let mut body = String::with_capacity(batch * 200);
            body.push('[');
            for seq in req * batch..((req + 1) * batch).min(records) {
                if body.len() > 1 {
                    body.push(',');
                }
                record(seq, &mut body);
            }
            body.push(']');
            body.into_bytes()
        })
        .collect()
}

/// Post every body to the server on `port` over `connections` keep-alive
/// connections, each taking the next unsent body; the bytes posted.
fn post_all(port: u16, bodies: Arc<Vec<Vec<u8>>>, connections: usize) -> anyhow::Result<u64> {
    let next = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..connections)
        .map(|_| {
            let (next, bodies) = (next.clone(), bodies.clone());
            std::thread::spawn(move || -> anyhow::Result<u64> {
                let (mut s, mut r) = connect(port)?;
                let mut bytes = 0u64;
                loop {
                    let req = next.fetch_add(1, Relaxed);
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
    Ok(bytes)
}
