//! The `blackhole` sink: accepts and discards every batch. The engine's `sent`
//! counter says how many it took; useful to measure everything but the sink.

use async_trait::async_trait;
use serde::Deserialize;
use switchyard_core::{BuildError, Event, Sink, SinkError};

/// Discards events.
pub struct Blackhole;

/// The `blackhole` sink takes no options.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlackholeConfig {}

impl Blackhole {
    /// Build (the registry's factory).
    pub fn build(_config: BlackholeConfig) -> Result<Box<dyn Sink>, BuildError> {
        Ok(Box::new(Blackhole))
    }
}

#[async_trait]
impl Sink for Blackhole {
    async fn send(&self, _events: &[Event]) -> Result<(), SinkError> {
        Ok(())
    }
}
