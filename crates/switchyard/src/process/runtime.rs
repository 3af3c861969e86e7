//! What every long-running command sets up first: logs to standard error
//! (filtered by `RUST_LOG`, default `info`) and the multi-threaded runtime.

use anyhow::Context;
use std::future::Future;
use std::sync::OnceLock;

static WORKER_THREADS: OnceLock<usize> = OnceLock::new();

/// The runtime's worker threads (`--worker-threads`), set once before the
/// command runs; unset, tokio's default (one per CPU, or
/// `TOKIO_WORKER_THREADS`).
pub fn set_worker_threads(n: usize) {
    let _ = WORKER_THREADS.set(n);
}

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
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(&n) = WORKER_THREADS.get() {
        builder.worker_threads(n);
    }
    builder
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(main)
}
