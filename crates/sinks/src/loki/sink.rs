//! Sending: events → entries in streams → bounded pushes, one after another,
//! each answer classified per entry.

use super::batch::{self, Slice, Streams};
use super::classify::classify;
use super::config::{Auth, Encoding, LineFormat, LokiConfig, LokiSettings};
use super::entry::entry;
use super::order::{LastPushed, Policy};
use super::template::LabelTemplate;
use super::{json, proto};
use crate::http_common::client::bearer;
use crate::http_common::Client;
use async_trait::async_trait;
use base64::Engine as _;
use reqwest::header::{HeaderName, HeaderValue, AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE};
use std::sync::atomic::{AtomicU64, Ordering};
use switchyard_core::{BuildError, Event, EventFailure, Sink, SinkError, SinkErrorKind};

const SERVICE: &str = "loki";

/// Pushes log entries to Grafana Loki.
pub struct LokiSink {
    client: Client,
    encoding: Encoding,
    labels: LabelTemplate,
    line: LineFormat,
    policy: Policy,
    last: LastPushed,
    limits: Limits,
    dropped: AtomicU64,
}

/// Bounds of one push.
#[derive(Debug, Clone, Copy)]
struct Limits {
    events: usize,
    bytes: usize,
    line_bytes: usize,
}

impl LokiSink {
    /// Build from checked options.
    pub fn new(config: LokiSettings) -> Result<Self, BuildError> {
        let mut headers = vec![(
            CONTENT_TYPE,
            HeaderValue::from_static(match config.encoding {
                Encoding::Protobuf => "application/x-protobuf",
                Encoding::Json { .. } => "application/json",
            }),
        )];
        if config.encoding == (Encoding::Json { gzip: true }) {
            headers.push((CONTENT_ENCODING, HeaderValue::from_static("gzip")));
        }
        if let Some(tenant) = &config.tenant {
            let value = HeaderValue::from_str(tenant)
                .map_err(|_| BuildError::invalid(&["tenant"], "not allowed in an HTTP header"))?;
            headers.push((HeaderName::from_static("x-scope-orgid"), value));
        }
        match &config.auth {
            Auth::None => {}
            Auth::Bearer(key) => headers.push(bearer(SERVICE, key.expose())?),
            Auth::Basic { user, password } => headers.push(basic(user, password.expose())?),
        }
        Ok(Self {
            client: Client::new(SERVICE, &config.http, headers)?,
            encoding: config.encoding,
            labels: config.labels,
            line: config.line,
            policy: config.out_of_order,
            last: LastPushed::new(config.max_streams),
            limits: Limits {
                events: config.max_events,
                bytes: config.max_bytes,
                line_bytes: config.max_line_bytes,
            },
            dropped: AtomicU64::new(0),
        })
    }

    /// Build from the typed config (the registry's factory).
    pub fn build(config: LokiConfig) -> Result<Box<dyn Sink>, BuildError> {
        Ok(Box::new(Self::new(config.settings()?)?))
    }

    /// Entries the `drop` policy has refused so far (each also failed
    /// permanently, so the engine counts and dead-letters it too).
    pub fn out_of_order_dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Send one push; on success remember each stream's newest entry.
    async fn push(&self, push: &[Slice<'_>]) -> Result<(), SinkError> {
        let body = match self.encoding {
            Encoding::Protobuf => proto::encode(push),
            Encoding::Json { gzip } => json::encode(push, gzip),
        };
        let answer = self.client.exchange(body, &[]).await?;
        if !(200..300).contains(&answer.status) {
            return Err(classify(answer.status, answer.retry_after, &answer.body));
        }
        for slice in push {
            if let Some(newest) = slice.entries.last() {
                self.last.delivered(&slice.stream.labels, newest.ts);
            }
        }
        Ok(())
    }
}

/// `Authorization: Basic base64(user:password)`, kept out of debug output.
fn basic(user: &str, password: &str) -> Result<(HeaderName, HeaderValue), BuildError> {
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let mut value = HeaderValue::from_str(&format!("Basic {token}"))
        .map_err(|_| BuildError::invalid(&["auth", "user"], "not allowed in an HTTP header"))?;
    value.set_sensitive(true);
    Ok((AUTHORIZATION, value))
}

/// The same error for every entry of `push`.
fn fail_all(push: &[Slice<'_>], error: &SinkError, out: &mut Vec<EventFailure>) {
    for slice in push {
        out.extend(slice.entries.iter().map(|e| EventFailure {
            index: e.index,
            error: error.clone(),
        }));
    }
}

#[async_trait]
impl Sink for LokiSink {
    async fn send(&self, events: &[Event]) -> Result<(), SinkError> {
        let mut failures = Vec::new();
        let mut streams = Streams::default();
        for (index, event) in events.iter().enumerate() {
            let pairs = self.labels.render(event);
            if pairs.is_empty() {
                failures.push(EventFailure {
                    index,
                    error: SinkError::permanent(format!(
                        "loki: event {} has no value for any label in `labels`; Loki needs at least one (add a static label such as job=switchyard)",
                        event.id
                    )),
                });
                continue;
            }
            match entry(index, event, self.line, self.limits.line_bytes) {
                Ok(e) => streams.add(pairs, e),
                Err(error) => failures.push(EventFailure { index, error }),
            }
        }
        let (streams, dropped) = streams.finish(self.policy, &self.last);
        self.dropped
            .fetch_add(dropped.len() as u64, Ordering::Relaxed);
        failures.extend(
            dropped
                .into_iter()
                .map(|(index, error)| EventFailure { index, error }),
        );

        let pushes = batch::pushes(&streams, self.limits.events, self.limits.bytes);
        let mut pushes = pushes.iter();
        while let Some(push) = pushes.next() {
            let Err(error) = self.push(push).await else {
                continue;
            };
            fail_all(push, &error, &mut failures);
            if error.kind == SinkErrorKind::Transient {
                // The later pushes are not tried: sent now, they would land
                // before this one's retry and make its entries out of order.
                for rest in pushes.by_ref() {
                    fail_all(rest, &error, &mut failures);
                }
            }
        }
        SinkError::from_failures(failures)
    }
}
