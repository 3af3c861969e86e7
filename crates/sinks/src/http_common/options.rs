//! What every HTTP sink's config has — `endpoint`, `timeout`,
//! `connect-timeout`, an API key — checked into the settings a client is
//! built from, with errors that name the key and say what is expected.

use super::client::{DEFAULT_CONNECT_TIMEOUT, DEFAULT_TIMEOUT};
use serde::{Deserialize, Deserializer};
use std::time::Duration;
use switchyard_core::options::Span;
use switchyard_core::BuildError;

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
    /// Check `endpoint` (else `default_endpoint`) and the timeouts of
    /// `service`'s config.
    pub fn new(
        service: &str,
        endpoint: Option<String>,
        default_endpoint: Option<&str>,
        timeout: Option<Span>,
        connect_timeout: Option<Span>,
    ) -> Result<Self, BuildError> {
        let endpoint = match endpoint.filter(|e| !e.is_empty()) {
            Some(e) => {
                check_url(&e).map_err(|why| BuildError::invalid(&["endpoint"], why))?;
                e
            }
            None => {
                let e = default_endpoint.ok_or_else(|| {
                    BuildError::options(format!(
                        "the {service} service needs `endpoint`: the URL to POST to — pass --endpoint"
                    ))
                })?;
                check_url(e).map_err(|why| {
                    BuildError::options(format!("the {service} service's default endpoint {why}; or set `endpoint` (--endpoint)"))
                })?;
                e.to_string()
            }
        };
        Ok(Self {
            endpoint,
            timeout: nonzero("timeout", timeout, DEFAULT_TIMEOUT)?,
            connect_timeout: nonzero("connect-timeout", connect_timeout, DEFAULT_CONNECT_TIMEOUT)?,
        })
    }
}

/// Why `url` cannot be used, if it cannot.
fn check_url(url: &str) -> Result<(), String> {
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("http://") {
        return Ok(());
    }
    if lower.starts_with("https://") {
        return if cfg!(feature = "tls") {
            Ok(())
        } else {
            Err(format!("`{url}` needs TLS, and this build has none — build with the `tls` feature or use an http:// endpoint (e.g. a local proxy)"))
        };
    }
    Err(format!(
        "`{url}` is not an http:// or https:// URL — check --endpoint"
    ))
}

/// A duration option above zero, or its default.
fn nonzero(key: &str, value: Option<Span>, default: Duration) -> Result<Duration, BuildError> {
    match value {
        None => Ok(default),
        Some(Span(d)) if d.is_zero() => Err(BuildError::invalid(
            &[key],
            "expected a duration above 0 such as 500ms or 30s",
        )),
        Some(Span(d)) => Ok(d),
    }
}

/// A credential: usable as text, shown as `[REDACTED]` by `Debug`, so a
/// config printed while debugging never carries it. Read trimmed.
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

    /// Whether there is no credential at all (only spaces were given).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[REDACTED]")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Secret(String::deserialize(d)?.trim().to_string()))
    }
}

/// The API key (`api-key`), required.
pub fn api_key(service: &str, key: Option<Secret>) -> Result<Secret, BuildError> {
    key.filter(|k| !k.is_empty()).ok_or_else(|| {
        BuildError::options(format!(
            "the {service} service needs an API key — pass --api-key, set LLM_PROXY_API_KEY, or set `api-key` in the sink's options"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_errors_name_the_key() {
        let o = HttpOptions::new("x", None, Some("http://127.0.0.1:1/a"), None, None).unwrap();
        assert_eq!(o.timeout, DEFAULT_TIMEOUT);
        assert_eq!(o.connect_timeout, DEFAULT_CONNECT_TIMEOUT);
        let zero = Some(Span(Duration::ZERO));
        let e = HttpOptions::new("x", None, Some("http://h"), zero, None).unwrap_err();
        assert_eq!(e.key().unwrap().segments(), ["timeout"]);
        let e = HttpOptions::new("x", Some("ftp://h".into()), None, None, None).unwrap_err();
        assert!(e.to_string().contains("not an http"), "{e}");
        assert_eq!(e.key().unwrap().segments(), ["endpoint"]);
        let e = HttpOptions::new("x", None, None, None, None).unwrap_err();
        assert!(e.to_string().contains("--endpoint"), "{e}");
        let default = HttpOptions::new("x", None, Some("https://h/a"), None, None);
        if cfg!(feature = "tls") {
            assert_eq!(default.unwrap().endpoint, "https://h/a");
        } else {
            let e = default.unwrap_err();
            assert!(e.key().is_none(), "the user did not write it: {e}");
            assert!(
                e.to_string()
                    .contains("default endpoint `https://h/a` needs TLS"),
                "{e}"
            );
        }
    }

    #[test]
    fn missing_api_key_is_clear_and_the_key_never_echoed() {
        let e = api_key("lunary", None).unwrap_err();
        assert!(e.to_string().contains("--api-key"), "{e}");
        assert!(api_key("lunary", Some(Secret::new(""))).is_err());
        let key: Secret = serde_json::from_str("\" k \"").unwrap();
        let key = api_key("lunary", Some(key)).unwrap();
        assert_eq!(key.expose(), "k");
        assert_eq!(format!("{key:?}"), "[REDACTED]");
    }
}
