//! `switchyard bench …`: the load tools' command line. The tools themselves
//! live in the `switchyard-loadgen` crate; the ones that measure a
//! dispatcher start this same program as one.

use clap::Subcommand;
use switchyard_loadgen as loadgen;

/// Load tools that measure a real dispatcher.
#[derive(Subcommand)]
pub enum BenchCommand {
    /// Post log records to a dispatcher with the file sink; print events/s, MiB/s, peak RSS.
    Ingest(loadgen::ingest::IngestArgs),
    /// Tail a file of NDJSON log records into the file (or blackhole) sink; print events/s, MiB/s, peak RSS, CPU.
    Tail(loadgen::tail::TailArgs),
    /// Send RFC 5424 syslog over UDP to a dispatcher with the blackhole sink; print events/s and drops.
    SyslogUdp(loadgen::syslog_udp::SyslogUdpArgs),
    /// Publish HTTP exchanges to a Redis stream through the library publisher; print events/s.
    RedisPublish(loadgen::redis::RedisPublishArgs),
    /// Fill a Redis stream, then time a dispatcher (`--event-bus redis`, file sink) draining it.
    RedisDispatch(loadgen::redis::RedisDispatchArgs),
    /// Push log records through the Loki sink to an instant in-process server; print events/s, bytes on the wire per event, peak RSS.
    Loki(loadgen::loki::LokiArgs),
}

/// Run one load tool.
pub fn main(command: BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Ingest(args) => loadgen::ingest::run(args),
        BenchCommand::Tail(args) => loadgen::tail::run(args),
        BenchCommand::SyslogUdp(args) => loadgen::syslog_udp::run(args),
        BenchCommand::RedisPublish(args) => loadgen::redis::publish(args),
        BenchCommand::RedisDispatch(args) => loadgen::redis::dispatch(args),
        BenchCommand::Loki(args) => loadgen::loki::run(args),
    }
}
