//! `--ingest-max-connections` and the other bounds of the dispatcher's HTTP
//! ingest server, across all its clients (see [`IngestLimits`] for the
//! reasoning behind the defaults).

use clap::Args;
use std::time::Duration;
use switchyard_sources::http::IngestLimits;

/// Bounds of the HTTP ingest server of `switchyard dispatcher`.
#[derive(Args, Debug, Clone)]
pub struct IngestLimitArgs {
    /// Most open ingest connections; more are closed as soon as accepted
    /// (counted as `connections_refused`).
    #[arg(long, env = "DISPATCHER_INGEST_MAX_CONNECTIONS", default_value = "1024", value_parser = crate::cli::positive)]
    pub ingest_max_connections: usize,
    /// Most ingest requests in progress; more are answered `503` with
    /// `Retry-After`.
    #[arg(long, env = "DISPATCHER_INGEST_MAX_CONCURRENT_REQUESTS", default_value = "256", value_parser = crate::cli::positive)]
    pub ingest_max_concurrent_requests: usize,
    /// Most request body bytes held in memory across all requests; a request
    /// whose body would go over is answered `503` with `Retry-After`.
    #[arg(long, env = "DISPATCHER_INGEST_MAX_BODY_MEMORY", default_value = "67108864", value_parser = crate::cli::positive)]
    pub ingest_max_body_memory: usize,
    /// Longest time from a request's first byte to its complete head; then
    /// the connection is closed.
    #[arg(long, env = "DISPATCHER_INGEST_HEADER_TIMEOUT", default_value = "10s", value_parser = crate::cli::duration)]
    pub ingest_header_timeout: Duration,
    /// Longest time to receive a whole request body; then `408` and the
    /// connection is closed.
    #[arg(long, env = "DISPATCHER_INGEST_BODY_TIMEOUT", default_value = "30s", value_parser = crate::cli::duration)]
    pub ingest_body_timeout: Duration,
    /// Longest an open connection may wait without a request (new, or kept
    /// alive after an answer); then it is closed.
    #[arg(long, env = "DISPATCHER_INGEST_IDLE_TIMEOUT", default_value = "60s", value_parser = crate::cli::duration)]
    pub ingest_idle_timeout: Duration,
}

impl IngestLimitArgs {
    /// The bounds these flags describe.
    pub fn limits(&self) -> IngestLimits {
        IngestLimits {
            max_connections: self.ingest_max_connections,
            max_concurrent_requests: self.ingest_max_concurrent_requests,
            max_body_memory: self.ingest_max_body_memory,
            header_timeout: self.ingest_header_timeout,
            body_timeout: self.ingest_body_timeout,
            idle_timeout: self.ingest_idle_timeout,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::cli::{Cli, Command};
    use clap::Parser;

    #[test]
    fn the_flag_defaults_are_the_library_defaults() {
        let cli = Cli::try_parse_from(["switchyard", "dispatcher"]).unwrap();
        let Command::Dispatcher(args) = cli.command else {
            panic!("parsed as another command");
        };
        let (flags, library) = (
            args.ingest_limits.limits(),
            switchyard_sources::http::IngestLimits::default(),
        );
        assert_eq!(format!("{flags:?}"), format!("{library:?}"));
    }
}
