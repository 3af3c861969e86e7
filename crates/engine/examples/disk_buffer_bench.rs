//! Disk buffer throughput: append N MiB of ~170-byte log records from several
//! concurrent sources (each append waits for its group-commit sync), then read
//! them all back through the engine's intake and acknowledge them.
//!
//! For scale it first writes the same number of bytes two plain ways: one
//! `fdatasync` per chunk (no group commit) and one sync at the end (the
//! disk's streaming ceiling).
//!
//! ```text
//! cargo run --release -p switchyard-engine --example disk_buffer_bench -- [MiB] [sources] [events-per-chunk] [pipelined]
//! ```
//! Defaults: 256 MiB, 8 sources, 1000 events per chunk. With `pipelined` = 1
//! the sources append as a pipeline's router does (`send` returns once the
//! chunk is queued; the sync resolves the chunk's tokens), and the write
//! phase ends when every token is resolved, i.e. when everything is durable.
//! Files go to a temporary directory under the current one, removed at the
//! end.

use std::io::Write;
use std::time::{Duration, Instant};
use switchyard_core::{Event, Fate, LogRecord};
use switchyard_engine::disk_buffer::{DiskBuffer, DiskBufferConfig};
use switchyard_engine::intake;

/// A log record of about the size the benchmark targets.
fn template() -> Event {
    let line = r#"{"ts":"2026-11-30T12:00:00.123Z","level":"info","msg":"GET /api/v1/items 200","duration_ms":12,"user":"u-1842","page":3}"#;
    let mut rec: LogRecord = serde_json::from_str(line).expect("valid JSON");
    rec.source_type = Some("http");
    rec.into()
}

fn mib_per_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / (1 << 20) as f64 / d.as_secs_f64()
}

fn main() {
    let mut args = std::env::args()
        .skip(1)
        .map(|a| a.parse::<u64>().expect("numbers"));
    let mib = args.next().unwrap_or(256);
    let sources = args.next().unwrap_or(8) as usize;
    let chunk = args.next().unwrap_or(1000) as usize;
    let pipelined = args.next().unwrap_or(0) == 1;

    let event = template();
    let record_len = {
        let mut probe = Vec::new();
        switchyard_core::event_codec::encode(&event, &mut probe);
        probe.len() + 12
    };
    let total_bytes = mib << 20;
    let chunks = (total_bytes as usize / record_len).div_ceil(chunk);
    let events = (chunks * chunk) as u64;
    let bytes = events * record_len as u64;
    println!(
        "record {record_len} bytes (event {} bytes + 12 header); {events} events, {:.0} MiB; {sources} sources{}, {chunk} events per chunk",
        record_len - 12,
        if pipelined { " (pipelined)" } else { "" },
        bytes as f64 / (1 << 20) as f64
    );

    let dir = tempfile::tempdir_in(".").expect("temp dir");
    plain_writes(dir.path(), chunks, chunk * record_len);

    // As in the dispatcher: a multi-threaded runtime, so sources encode
    // their chunks in parallel with the writer thread.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let buffer_dir = dir.path().join("buffer");
        let config = DiskBufferConfig::new(&buffer_dir, bytes * 2);
        let (mem, mut rx) = intake(10_000);
        let (tx, handle) = DiskBuffer::open(config)
            .expect("open")
            .start(mem)
            .expect("start");
        let tx = if pipelined { tx.pipelined() } else { tx };

        let t = Instant::now();
        let tasks: Vec<_> = (0..sources)
            .map(|s| {
                let tx = tx.clone();
                let event = event.clone();
                let mine = chunks / sources + usize::from(s < chunks % sources);
                tokio::spawn(async move {
                    let mut outcomes = Vec::new();
                    for _ in 0..mine {
                        let (ack, outcome) = switchyard_core::AckBatch::new();
                        let batch = (0..chunk)
                            .map(|_| event.clone().with_ack(ack.token()))
                            .collect();
                        drop(ack);
                        assert!(tx.send(batch).await.is_ok(), "append failed");
                        outcomes.push(outcome);
                    }
                    // Durable only once every chunk's tokens are resolved.
                    for o in outcomes {
                        let o = o.await.expect("outcome");
                        assert_eq!(o.unresolved, 0, "every event on disk");
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("source task");
        }
        let write = t.elapsed();
        println!(
            "disk buffer write (group commit): {:.1} MiB/s, {:.0} events/s ({:.2} s)",
            mib_per_s(bytes, write),
            events as f64 / write.as_secs_f64(),
            write.as_secs_f64()
        );

        let t = Instant::now();
        let mut read = 0u64;
        while read < events {
            let got = rx.recv().await.expect("queue open");
            read += got.len() as u64;
            for mut e in got {
                e.resolve(Fate::Delivered);
            }
        }
        let took = t.elapsed();
        println!(
            "disk buffer read + acknowledge: {:.1} MiB/s, {:.0} events/s ({:.2} s; just written, so mostly from the page cache)",
            mib_per_s(bytes, took),
            events as f64 / took.as_secs_f64(),
            took.as_secs_f64()
        );
        drop(tx);
        while rx.recv().await.is_some() {}
        let stats = handle.finish(Duration::from_secs(30)).await;
        println!(
            "left unacknowledged: {} bytes; damaged: {}",
            stats.used_bytes, stats.corrupt_records
        );
    });
}

/// The same bytes written without the buffer: one sync per chunk, then one
/// sync in all.
fn plain_writes(dir: &std::path::Path, chunks: usize, chunk_bytes: usize) {
    let data = vec![0x5a_u8; chunk_bytes];
    let bytes = (chunks * chunk_bytes) as u64;
    for (name, sync_each) in [
        ("one fdatasync per chunk", true),
        ("one fdatasync at the end", false),
    ] {
        let path = dir.join("plain.bin");
        let mut f = std::fs::File::create(&path).expect("create");
        let t = Instant::now();
        for _ in 0..chunks {
            f.write_all(&data).expect("write");
            if sync_each {
                f.sync_data().expect("sync");
            }
        }
        f.sync_data().expect("sync");
        let took = t.elapsed();
        println!(
            "plain file, {name}: {:.1} MiB/s ({:.2} s)",
            mib_per_s(bytes, took),
            took.as_secs_f64()
        );
        drop(f);
        std::fs::remove_file(path).expect("remove");
    }
}
