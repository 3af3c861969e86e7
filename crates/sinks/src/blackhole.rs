//! The `blackhole` sink: accepts and discards every batch. The engine's `sent`
//! counter says how many it took; useful to measure everything but the sink.

use async_trait::async_trait;
use switchyard_core::{Event, Sink, SinkConfig, SinkError};

/// Discards events.
pub struct Blackhole;

impl Blackhole {
    /// Build; takes no options.
    pub fn from_config(_cfg: &SinkConfig) -> Result<Box<dyn Sink>, String> {
        Ok(Box::new(Blackhole))
    }
}

#[async_trait]
impl Sink for Blackhole {
    async fn send(&self, _events: &[Event]) -> Result<(), SinkError> {
        Ok(())
    }
}
