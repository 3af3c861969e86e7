//! The `stdout` sink: one JSON line per event on standard output, written
//! and flushed once per batch. The dispatcher logs to standard error, so the
//! output is only events (and the final counters line at exit).

use async_trait::async_trait;
use serde::Deserialize;
use std::io::Write;
use switchyard_core::{BuildError, Event, Sink, SinkError};

/// Writes JSON lines to standard output.
pub struct Stdout;

/// The `stdout` sink takes no options.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StdoutConfig {}

impl Stdout {
    /// Build (the registry's factory).
    pub fn build(_config: StdoutConfig) -> Result<Box<dyn Sink>, BuildError> {
        Ok(Box::new(Stdout))
    }
}

/// Encode a batch as JSON lines.
pub fn encode(events: &[Event]) -> Result<Vec<u8>, SinkError> {
    let mut lines = Vec::with_capacity(events.len() * 256);
    for event in events {
        event
            .write_json(&mut lines)
            .map_err(|e| SinkError::permanent(format!("cannot encode event {}: {e}", event.id)))?;
        lines.push(b'\n');
    }
    Ok(lines)
}

#[async_trait]
impl Sink for Stdout {
    async fn send(&self, events: &[Event]) -> Result<(), SinkError> {
        let lines = encode(events)?;
        tokio::task::spawn_blocking(move || {
            let mut out = std::io::stdout().lock();
            out.write_all(&lines)?;
            out.flush()
        })
        .await
        .map_err(|e| SinkError::transient(format!("stdout write task failed: {e}")))?
        .map_err(|e| SinkError::transient(format!("cannot write to standard output: {e}")))
    }
}
