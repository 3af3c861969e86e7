//! `switchyard bench syslog-udp`: sends N RFC 5424 messages over UDP to a
//! dispatcher (`--syslog-udp`, blackhole sink), at full speed or at a set
//! rate, then reports what was sent, received and dropped.
//!
//! UDP cannot push back, so under overload messages are lost in two places,
//! both counted here: in the kernel, when the socket's receive buffer is
//! full (sent minus what the source read), and in the source, when the
//! pipeline stays full (its `udp_dropped` counter).

use crate::server::{BenchSink, Server};
use anyhow::{bail, Context};
use clap::Args;
use std::io::Write;
use std::net::UdpSocket;
use std::time::{Duration, Instant};

/// Flags of `switchyard bench syslog-udp`.
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

/// Run `switchyard bench syslog-udp`.
pub fn run(args: SyslogUdpArgs) -> anyhow::Result<()> {
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
    let start = Instant::now();
    let sent = send(&socket, &args, start);
    let (last, last_change) = settle(&server)?;
    let elapsed = last_change.duration_since(start);
    let kernel_dropped = rcvbuf_errors()
        .zip(kernel_before)
        .map(|(after, before)| after.saturating_sub(before));
    let (rss, cpu) = server.usage();
    print_report(&args, &sent, &last, elapsed, kernel_dropped);
    if let Some(mib) = rss {
        println!("server peak RSS: {mib:.1} MiB");
    }
    if let Some(cpu) = cpu {
        let read = last.messages + last.source_dropped;
        println!(
            "server CPU:   {cpu:.2} s ({:.2} µs per message read)",
            cpu * 1e6 / read.max(1) as f64
        );
    }
    server.finish(0)
}

/// What the client sent.
struct Sent {
    /// Datagrams the socket took.
    messages: u64,
    /// Datagrams the socket refused.
    errors: u64,
    /// Bytes of the datagrams taken.
    bytes: u64,
    /// Time from the first send to the last.
    time: Duration,
}

/// Send `args.messages` messages on the connected `socket`, paced to
/// `args.rate` if set; the clock started at `start`.
fn send(socket: &UdpSocket, args: &SyslogUdpArgs, start: Instant) -> Sent {
    let mut buf = Vec::with_capacity(256);
    let (mut messages, mut errors, mut bytes) = (0u64, 0u64, 0u64);
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
                messages += 1;
                bytes += buf.len() as u64;
            }
            Err(_) => errors += 1,
        }
    }
    Sent {
        messages,
        errors,
        bytes,
        time: start.elapsed(),
    }
}

/// Wait until nothing moves for half a second (bounded): UDP gives no
/// end-of-stream, and what is lost never arrives. The last figures, and
/// when they last changed.
fn settle(server: &Server) -> anyhow::Result<(Seen, Instant)> {
    let mut last = seen(server)?;
    let mut last_change = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(60);
    while last_change.elapsed() < Duration::from_millis(500) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        let now = seen(server)?;
        if now != last {
            last = now;
            last_change = Instant::now();
        }
    }
    Ok((last, last_change))
}

/// Print what was sent, read, dropped where, and delivered.
fn print_report(
    args: &SyslogUdpArgs,
    sent: &Sent,
    last: &Seen,
    elapsed: Duration,
    kernel_dropped: Option<u64>,
) {
    let read = last.messages + last.source_dropped;
    let rate = |n: u64, t: Duration| n as f64 / t.as_secs_f64();
    println!(
        "target rate:  {}",
        match args.rate {
            0 => "full speed".to_string(),
            r => format!("{r} messages/s"),
        }
    );
    println!(
        "sent:         {} in {:.3} s ({:.0} events/s; {} send errors)",
        sent.messages,
        sent.time.as_secs_f64(),
        rate(sent.messages, sent.time),
        sent.errors
    );
    println!(
        "read by source: {read} ({:.1} %)",
        read as f64 * 100.0 / sent.messages.max(1) as f64
    );
    println!(
        "dropped by the socket (sent − read): {}",
        sent.messages.saturating_sub(read)
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
        sent.bytes as f64 / sent.time.as_secs_f64() / (1024.0 * 1024.0)
    );
}
