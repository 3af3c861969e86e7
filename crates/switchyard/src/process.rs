//! What every long-running command sets up first: logs to standard error
//! (filtered by `RUST_LOG`, default `info`) and the multi-threaded runtime.

use anyhow::Context;
use std::future::Future;

/// Set up logging and run `main` to completion on a new runtime.
pub fn run<F: Future<Output = anyhow::Result<()>>>(main: F) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        // Colour only for a terminal: log files and pipes get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(main)
}
