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
            http: {
                let mut http = HttpOptions::from_config("lunary", cfg, Some(DEFAULT_ENDPOINT))?;
                http.endpoint = ingestion_url(&http.endpoint);
                http
            },
            max_events: options::positive(cfg, "batch-max-events", 200)?.max(2),
            max_bytes: options::positive(cfg, "batch-max-bytes", 2 * 1024 * 1024)?,
        })
    }
}

/// Lunary's SDKs take the base URL (`https://api.lunary.ai`) and add the
/// ingestion path; so does this sink when the URL has no path of its own. A
/// URL with a path is used as it is.
pub fn ingestion_url(endpoint: &str) -> String {
    let after_scheme = endpoint.find("://").map_or(0, |i| i + 3);
    let rest = &endpoint[after_scheme..];
    let path = rest.find(['/', '?', '#']).map_or("", |i| &rest[i..]);
    if path.is_empty() || path == "/" {
        format!("{}{INGEST_PATH}", endpoint.trim_end_matches('/'))
    } else {
        endpoint.to_string()
    }
}

/// Where Lunary takes runs.
const INGEST_PATH: &str = "/v1/runs/ingest";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_base_url_gets_the_ingestion_path_and_a_full_one_is_kept() {
        for (given, used) in [
            (
                "https://api.lunary.ai",
                "https://api.lunary.ai/v1/runs/ingest",
            ),
            (
                "https://api.lunary.ai/",
                "https://api.lunary.ai/v1/runs/ingest",
            ),
            (
                "http://127.0.0.1:3333",
                "http://127.0.0.1:3333/v1/runs/ingest",
            ),
            (
                "https://api.lunary.ai/v1/runs/ingest",
                "https://api.lunary.ai/v1/runs/ingest",
            ),
            (
                "http://proxy:8080/lunary/ingest",
                "http://proxy:8080/lunary/ingest",
            ),
        ] {
            assert_eq!(ingestion_url(given), used, "{given}");
        }
    }
}
