//! Helicone options from the plugin map.

use crate::http_common::options::{self, Secret};
use crate::http_common::HttpOptions;
use switchyard_core::SinkConfig;

/// Helicone's manual-logger endpoint.
pub const DEFAULT_ENDPOINT: &str = "https://api.worker.helicone.ai/custom/v1/log";

/// Everything the Helicone sink needs.
#[derive(Debug, Clone)]
pub struct HeliconeConfig {
    /// Endpoint and timeouts.
    pub http: HttpOptions,
    /// Sent as a bearer token.
    pub api_key: Secret,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// `Helicone-Provider` meta value.
    pub provider: String,
}

impl HeliconeConfig {
    /// Read and check the options.
    pub fn from_config(cfg: &SinkConfig) -> Result<Self, String> {
        Ok(Self {
            api_key: options::api_key("helicone", cfg)?,
            http: HttpOptions::from_config("helicone", cfg, Some(DEFAULT_ENDPOINT))?,
            concurrency: options::positive(cfg, "concurrency", 8)?,
            provider: cfg
                .get("provider")
                .filter(|p| !p.is_empty())
                .cloned()
                .unwrap_or_else(|| "openai".into()),
        })
    }
}
