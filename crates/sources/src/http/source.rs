//! `type: http`: the ingest API as a pipeline source — its typed settings
//! (the `switchyard dispatcher` flags `--listen`, `--max-body`,
//! `--ingest-token`, `--ingest-wait` and `--ingest-*`) and its start: bind,
//! then serve under supervision until the pipeline stops.

use super::{router, serve, IngestConfig, IngestCounters, IngestLimits, StatsFn};
use crate::settings::{default_queue_size, duration};
use axum::Router;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use switchyard_engine::source::{
    RunningSource, Source, SourceConfig, SourceContext, SourceError, StatsFn as SourceStatsFn,
};
use switchyard_engine::supervise::supervise;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tracing::info;

/// Settings of `type: http`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSourceConfig {
    /// Listen address (`--listen`).
    #[serde(default = "default_address")]
    pub address: SocketAddr,
    /// Largest body, bytes (`--max-body`).
    #[serde(default = "default_max_body")]
    pub max_body: usize,
    /// Bearer token requests must carry (`--ingest-token`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Longest wait for queue room before `503` (`--ingest-wait`).
    #[serde(default = "default_queue_wait", with = "duration")]
    pub queue_wait: Duration,
    /// Bound of the source's queue, events.
    #[serde(default = "default_queue_size")]
    pub queue_size: usize,
    /// Answer `202` only once every event is settled (on a sink's disk
    /// buffer, delivered, filtered or dead-lettered). Default: on when every
    /// sink this source feeds has a disk buffer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledgements: Option<bool>,
    /// Longest wait for the acknowledgement before `503`.
    #[serde(default = "default_ack_timeout", with = "duration")]
    pub ack_timeout: Duration,
    /// Most open connections (`--ingest-max-connections`).
    #[serde(default = "limits::max_connections")]
    pub max_connections: usize,
    /// Most requests in progress (`--ingest-max-concurrent-requests`).
    #[serde(default = "limits::max_concurrent_requests")]
    pub max_concurrent_requests: usize,
    /// Most body bytes held across all requests (`--ingest-max-body-memory`).
    #[serde(default = "limits::max_body_memory")]
    pub max_body_memory: usize,
    /// Longest time from a request's first byte to its complete head
    /// (`--ingest-header-timeout`).
    #[serde(default = "limits::header_timeout", with = "duration")]
    pub header_timeout: Duration,
    /// Longest time to receive a whole body, then `408`
    /// (`--ingest-body-timeout`).
    #[serde(default = "limits::body_timeout", with = "duration")]
    pub body_timeout: Duration,
    /// Longest an open connection may wait without a request
    /// (`--ingest-idle-timeout`).
    #[serde(default = "limits::idle_timeout", with = "duration")]
    pub idle_timeout: Duration,
}

/// The defaults of the bounds: [`IngestLimits`]' own.
mod limits {
    use super::{Duration, IngestLimits};

    pub fn max_connections() -> usize {
        IngestLimits::default().max_connections
    }
    pub fn max_concurrent_requests() -> usize {
        IngestLimits::default().max_concurrent_requests
    }
    pub fn max_body_memory() -> usize {
        IngestLimits::default().max_body_memory
    }
    pub fn header_timeout() -> Duration {
        IngestLimits::default().header_timeout
    }
    pub fn body_timeout() -> Duration {
        IngestLimits::default().body_timeout
    }
    pub fn idle_timeout() -> Duration {
        IngestLimits::default().idle_timeout
    }
}

fn default_address() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}
fn default_max_body() -> usize {
    10 << 20
}
fn default_queue_wait() -> Duration {
    Duration::from_secs(5)
}
fn default_ack_timeout() -> Duration {
    Duration::from_secs(10)
}

impl HttpSourceConfig {
    /// The settings with every default, listening on `address`.
    pub fn new(address: SocketAddr) -> Self {
        Self {
            address,
            max_body: default_max_body(),
            token: None,
            queue_wait: default_queue_wait(),
            queue_size: default_queue_size(),
            acknowledgements: None,
            ack_timeout: default_ack_timeout(),
            max_connections: limits::max_connections(),
            max_concurrent_requests: limits::max_concurrent_requests(),
            max_body_memory: limits::max_body_memory(),
            header_timeout: limits::header_timeout(),
            body_timeout: limits::body_timeout(),
            idle_timeout: limits::idle_timeout(),
        }
    }

    /// The bounds across all clients.
    pub fn limits(&self) -> IngestLimits {
        IngestLimits {
            max_connections: self.max_connections,
            max_concurrent_requests: self.max_concurrent_requests,
            max_body_memory: self.max_body_memory,
            header_timeout: self.header_timeout,
            body_timeout: self.body_timeout,
            idle_timeout: self.idle_timeout,
        }
    }

    /// Every bound that would refuse all clients, each at its key.
    fn check(&self) -> Result<(), SourceError> {
        let zero = [
            ("max_connections", self.max_connections),
            ("max_concurrent_requests", self.max_concurrent_requests),
            ("max_body_memory", self.max_body_memory),
            ("max_body", self.max_body),
        ];
        SourceError::from_problems(
            zero.iter()
                .filter(|(_, n)| *n == 0)
                .map(|(key, _)| SourceError::config(*key, "must be greater than 0"))
                .collect(),
        )
    }
}

impl SourceConfig for HttpSourceConfig {
    fn build(self) -> Result<Box<dyn Source>, SourceError> {
        Ok(Box::new(HttpSource::new(self)?))
    }
}

/// The ingest API, ready to start. Beyond its settings, a program that
/// serves more on the same address (the dispatcher's `/metrics`) can hand
/// it a bound listener, extra routes and the answer of `/stats`.
pub struct HttpSource {
    config: HttpSourceConfig,
    listener: Option<TcpListener>,
    routes: Option<Router>,
    stats: Option<StatsFn>,
    counters: Arc<IngestCounters>,
}

impl HttpSource {
    /// Check `config`; errors name the key.
    pub fn new(config: HttpSourceConfig) -> Result<Self, SourceError> {
        config.check()?;
        Ok(Self {
            config,
            listener: None,
            routes: None,
            stats: None,
            counters: Arc::new(IngestCounters::default()),
        })
    }

    /// Serve on this listener instead of binding `address` at start.
    pub fn with_listener(mut self, listener: TcpListener) -> Self {
        self.listener = Some(listener);
        self
    }

    /// Serve these routes beside the ingest API.
    pub fn with_routes(mut self, routes: Router) -> Self {
        self.routes = Some(routes);
        self
    }

    /// Answer `/stats` (and `/health`'s `stats`) with this instead of the
    /// ingest counters. It is dropped with the server, so it may hold what
    /// must not outlive it (an intake sender).
    pub fn with_stats(mut self, stats: StatsFn) -> Self {
        self.stats = Some(stats);
        self
    }

    /// The counters the server will update.
    pub fn counters(&self) -> Arc<IngestCounters> {
        self.counters.clone()
    }
}

#[async_trait::async_trait]
impl Source for HttpSource {
    fn queue_size(&self) -> usize {
        self.config.queue_size
    }

    async fn start(
        self: Box<Self>,
        cx: SourceContext,
    ) -> Result<Box<dyn RunningSource>, SourceError> {
        let HttpSource {
            config,
            listener,
            routes,
            stats,
            counters,
        } = *self;
        let address = config.address;
        let listener = match listener {
            Some(l) => l,
            None => TcpListener::bind(address).await.map_err(|e| {
                SourceError::start("address", format!("cannot listen on {address}: {e}"))
            })?,
        };
        let addr = listener
            .local_addr()
            .map_err(|e| SourceError::start("address", e.to_string()))?;
        let acknowledge = config
            .acknowledgements
            .unwrap_or(cx.durable_sinks)
            .then_some(config.ack_timeout);
        info!(source = %cx.name, address = %addr, acknowledgements = acknowledge.is_some(), "HTTP ingest listening");
        let limits = config.limits();
        let stats = stats.unwrap_or_else(|| {
            let c = counters.clone();
            Arc::new(move || c.snapshot())
        });
        let mut app = router(
            cx.output,
            IngestConfig {
                max_body: config.max_body,
                token: config.token,
                queue_wait: config.queue_wait,
                acknowledge,
                limits: limits.clone(),
            },
            counters.clone(),
            stats,
        );
        if let Some(routes) = routes {
            app = app.merge(routes);
        }
        // Supervised: should the server end while not stopping (a panic in
        // its accept loop), it is bound again and restarted.
        let mut first = Some(listener);
        let (stop, c) = (cx.shutdown.clone(), counters.clone());
        let attempt = move || {
            let (first, app, limits, counters) =
                (first.take(), app.clone(), limits.clone(), c.clone());
            let mut stop = stop.clone();
            async move {
                let listener = match first {
                    Some(l) => l,
                    None => TcpListener::bind(addr)
                        .await
                        .map_err(|e| format!("cannot listen on {addr} again: {e}"))?,
                };
                let stopped = async move {
                    let _ = stop.wait_for(|s| *s).await;
                };
                serve(listener, app, &limits, counters, stopped).await;
                Ok(())
            }
        };
        let task = tokio::spawn(supervise(
            cx.health.register(&cx.name),
            cx.shutdown,
            attempt,
        ));
        Ok(Box::new(RunningHttp { task, counters }))
    }
}

/// The ingest server, serving.
struct RunningHttp {
    task: JoinHandle<()>,
    counters: Arc<IngestCounters>,
}

#[async_trait::async_trait]
impl RunningSource for RunningHttp {
    fn stats(&self) -> SourceStatsFn {
        let c = self.counters.clone();
        Arc::new(move || c.snapshot())
    }

    /// Waits for the requests in progress to be answered.
    async fn stop(self: Box<Self>) {
        let _ = self.task.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_the_flags_defaults() {
        let c: HttpSourceConfig = serde_json::from_value(serde_json::json!({})).unwrap();
        assert_eq!(c.address, default_address());
        assert_eq!(c.max_body, 10 << 20);
        assert_eq!(c.queue_wait, Duration::from_secs(5));
        assert_eq!(
            format!("{:?}", c.limits()),
            format!("{:?}", IngestLimits::default())
        );
    }

    #[test]
    fn zero_bounds_are_each_refused_at_their_key() {
        let mut c = HttpSourceConfig::new(default_address());
        c.max_connections = 0;
        c.max_body_memory = 0;
        let err = HttpSource::new(c).err().unwrap();
        let keys: Vec<_> = err.problems().iter().map(|p| p.key()).collect();
        assert_eq!(keys, [Some("max_connections"), Some("max_body_memory")]);
    }
}
