//! The Lunary sink's config: its keys as written (`api-key`, `endpoint`,
//! `batch-max-events`, ...), and the settings it is checked into.

use crate::http_common::options::{self, Secret};
use crate::http_common::HttpOptions;
use serde::Deserialize;
use switchyard_core::options::{ByteSize, Positive, Span};
use switchyard_core::BuildError;

/// Lunary's cloud ingestion endpoint.
pub const DEFAULT_ENDPOINT: &str = "https://api.lunary.ai/v1/runs/ingest";

/// The `lunary` sink's options, as a pipeline file or `--sink-option` gives
/// them.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct LunaryConfig {
    /// The project key, sent as a bearer token (required).
    pub api_key: Option<Secret>,
    /// Ingestion URL, or a base URL that gets `/v1/runs/ingest`; default
    /// [`DEFAULT_ENDPOINT`].
    pub endpoint: Option<String>,
    /// Lunary events per request (each call is two); default 200, at least 2.
    pub batch_max_events: Option<Positive>,
    /// Request body bound; default 2 MiB.
    pub batch_max_bytes: Option<ByteSize>,
    /// Whole-request timeout; default 30s.
    pub timeout: Option<Span>,
    /// Connect timeout; default 10s.
    pub connect_timeout: Option<Span>,
}

/// What the Lunary sink runs with, checked.
#[derive(Debug, Clone)]
pub struct LunarySettings {
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
    /// Check the options.
    pub fn settings(self) -> Result<LunarySettings, BuildError> {
        let api_key = options::api_key("lunary", self.api_key)?;
        let mut http = HttpOptions::new(
            "lunary",
            self.endpoint,
            Some(DEFAULT_ENDPOINT),
            self.timeout,
            self.connect_timeout,
        )?;
        http.endpoint = ingestion_url(&http.endpoint);
        Ok(LunarySettings {
            api_key,
            http,
            max_events: self.batch_max_events.map_or(200, |p| p.0).max(2),
            max_bytes: self.batch_max_bytes.map_or(2 * 1024 * 1024, |b| {
                usize::try_from(b.0).unwrap_or(usize::MAX)
            }),
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
    use switchyard_core::Options;

    fn read(options: Options) -> Result<LunarySettings, BuildError> {
        options
            .read::<LunaryConfig>()
            .and_then(LunaryConfig::settings)
            .map_err(|e| options.locate(e))
    }

    #[test]
    fn defaults() {
        let s = read([("api-key", "k")].into_iter().collect());
        if cfg!(feature = "tls") {
            assert_eq!(s.unwrap().http.endpoint, DEFAULT_ENDPOINT);
        } else {
            let e = s.unwrap_err().to_string();
            assert!(e.contains("default endpoint") && e.contains("TLS"), "{e}");
        }
        let s = read(
            [("api-key", "k"), ("endpoint", "http://127.0.0.1:1/x")]
                .into_iter()
                .collect(),
        )
        .unwrap();
        assert_eq!((s.max_events, s.max_bytes), (200, 2 << 20));
        assert_eq!(s.api_key.expose(), "k");
    }

    #[test]
    fn flags_and_native_yaml_values_read_alike() {
        let flags: Options = [
            ("api-key", "k"),
            ("endpoint", "http://h/x"),
            ("batch-max-events", "5"),
            ("batch-max-bytes", "1KiB"),
        ]
        .into_iter()
        .collect();
        let yaml = Options::from_value(
            serde_json::json!({"api-key": "k", "endpoint": "http://h/x", "batch-max-events": 5, "batch-max-bytes": 1024}),
            "sinks.l.options",
        )
        .unwrap();
        for s in [read(flags).unwrap(), read(yaml).unwrap()] {
            assert_eq!((s.max_events, s.max_bytes), (5, 1024));
        }
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused_by_name() {
        let e = read(
            [
                ("api-key", "k"),
                ("endpoint", "http://h"),
                ("colour", "red"),
            ]
            .into_iter()
            .collect(),
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("--sink-option colour: unknown option"),
            "{e}"
        );
        let yaml = Options::from_value(
            serde_json::json!({"api-key": "k", "endpoint": "http://h", "batch-max-events": 0}),
            "sinks.l.options",
        )
        .unwrap();
        let e = read(yaml).unwrap_err();
        assert!(
            e.to_string().starts_with(
                "sinks.l.options.batch-max-events: expected a whole number greater than 0"
            ),
            "{e}"
        );
        let e = read(Options::new()).unwrap_err();
        assert!(e.to_string().contains("--api-key"), "{e}");
    }

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
