//! Generic HTTP sink options from the plugin map.

use crate::http_common::HttpOptions;
use reqwest::header::{HeaderName, HeaderValue};
use switchyard_core::SinkConfig;

/// How a batch is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// `[e1,e2,...]`, `application/json`.
    JsonArray,
    /// One event per line, `application/x-ndjson`.
    Ndjson,
}

/// Whether the body is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// As is.
    None,
    /// gzip, with `Content-Encoding: gzip`.
    Gzip,
}

/// Everything the HTTP sink needs.
#[derive(Debug, Clone)]
pub struct HttpSinkConfig {
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
    /// Read and check the options.
    pub fn from_config(cfg: &SinkConfig) -> Result<Self, String> {
        let encoding = match cfg.get("encoding").map(String::as_str) {
            None | Some("json") => Encoding::JsonArray,
            Some("ndjson") => Encoding::Ndjson,
            Some(other) => return Err(format!("`encoding` = `{other}`: expected json or ndjson")),
        };
        let compression = match cfg.get("compression").map(String::as_str) {
            None | Some("none") => Compression::None,
            Some("gzip") => Compression::Gzip,
            Some(other) => return Err(format!("`compression` = `{other}`: expected none or gzip")),
        };
        let mut headers = Vec::new();
        for (key, value) in cfg {
            let Some(name) = key.strip_prefix("header.") else {
                continue;
            };
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("`{key}`: `{name}` is not a valid header name"))?;
            let mut value = HeaderValue::from_str(value).map_err(|_| {
                format!("`{key}`: the value has characters not allowed in a header")
            })?;
            // Custom headers often carry credentials: keep them out of debug output.
            value.set_sensitive(true);
            headers.push((name, value));
        }
        if let Some(key) = cfg.get("api-key").filter(|k| !k.trim().is_empty()) {
            headers.push(crate::http_common::client::bearer("http", key.trim())?);
        }
        Ok(Self {
            http: HttpOptions::from_config("http", cfg, None)?,
            encoding,
            compression,
            headers,
        })
    }
}
