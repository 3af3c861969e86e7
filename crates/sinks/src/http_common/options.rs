//! Options every HTTP sink reads from its plugin map, with errors that name
//! the key and say what is expected.

use super::client::{DEFAULT_CONNECT_TIMEOUT, DEFAULT_TIMEOUT};
use std::time::Duration;
use switchyard_core::SinkConfig;

/// Where and how long.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// The URL requests go to.
    pub endpoint: String,
    /// Whole-request timeout (`timeout`, default 30s).
    pub timeout: Duration,
    /// Connect timeout (`connect-timeout`, default 10s).
    pub connect_timeout: Duration,
}

impl HttpOptions {
    /// Read `endpoint` (or `default`), `timeout` and `connect-timeout`.
    pub fn from_config(
        service: &str,
        cfg: &SinkConfig,
        default_endpoint: Option<&str>,
    ) -> Result<Self, String> {
        let endpoint = match cfg.get("endpoint").filter(|e| !e.is_empty()) {
            Some(e) => e.clone(),
            None => default_endpoint
                .ok_or_else(|| format!("the {service} service needs `endpoint`: the URL to POST to — pass --endpoint"))?
                .to_string(),
        };
        check_url(service, &endpoint)?;
        Ok(Self {
            endpoint,
            timeout: duration(cfg, "timeout", DEFAULT_TIMEOUT)?,
            connect_timeout: duration(cfg, "connect-timeout", DEFAULT_CONNECT_TIMEOUT)?,
        })
    }
}

fn check_url(service: &str, url: &str) -> Result<(), String> {
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("http://") {
        return Ok(());
    }
    if lower.starts_with("https://") {
        return if cfg!(feature = "tls") {
            Ok(())
        } else {
            Err(format!(
                "{service}: endpoint `{url}` needs TLS, and this build has none — build with the `tls` feature or use an http:// endpoint (e.g. a local proxy)"
            ))
        };
    }
    Err(format!(
        "{service}: endpoint `{url}` is not an http:// or https:// URL — check --endpoint"
    ))
}

/// A credential: usable as text, shown as `[REDACTED]` by `Debug`, so a
/// config printed while debugging never carries it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wrap a credential.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The credential itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[REDACTED]")
    }
}

/// The API key (`api-key`), required and never echoed.
pub fn api_key(service: &str, cfg: &SinkConfig) -> Result<Secret, String> {
    cfg.get("api-key")
        .map(|k| Secret(k.trim().to_string()))
        .filter(|k| !k.0.is_empty())
        .ok_or_else(|| {
            format!(
                "the {service} service needs an API key — pass --api-key, set LLM_PROXY_API_KEY, or set `api-key` in the sink's options"
            )
        })
}

/// A duration option such as `500ms` or `30s`.
pub fn duration(cfg: &SinkConfig, key: &str, default: Duration) -> Result<Duration, String> {
    match cfg.get(key) {
        None => Ok(default),
        Some(v) => humantime::parse_duration(v)
            .ok()
            .filter(|d| !d.is_zero())
            .ok_or_else(|| format!("`{key}` = `{v}`: expected a duration such as 500ms or 30s")),
    }
}

/// A whole number greater than 0.
pub fn positive(cfg: &SinkConfig, key: &str, default: usize) -> Result<usize, String> {
    match cfg.get(key) {
        None => Ok(default),
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("`{key}` = `{v}`: expected a whole number greater than 0")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(pairs: &[(&str, &str)]) -> SinkConfig {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_and_errors_name_the_key() {
        let o = HttpOptions::from_config("x", &cfg(&[]), Some("http://127.0.0.1:1/a")).unwrap();
        assert_eq!(o.timeout, DEFAULT_TIMEOUT);
        let e = HttpOptions::from_config("x", &cfg(&[("timeout", "soon")]), Some("http://h"))
            .unwrap_err();
        assert!(e.contains("`timeout`"), "{e}");
        let e = HttpOptions::from_config("x", &cfg(&[("endpoint", "ftp://h")]), None).unwrap_err();
        assert!(e.contains("not an http"), "{e}");
        let e = HttpOptions::from_config("x", &cfg(&[]), None).unwrap_err();
        assert!(e.contains("--endpoint"), "{e}");
    }

    #[test]
    fn missing_api_key_is_clear_and_the_key_never_echoed() {
        let e = api_key("lunary", &cfg(&[])).unwrap_err();
        assert!(e.contains("--api-key"), "{e}");
        let key = api_key("lunary", &cfg(&[("api-key", " k ")])).unwrap();
        assert_eq!(key.expose(), "k");
        assert_eq!(format!("{key:?}"), "[REDACTED]");
        let e = positive(&cfg(&[("concurrency", "0")]), "concurrency", 1).unwrap_err();
        assert!(e.contains("`concurrency`"));
    }
}
