//! One configured HTTP client per sink and the POST all of them use: send,
//! then read at most a bounded amount of the reply (only results and error
//! excerpts are read from it).

use super::classify::{classify_status, classify_transport, retry_after};
use super::options::HttpOptions;
use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use std::time::Duration;
use switchyard_core::{BuildError, SinkError};

/// The largest reply body read.
pub const MAX_REPLY: usize = 1024 * 1024;

/// A client bound to one endpoint.
#[derive(Clone)]
pub struct Client {
    service: &'static str,
    endpoint: String,
    inner: reqwest::Client,
    headers: HeaderMap,
}

/// Any reply: status, `Retry-After`, and at most [`MAX_REPLY`] bytes of body.
#[derive(Debug)]
pub struct Answer {
    /// Status code.
    pub status: u16,
    /// What `Retry-After` asked for, if anything.
    pub retry_after: Option<Duration>,
    /// Body (at most [`MAX_REPLY`] bytes).
    pub body: Bytes,
}

/// A 2xx reply.
#[derive(Debug)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Body (at most [`MAX_REPLY`] bytes).
    pub body: Bytes,
}

impl Client {
    /// A client for `service` posting to `options.endpoint` with `headers`
    /// on every request.
    pub fn new(
        service: &'static str,
        options: &HttpOptions,
        headers: Vec<(HeaderName, HeaderValue)>,
    ) -> Result<Self, BuildError> {
        let inner = reqwest::Client::builder()
            .timeout(options.timeout)
            .connect_timeout(options.connect_timeout)
            .build()
            .map_err(|e| {
                BuildError::start(format!("{service}: cannot build the HTTP client: {e}"))
            })?;
        Ok(Self {
            service,
            endpoint: options.endpoint.clone(),
            inner,
            headers: headers.into_iter().collect(),
        })
    }

    /// POST `body` with the client's headers plus `extra`; a 2xx reply, or
    /// the classified failure.
    pub async fn post(
        &self,
        body: Vec<u8>,
        extra: &[(HeaderName, HeaderValue)],
    ) -> Result<Reply, SinkError> {
        let answer = self.exchange(body, extra).await?;
        if (200..300).contains(&answer.status) {
            Ok(Reply {
                status: answer.status,
                body: answer.body,
            })
        } else {
            Err(classify_status(
                self.service,
                answer.status,
                answer.retry_after,
                &answer.body,
            ))
        }
    }

    /// POST `body` and return whatever status came back, for sinks that
    /// refine the shared classification with what their service says in the
    /// body. Only a request that got no reply is an error here.
    pub async fn exchange(
        &self,
        body: Vec<u8>,
        extra: &[(HeaderName, HeaderValue)],
    ) -> Result<Answer, SinkError> {
        let mut req = self
            .inner
            .post(&self.endpoint)
            .headers(self.headers.clone())
            .body(body);
        for (k, v) in extra {
            req = req.header(k, v);
        }
        let mut resp = req
            .send()
            .await
            .map_err(|e| classify_transport(self.service, e))?;
        let status = resp.status().as_u16();
        let wait = retry_after(resp.headers());
        let mut body = Vec::new();
        while body.len() < MAX_REPLY {
            match resp.chunk().await {
                Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                Ok(None) => break,
                // A reply cut off mid-body: the request may or may not have
                // been taken, so it is retried (duplicates are deduplicated
                // by run id).
                Err(e) => return Err(classify_transport(self.service, e)),
            }
        }
        body.truncate(MAX_REPLY);
        Ok(Answer {
            status,
            retry_after: wait,
            body: body.into(),
        })
    }

    /// The service name used in messages.
    pub fn service(&self) -> &'static str {
        self.service
    }
}

/// `Authorization: Bearer <key>`, marked sensitive so it never shows in debug
/// output of the request.
pub fn bearer(service: &str, key: &str) -> Result<(HeaderName, HeaderValue), BuildError> {
    let mut v = HeaderValue::from_str(&format!("Bearer {key}")).map_err(|_| {
        BuildError::invalid(
            &["api-key"],
            format!("{service}: the API key contains characters not allowed in a header"),
        )
    })?;
    v.set_sensitive(true);
    Ok((reqwest::header::AUTHORIZATION, v))
}

/// `Content-Type: application/json`.
pub fn json_content_type() -> (HeaderName, HeaderValue) {
    (
        reqwest::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    )
}

/// Default request timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Default connect timeout.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
