//! Sending: one request per call, a bounded number in flight, one outcome
//! per call.

use super::config::{HeliconeConfig, HeliconeSettings};
use super::encode;
use crate::http_common::client::{bearer, json_content_type};
use crate::http_common::Client;
use crate::llm_payload;
use async_trait::async_trait;
use futures_util::stream::{self, StreamExt};
use switchyard_core::{BuildError, Event, EventFailure, Sink, SinkError};

const SERVICE: &str = "helicone";

/// Posts LLM calls to Helicone, one request each.
pub struct HeliconeSink {
    client: Client,
    concurrency: usize,
    provider: String,
}

impl HeliconeSink {
    /// Build from checked settings.
    pub fn new(config: HeliconeSettings) -> Result<Self, BuildError> {
        let headers = vec![
            json_content_type(),
            bearer(SERVICE, config.api_key.expose())?,
        ];
        Ok(Self {
            client: Client::new(SERVICE, &config.http, headers)?,
            concurrency: config.concurrency,
            provider: config.provider,
        })
    }

    /// Build from the typed config (the registry's factory).
    pub fn build(config: HeliconeConfig) -> Result<Box<dyn Sink>, BuildError> {
        Ok(Box::new(Self::new(config.settings()?)?))
    }
}

#[async_trait]
impl Sink for HeliconeSink {
    async fn send(&self, events: &[Event]) -> Result<(), SinkError> {
        let mut failures = Vec::new();
        let mut bodies = Vec::with_capacity(events.len());
        for (index, event) in events.iter().enumerate() {
            match llm_payload::read(SERVICE, event) {
                Ok(p) => bodies.push((index, encode::call(&p, &self.provider))),
                Err(error) => failures.push(EventFailure { index, error }),
            }
        }
        let outcomes: Vec<EventFailure> = stream::iter(bodies)
            .map(|(index, body)| async move {
                self.client
                    .post(body, &[])
                    .await
                    .err()
                    .map(|error| EventFailure { index, error })
            })
            .buffer_unordered(self.concurrency)
            .filter_map(|f| async move { f })
            .collect()
            .await;
        failures.extend(outcomes);
        SinkError::from_failures(failures)
    }
}
