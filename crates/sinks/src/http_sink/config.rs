//! The generic HTTP sink's config: its keys as written, and the settings it
//! is checked into.

use crate::http_common::options::Secret;
use crate::http_common::HttpOptions;
use reqwest::header::{HeaderName, HeaderValue};
use serde::Deserialize;
use std::collections::BTreeMap;
use switchyard_core::options::Span;
use switchyard_core::BuildError;

/// How a batch is laid out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum Encoding {
    /// `[e1,e2,...]`, `application/json` (`json`, the default).
    #[default]
    #[serde(rename = "json")]
    JsonArray,
    /// One event per line, `application/x-ndjson` (`ndjson`).
    #[serde(rename = "ndjson")]
    Ndjson,
}

/// Whether the body is compressed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// As is (the default).
    #[default]
    None,
    /// gzip, with `Content-Encoding: gzip`.
    Gzip,
}

/// The `http` sink's options, as a pipeline file or `--sink-option` gives
/// them.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct HttpSinkConfig {
    /// The URL to POST to (required).
    pub endpoint: Option<String>,
    /// `json` (an array, the default) or `ndjson`.
    #[serde(default)]
    pub encoding: Encoding,
    /// `none` (the default) or `gzip`.
    #[serde(default)]
    pub compression: Compression,
    /// Headers on every request: `header.X-Tenant=acme`, or in a file
    /// `header: {X-Tenant: acme}`.
    #[serde(default)]
    pub header: BTreeMap<String, String>,
    /// Sent as a bearer token, if given.
    pub api_key: Option<Secret>,
    /// Whole-request timeout; default 30s.
    pub timeout: Option<Span>,
    /// Connect timeout; default 10s.
    pub connect_timeout: Option<Span>,
}

/// What the HTTP sink runs with, checked.
#[derive(Debug, Clone)]
pub struct HttpSinkSettings {
    /// Endpoint and timeouts.
    pub http: HttpOptions,
    /// Layout.
    pub encoding: Encoding,
    /// Compression.
    pub compression: Compression,
    /// Headers on every request (the bearer token among them, if any).
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl HttpSinkConfig {
    /// Check the options.
    pub fn settings(self) -> Result<HttpSinkSettings, BuildError> {
        let mut headers = Vec::new();
        for (name, value) in &self.header {
            let at = ["header", name.as_str()];
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                BuildError::invalid(&at, format!("`{name}` is not a valid header name"))
            })?;
            let mut value = HeaderValue::from_str(value).map_err(|_| {
                BuildError::invalid(&at, "the value has characters not allowed in a header")
            })?;
            // Custom headers often carry credentials: keep them out of debug output.
            value.set_sensitive(true);
            headers.push((name, value));
        }
        if let Some(key) = self.api_key.filter(|k| !k.is_empty()) {
            headers.push(crate::http_common::client::bearer("http", key.expose())?);
        }
        Ok(HttpSinkSettings {
            http: HttpOptions::new(
                "http",
                self.endpoint,
                None,
                self.timeout,
                self.connect_timeout,
            )?,
            encoding: self.encoding,
            compression: self.compression,
            headers,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_core::Options;

    fn read(options: Options) -> Result<HttpSinkSettings, BuildError> {
        options
            .read::<HttpSinkConfig>()
            .and_then(HttpSinkConfig::settings)
            .map_err(|e| options.locate(e))
    }

    #[test]
    fn defaults() {
        let s = read([("endpoint", "http://h/x")].into_iter().collect()).unwrap();
        assert_eq!(
            (s.encoding, s.compression),
            (Encoding::JsonArray, Compression::None)
        );
        assert!(s.headers.is_empty());
        assert_eq!(s.http.endpoint, "http://h/x");
    }

    #[test]
    fn headers_from_flags_and_from_a_yaml_mapping() {
        let flags: Options = [
            ("endpoint", "http://h"),
            ("header.X-Tenant", "acme"),
            ("encoding", "ndjson"),
            ("api-key", "k"),
        ]
        .into_iter()
        .collect();
        let yaml = Options::from_value(
            serde_json::json!({"endpoint": "http://h", "header": {"X-Tenant": "acme"}, "encoding": "ndjson", "api-key": "k"}),
            "sinks.h.options",
        )
        .unwrap();
        for s in [read(flags).unwrap(), read(yaml).unwrap()] {
            assert_eq!(s.encoding, Encoding::Ndjson);
            let names: Vec<&str> = s.headers.iter().map(|(n, _)| n.as_str()).collect();
            assert_eq!(names, ["x-tenant", "authorization"]);
        }
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused_by_name() {
        let e = read(
            [("endpoint", "http://h"), ("colour", "red")]
                .into_iter()
                .collect(),
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("--sink-option colour: unknown option"),
            "{e}"
        );
        let e = read(
            [("endpoint", "http://h"), ("encoding", "xml")]
                .into_iter()
                .collect(),
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("--sink-option encoding: unknown variant `xml`"),
            "{e}"
        );
        let e = read(
            [("endpoint", "http://h"), ("header.Bad Name", "x")]
                .into_iter()
                .collect(),
        )
        .unwrap_err();
        assert!(
            e.to_string().starts_with("--sink-option header.Bad Name: "),
            "{e}"
        );
    }
}
