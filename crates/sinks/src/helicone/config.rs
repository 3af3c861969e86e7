//! The Helicone sink's config: its keys as written, and the settings it is
//! checked into.

use crate::http_common::options::{self, Secret};
use crate::http_common::HttpOptions;
use serde::Deserialize;
use switchyard_core::options::{Positive, Span};
use switchyard_core::BuildError;

/// Helicone's manual-logger endpoint.
pub const DEFAULT_ENDPOINT: &str = "https://api.worker.helicone.ai/custom/v1/log";

/// The `helicone` sink's options, as a pipeline file or `--sink-option`
/// gives them.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct HeliconeConfig {
    /// Sent as a bearer token (required).
    pub api_key: Option<Secret>,
    /// The logger URL; default [`DEFAULT_ENDPOINT`].
    pub endpoint: Option<String>,
    /// Requests in flight at once; default 8.
    pub concurrency: Option<Positive>,
    /// `Helicone-Provider` meta value; default `openai`.
    pub provider: Option<String>,
    /// Whole-request timeout; default 30s.
    pub timeout: Option<Span>,
    /// Connect timeout; default 10s.
    pub connect_timeout: Option<Span>,
}

/// What the Helicone sink runs with, checked.
#[derive(Debug, Clone)]
pub struct HeliconeSettings {
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
    /// Check the options.
    pub fn settings(self) -> Result<HeliconeSettings, BuildError> {
        Ok(HeliconeSettings {
            api_key: options::api_key("helicone", self.api_key)?,
            http: HttpOptions::new(
                "helicone",
                self.endpoint,
                Some(DEFAULT_ENDPOINT),
                self.timeout,
                self.connect_timeout,
            )?,
            concurrency: self.concurrency.map_or(8, |c| c.0),
            provider: self
                .provider
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| "openai".into()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_core::Options;

    fn read(options: Options) -> Result<HeliconeSettings, BuildError> {
        options
            .read::<HeliconeConfig>()
            .and_then(HeliconeConfig::settings)
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
        assert_eq!((s.concurrency, s.provider.as_str()), (8, "openai"));
    }

    #[test]
    fn flags_and_native_yaml_values_read_alike() {
        let flags: Options = [
            ("api-key", "k"),
            ("endpoint", "http://h"),
            ("concurrency", "16"),
        ]
        .into_iter()
        .collect();
        let yaml = Options::from_value(
            serde_json::json!({"api-key": "k", "endpoint": "http://h", "concurrency": 16, "provider": "anthropic"}),
            "sinks.h.options",
        )
        .unwrap();
        assert_eq!(read(flags).unwrap().concurrency, 16);
        let s = read(yaml).unwrap();
        assert_eq!((s.concurrency, s.provider.as_str()), (16, "anthropic"));
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused_by_name() {
        let yaml = Options::from_value(
            serde_json::json!({"api-key": "k", "colour": "red"}),
            "sinks.h.options",
        )
        .unwrap();
        let e = read(yaml).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("sinks.h.options.colour: unknown option"),
            "{e}"
        );
        let e = read(
            [
                ("api-key", "k"),
                ("endpoint", "http://h"),
                ("concurrency", "0"),
            ]
            .into_iter()
            .collect(),
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("--sink-option concurrency: expected a whole number"),
            "{e}"
        );
    }
}
