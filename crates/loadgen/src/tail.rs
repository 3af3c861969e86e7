//! `switchyard bench tail`: writes N NDJSON log records (~170 bytes) to a
//! file, starts a dispatcher that tails it (`--tail-json`) into the file
//! sink (or, with `--sink blackhole`, into nothing, to measure the tail and
//! the engine alone), and measures until the engine reports all of them sent.

use crate::record::record;
use crate::report::report;
use crate::server::{BenchSink, Server};
use crate::usage::file_len;
use anyhow::bail;
use clap::Args;
use std::io::Write;
use std::time::Instant;

/// Flags of `switchyard bench tail`.
#[derive(Args, Debug)]
pub struct TailArgs {
    /// Lines to write and follow.
    #[arg(long, default_value = "1000000")]
    pub lines: usize,
    /// Engine batch size of the dispatcher under test.
    #[arg(long, default_value = "1000")]
    pub sink_batch: usize,
    /// fdatasync once per engine batch (the dispatcher's default).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub sync: bool,
    /// Sink of the dispatcher under test.
    #[arg(long, value_enum, default_value = "file")]
    pub sink: BenchSink,
}

/// Run `switchyard bench tail`.
pub fn run(args: TailArgs) -> anyhow::Result<()> {
    if args.lines == 0 {
        bail!("--lines must be greater than 0");
    }
    let dir = Server::scratch()?;
    let input = dir.join("input.log");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&input)?);
        let mut line = String::with_capacity(256);
        for seq in 0..args.lines {
            line.clear();
            record(seq, &mut line);
            line.push('\n');
            f.write_all(line.as_bytes())?;
        }
        f.flush()?;
    }
    let bytes = file_len(&input);
    // The dispatcher starts reading as soon as it runs: the clock starts
    // just before, and includes its start-up.
    let start = Instant::now();
    let server = Server::start_with(
        dir.clone(),
        args.sink,
        &[
            "--tail".into(),
            input.display().to_string(),
            "--tail-json".into(),
            "--state-dir".into(),
            dir.join("state").display().to_string(),
            "--batch-size".into(),
            args.sink_batch.to_string(),
            "--file-sync".into(),
            args.sync.to_string(),
        ],
    )?;
    server.wait_sent(args.lines as u64)?;
    let elapsed = start.elapsed();
    let (rss, cpu) = server.usage();
    println!("lines:        {} (sink: {:?})", args.lines, args.sink);
    report(args.lines, bytes, elapsed, rss, cpu);
    server.finish(args.lines)
}
