//! Lunary options from the plugin map.

use crate::http_common::options::{self, Secret};
use crate::http_common::HttpOptions;
use switchyard_core::SinkConfig;

/// Lunary's cloud ingestion endpoint.
pub const DEFAULT_ENDPOINT: &str = "https://api.lunary.ai/v1/runs/ingest";

/// Everything the Lunary sink needs.
#[derive(Debug, Clone)]
pub struct LunaryConfig {
    /// Endpoint and timeouts.
    pub http: HttpOptions,
    /// The project key, sent as a bearer token.
    pub api_key: Secret,
    /// Lunary events per request (each call is two).
    pub max_events: usize,
    /// Request body bound, bytes (a single larger call still goes alone).
    pub max_bytes: usize,
}

impl LunaryConfig {
    /// Read and check the options.
    pub fn from_config(cfg: &SinkConfig) -> Result<Self, String> {
        Ok(Self {
            api_key: options::api_key("lunary", cfg)?,
            http: HttpOptions::from_config("lunary", cfg, Some(DEFAULT_ENDPOINT))?,
            max_events: options::positive(cfg, "batch-max-events", 200)?.max(2),
            max_bytes: options::positive(cfg, "batch-max-bytes", 2 * 1024 * 1024)?,
        })
    }
}
