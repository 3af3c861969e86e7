//! `switchyard bench syslog-udp`: sends N RFC 5424 messages over UDP to a
//! dispatcher (`--syslog-udp`, blackhole sink), at full speed or at a set
//! rate, then reports what was sent, received and dropped.
//!
//! UDP cannot push back, so under overload messages are lost in two places,
//! both counted here: in the kernel, when the socket's receive buffer is
//! full (sent minus what the source read), and in the source, when the
//! pipeline stays full (its `udp_dropped` counter).

use super::{BenchSink, Server};
use anyhow::{bail, Context};
use clap::Args;
use std::io::Write;
use std::net::UdpSocket;
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
pub struct SyslogUdpArgs {
    /// Messages to send.
    #[arg(long, default_value = "1000000")]
    pub messages: u64,
    /// Messages per second; 0 sends as fast as the client can.
    #[arg(long, default_value = "0")]
    pub rate: u64,
    /// Engine batch size of the dispatcher under test.
    #[arg(long, default_value = "1000")]
    pub sink_batch: usize,
}

/// One RFC 5424 message (~130 bytes).
fn message(seq: u64, out: &mut Vec<u8>) {
    out.clear();
    let _ = write!(
        out,
        "<134>1 2026-11-30T14:00:00.{:06}Z web-01 api-gateway 4242 ACCESS - GET /api/v1/users/{} completed in {}ms seq={seq}",
        seq % 1_000_000,
        seq % 100_000,
        seq % 997
    );
}

/// What the source has done, from `/stats`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Seen {
    /// Messages handed to the pipeline.
    messages: u64,
    /// Messages the source dropped because the pipeline stayed full.
    source_dropped: u64,
    /// Events the sink accepted.
    delivered: u64,
}

fn seen(server: &Server) -> anyhow::Result<Seen> {
    let v = server.stats()?;
    let net = &v["net"]["syslog_udp"];
    Ok(Seen {
        messages: net["messages"]
            .as_u64()
            .context("no net.syslog_udp in /stats")?,
        source_dropped: net["udp_dropped"].as_u64().unwrap_or(0),
        delivered: v["engine"]["sent"].as_u64().unwrap_or(0),
    })
}

/// The kernel's count of UDP datagrams dropped for a full receive buffer
/// (`RcvbufErrors` in `/proc/net/snmp`); system-wide.
fn rcvbuf_errors() -> Option<u64> {
    let snmp = std::fs::read_to_string("/proc/net/snmp").ok()?;
    let mut udp = snmp.lines().filter(|l| l.starts_with("Udp:"));
    let (names, values) = (udp.next()?, udp.next()?);
    let at = names.split_whitespace().position(|n| n == "RcvbufErrors")?;
    values.split_whitespace().nth(at)?.parse().ok()
}

pub fn syslog_udp(args: SyslogUdpArgs) -> anyhow::Result<()> {
    if args.messages == 0 {
        bail!("--messages must be greater than 0");
    }
    let target = UdpSocket::bind("127.0.0.1:0")?.local_addr()?;
    let server = Server::start_with(
        Server::scratch()?,
        BenchSink::Blackhole,
        &[
            "--syslog-udp".into(),
            target.to_string(),
            "--batch-size".into(),
            args.sink_batch.to_string(),
        ],
    )?;
    seen(&server)?; // the source is up
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    socket.connect(target)?;
    let kernel_before = rcvbuf_errors();
    let mut buf = Vec::with_capacity(256);
    let (mut sent, mut send_errors, mut bytes) = (0u64, 0u64, 0u64);
    let start = Instant::now();
    for seq in 0..args.messages {
        if args.rate > 0 && seq % 100 == 0 {
            // Pace in steps of 100 messages.
            let due = Duration::from_secs_f64(seq as f64 / args.rate as f64);
            if let Some(wait) = due.checked_sub(start.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        message(seq, &mut buf);
        match socket.send(&buf) {
            Ok(_) => {
                sent += 1;
                bytes += buf.len() as u64;
            }
            Err(_) => send_errors += 1,
        }
    }
    let send_time = start.elapsed();
    // Wait until nothing moves for half a second (bounded): UDP gives no
    // end-of-stream, and what is lost never arrives.
    let mut last = seen(&server)?;
    let mut last_change = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(60);
    while last_change.elapsed() < Duration::from_millis(500) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        let now = seen(&server)?;
        if now != last {
            last = now;
            last_change = Instant::now();
        }
    }
    let elapsed = last_change.duration_since(start);
    let kernel_dropped = rcvbuf_errors()
        .zip(kernel_before)
        .map(|(after, before)| after.saturating_sub(before));
    let read = last.messages + last.source_dropped;
    let (rss, cpu) = server.usage();
    let rate = |n: u64, t: Duration| n as f64 / t.as_secs_f64();
    println!(
        "target rate:  {}",
        match args.rate {
            0 => "full speed".to_string(),
            r => format!("{r} messages/s"),
        }
    );
    println!(
        "sent:         {sent} in {:.3} s ({:.0} events/s; {send_errors} send errors)",
        send_time.as_secs_f64(),
        rate(sent, send_time)
    );
    println!(
        "read by source: {read} ({:.1} %)",
        read as f64 * 100.0 / sent.max(1) as f64
    );
    println!(
        "dropped by the socket (sent − read): {}",
        sent.saturating_sub(read)
    );
    if let Some(k) = kernel_dropped {
        println!("  kernel RcvbufErrors during the run (system-wide): {k}");
    }
    println!(
        "dropped by the source (pipeline full): {}",
        last.source_dropped
    );
    println!(
        "delivered:    {} ({:.0} events/s over {:.3} s)",
        last.delivered,
        rate(last.delivered, elapsed),
        elapsed.as_secs_f64()
    );
    println!(
        "MiB/s sent:   {:.1}",
        bytes as f64 / send_time.as_secs_f64() / (1024.0 * 1024.0)
    );
    if let Some(mib) = rss {
        println!("server peak RSS: {mib:.1} MiB");
    }
    if let Some(cpu) = cpu {
        println!(
            "server CPU:   {cpu:.2} s ({:.2} µs per message read)",
            cpu * 1e6 / read.max(1) as f64
        );
    }
    server.finish(0)
}
