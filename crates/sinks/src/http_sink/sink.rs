//! Sending: one request per batch.

use super::config::{Compression, Encoding, HttpSinkConfig, HttpSinkSettings};
use super::encode;
use crate::http_common::Client;
use async_trait::async_trait;
use reqwest::header::{HeaderName, HeaderValue, CONTENT_ENCODING, CONTENT_TYPE};
use switchyard_core::{BuildError, Event, Sink, SinkError};

/// POSTs batches to a URL.
pub struct HttpSink {
    client: Client,
    encoding: Encoding,
    compression: Compression,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl HttpSink {
    /// Build from checked settings.
    pub fn new(config: HttpSinkSettings) -> Result<Self, BuildError> {
        let mut headers = vec![(
            CONTENT_TYPE,
            HeaderValue::from_static(match config.encoding {
                Encoding::JsonArray => "application/json",
                Encoding::Ndjson => "application/x-ndjson",
            }),
        )];
        if config.compression == Compression::Gzip {
            headers.push((CONTENT_ENCODING, HeaderValue::from_static("gzip")));
        }
        Ok(Self {
            client: Client::new("http", &config.http, config.headers)?,
            encoding: config.encoding,
            compression: config.compression,
            headers,
        })
    }

    /// Build from the typed config (the registry's factory).
    pub fn build(config: HttpSinkConfig) -> Result<Box<dyn Sink>, BuildError> {
        Ok(Box::new(Self::new(config.settings()?)?))
    }
}

#[async_trait]
impl Sink for HttpSink {
    async fn send(&self, events: &[Event]) -> Result<(), SinkError> {
        let body = encode::batch(events, self.encoding, self.compression)?;
        self.client.post(body, &self.headers).await.map(|_| ())
    }
}
