//! The `switchyard node` YAML config. Unknown keys are errors, and every
//! error names the key path, so a typo fails before anything starts.

use anyhow::{bail, Context};
use serde::{Deserialize, Deserializer};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// Collector id, unique in the mesh.
    pub id: String,
    /// gRPC listen address.
    pub listen: SocketAddr,
    /// Address peers dial; defaults to `listen`.
    #[serde(default)]
    pub advertise: Option<String>,
    /// Admin HTTP address (`/metrics`, `/peers`, `/namespaces`, `/health`).
    #[serde(default)]
    pub admin: Option<SocketAddr>,
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// Peers to connect to at start, retried until they are up.
    #[serde(default)]
    pub peers: Vec<String>,
    #[serde(default = "default_max_message")]
    pub max_message_bytes: usize,
    /// Most peers kept (new collectors beyond it are refused with 503).
    #[serde(default = "default_max_peers")]
    pub max_peers: usize,
    /// Shared bearer token. Prefer the `SWITCHYARD_MESH_TOKEN` environment
    /// variable, which wins over this key.
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub tls: Option<TlsFiles>,
    /// Send and accept the token without `tls:`, in clear text. Off by
    /// default: a node with a token and no TLS refuses to start.
    #[serde(default)]
    pub allow_plaintext_token: bool,
    #[serde(default)]
    pub health: Health,
    #[serde(default)]
    pub breaker: Breaker,
    #[serde(default)]
    pub pipeline: PublishPipeline,
    #[serde(default)]
    pub services: Vec<Binding>,
}

fn default_max_message() -> usize {
    4 * 1024 * 1024
}

fn default_max_peers() -> usize {
    switchyard_mesh::MeshConfig::default().max_peers
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
    #[serde(default)]
    pub server_name: Option<String>,
    /// Mutual TLS: callers must present a certificate signed by `ca`.
    #[serde(default)]
    pub require_client_cert: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Health {
    #[serde(deserialize_with = "duration")]
    pub probe_interval: Duration,
    #[serde(deserialize_with = "duration")]
    pub probe_timeout: Duration,
    #[serde(deserialize_with = "duration")]
    pub max_backoff: Duration,
    #[serde(deserialize_with = "duration")]
    pub forget_after: Duration,
}

impl Default for Health {
    fn default() -> Self {
        let d = switchyard_mesh::HealthConfig::default();
        Self {
            probe_interval: d.probe_interval,
            probe_timeout: d.probe_timeout,
            max_backoff: d.max_backoff,
            forget_after: d.forget_after,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Breaker {
    pub failures: u32,
    #[serde(deserialize_with = "duration")]
    pub open_for: Duration,
}

impl Default for Breaker {
    fn default() -> Self {
        let d = switchyard_mesh::BreakerConfig::default();
        Self {
            failures: d.failures,
            open_for: d.open_for,
        }
    }
}

/// Where `publish` handlers put events: a pipeline of one source (`publish`)
/// and one sink, run by the same engine as `switchyard run` — the sink's
/// buffer, its delivery stack, the dead-letter queue and `/metrics`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PublishPipeline {
    /// Sink plugin (see `switchyard plugins`).
    pub sink: String,
    /// The sink's endpoint (for `file`, the path).
    pub endpoint: Option<String>,
    pub batch_size: usize,
    #[serde(deserialize_with = "duration")]
    pub flush_interval: Duration,
    /// Events waiting in memory: an eighth in the `publish` source's queue
    /// (a `publish` call waits up to 2 s for room there), the rest in the
    /// sink's buffer.
    pub queue_capacity: usize,
    /// fdatasync once per batch (file sink).
    pub sync: bool,
    /// The delivery stack: retries, circuit breaker, rate limit, timeout,
    /// concurrency (the keys of a `switchyard run` sink's `delivery:`).
    pub delivery: switchyard_engine::DeliveryConfig,
    /// The dead-letter queue (the keys of `switchyard run`'s `dlq:`).
    pub dlq: switchyard_engine::DlqConfig,
    /// Longest a stop drains the pipeline before delivery is abandoned.
    #[serde(deserialize_with = "duration")]
    pub shutdown_timeout: Duration,
}

impl Default for PublishPipeline {
    fn default() -> Self {
        Self {
            sink: "file".into(),
            endpoint: None,
            batch_size: 100,
            flush_interval: Duration::from_secs(1),
            queue_capacity: 10_000,
            sync: true,
            delivery: Default::default(),
            dlq: Default::default(),
            shutdown_timeout: Duration::from_secs(30),
        }
    }
}

/// `bind: <namespace>/<Service>.<Method>` → a built-in handler.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Binding {
    pub bind: String,
    pub handler: HandlerKind,
    /// `http` only: where to POST the payload.
    #[serde(default)]
    pub url: Option<String>,
    /// `http` only: request timeout.
    #[serde(default, deserialize_with = "opt_duration")]
    pub timeout: Option<Duration>,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum HandlerKind {
    Echo,
    Publish,
    Http,
}

/// A parsed `bind`.
#[derive(Debug, PartialEq, Eq)]
pub struct Route {
    pub namespace: String,
    pub service: String,
    pub method: String,
}

impl Binding {
    pub fn route(&self) -> anyhow::Result<Route> {
        let bad = || {
            format!(
                "services: bind `{}`: expected `<namespace>/<Service>.<Method>`",
                self.bind
            )
        };
        let (namespace, rest) = self.bind.split_once('/').with_context(bad)?;
        // Services may be package-qualified (`shop.OrderService`); methods
        // have no dots, so the last dot splits them.
        let (service, method) = rest.rsplit_once('.').with_context(bad)?;
        if namespace.is_empty() || service.is_empty() || method.is_empty() {
            bail!(bad());
        }
        Ok(Route {
            namespace: namespace.into(),
            service: service.into(),
            method: method.into(),
        })
    }
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    humantime::parse_duration(&s)
        .map_err(|e| serde::de::Error::custom(format!("{e} (examples: 500ms, 5s, 1m)")))
}

fn opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration(d).map(Some)
}

impl NodeConfig {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read node config `{}`", path.display()))?;
        Self::parse(&text).with_context(|| format!("node config `{}`", path.display()))
    }

    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let config: Self =
            serde_path_to_error::deserialize(serde_norway::Deserializer::from_str(text))
                .map_err(|e| anyhow::anyhow!("key `{}`: {}", e.path(), e.inner()))?;
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> anyhow::Result<()> {
        if self.id.trim().is_empty() {
            bail!("key `id`: must not be empty");
        }
        if self.max_message_bytes == 0 {
            bail!("key `max_message_bytes`: must be greater than 0");
        }
        if self.max_peers == 0 {
            bail!("key `max_peers`: must be greater than 0");
        }
        if self.health.probe_interval.is_zero() || self.health.probe_timeout.is_zero() {
            bail!("key `health`: probe_interval and probe_timeout must be greater than 0");
        }
        if self.breaker.failures == 0 {
            bail!("key `breaker.failures`: must be greater than 0");
        }
        if self.pipeline.batch_size == 0 || self.pipeline.queue_capacity == 0 {
            bail!("key `pipeline`: batch_size and queue_capacity must be greater than 0");
        }
        if let Err(e) = self.pipeline.delivery.validate() {
            bail!("key `pipeline.delivery`: {e}");
        }
        if let Err(e) = self.pipeline.dlq.validate() {
            bail!("key `pipeline.dlq`: {e}");
        }
        for (i, b) in self.services.iter().enumerate() {
            let route = b.route().with_context(|| format!("key `services[{i}]`"))?;
            if !self.namespaces.contains(&route.namespace) {
                bail!(
                    "key `services[{i}].bind`: namespace `{}` is not in `namespaces` {:?}",
                    route.namespace,
                    self.namespaces
                );
            }
            match (b.handler, &b.url) {
                (HandlerKind::Http, None) => {
                    bail!("key `services[{i}].url`: the http handler needs a url")
                }
                (HandlerKind::Http, Some(u)) if reqwest::Url::parse(u).is_err() => {
                    bail!("key `services[{i}].url`: `{u}` is not a valid URL")
                }
                (HandlerKind::Echo | HandlerKind::Publish, Some(_)) => {
                    bail!("key `services[{i}].url`: only the http handler takes a url")
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The address peers dial.
    /// The address peers are told, once the listener is bound to `bound`:
    /// `advertise` if set, else the address actually bound (which differs
    /// from `listen` when that asks for port 0).
    pub fn advertised_for(&self, bound: std::net::SocketAddr) -> String {
        self.advertise.clone().unwrap_or_else(|| bound.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"
id: node-a
listen: 127.0.0.1:7001
admin: 127.0.0.1:9101
namespaces: [orders, events]
peers: [127.0.0.1:7002]
health: { probe_interval: 200ms, probe_timeout: 300ms, max_backoff: 2s }
breaker: { failures: 3, open_for: 1s }
pipeline: { sink: file, endpoint: out.jsonl, flush_interval: 100ms }
services:
  - bind: orders/shop.OrderService.Create
    handler: echo
  - bind: events/Events.Publish
    handler: publish
  - bind: orders/Proxy.Call
    handler: http
    url: http://127.0.0.1:8080/call
    timeout: 2s
"#;

    #[test]
    fn parses_a_full_config() {
        let c = NodeConfig::parse(FULL).unwrap();
        assert_eq!(c.id, "node-a");
        assert_eq!(c.advertised_for(c.listen), "127.0.0.1:7001");
        let mut any_port = NodeConfig::parse(FULL).unwrap();
        any_port.listen = "127.0.0.1:0".parse().unwrap();
        let bound = "127.0.0.1:40123".parse().unwrap();
        assert_eq!(any_port.advertised_for(bound), "127.0.0.1:40123");
        any_port.advertise = Some("node-a.example:7001".into());
        assert_eq!(any_port.advertised_for(bound), "node-a.example:7001");
        assert_eq!(c.health.probe_interval, Duration::from_millis(200));
        assert_eq!(
            c.services[0].route().unwrap(),
            Route {
                namespace: "orders".into(),
                service: "shop.OrderService".into(),
                method: "Create".into()
            }
        );
        assert_eq!(c.services[2].timeout, Some(Duration::from_secs(2)));
    }

    #[test]
    fn the_publish_pipeline_has_runs_delivery_and_dlq_keys_and_defaults() {
        let base = "id: a\nlisten: 127.0.0.1:1\n";
        let d = NodeConfig::parse(base).unwrap().pipeline;
        assert_eq!(d.delivery, switchyard_engine::DeliveryConfig::default());
        assert_eq!(d.dlq, switchyard_engine::DlqConfig::default());
        assert_eq!(d.shutdown_timeout, Duration::from_secs(30));
        let c = NodeConfig::parse(&format!(
            "{base}pipeline:\n  delivery: {{max_retries: 1, retry_backoff: 50ms, timeout: 2s, \
             circuit_breaker: {{failure_threshold: 2}}, rate_limit: {{per_second: 10, unit: events}}}}\n  \
             dlq: {{dir: /tmp/node-dlq, auto_retry: false}}\n  shutdown_timeout: 5s\n"
        ))
        .unwrap()
        .pipeline;
        assert_eq!(c.delivery.max_retries, 1);
        assert_eq!(c.delivery.retry_backoff, Duration::from_millis(50));
        assert_eq!(c.delivery.timeout, Some(Duration::from_secs(2)));
        assert_eq!(c.delivery.circuit_breaker.failure_threshold, 2);
        assert!(
            c.delivery.circuit_breaker.enabled,
            "the rest keep their defaults"
        );
        assert_eq!(c.delivery.rate_limit.unwrap().per_second, 10);
        assert_eq!(c.dlq.dir, PathBuf::from("/tmp/node-dlq"));
        assert!(!c.dlq.auto_retry && c.dlq.enabled);
        assert_eq!(c.shutdown_timeout, Duration::from_secs(5));

        let err = |text: &str| format!("{:#}", NodeConfig::parse(text).unwrap_err());
        let e = err(&format!("{base}pipeline: {{delivery: {{retries: 2}}}}\n"));
        assert!(
            e.contains("pipeline.delivery") && e.contains("retries"),
            "{e}"
        );
        let e = err(&format!(
            "{base}pipeline: {{delivery: {{rate_limit: {{per_second: 0, unit: events}}}}}}\n"
        ));
        assert!(
            e.contains("key `pipeline.delivery`") && e.contains("rate_limit.per_second"),
            "{e}"
        );
        let e = err(&format!("{base}pipeline: {{dlq: {{max_size: 0}}}}\n"));
        assert!(
            e.contains("key `pipeline.dlq`") && e.contains("max_size"),
            "{e}"
        );
        let e = err(&format!("{base}pipeline: {{shutdown_timeout: soon}}\n"));
        assert!(e.contains("pipeline.shutdown_timeout"), "{e}");
    }

    #[test]
    fn errors_name_the_key() {
        let err = |text: &str| format!("{:#}", NodeConfig::parse(text).unwrap_err());
        let base = "id: a\nlisten: 127.0.0.1:1\nnamespaces: [x]\n";
        assert!(err(&format!("{base}colour: red\n")).contains("colour"));
        assert!(err(&format!("{base}health: {{probe_interval: fast}}\n"))
            .contains("health.probe_interval"));
        assert!(err(&format!(
            "{base}services: [{{bind: nope, handler: echo}}]\n"
        ))
        .contains("services[0]"));
        assert!(err(&format!(
            "{base}services: [{{bind: y/S.M, handler: echo}}]\n"
        ))
        .contains("not in `namespaces`"));
        assert!(err(&format!(
            "{base}services: [{{bind: x/S.M, handler: http}}]\n"
        ))
        .contains("needs a url"));
        assert!(err(&format!(
            "{base}services: [{{bind: x/S.M, handler: magic}}]\n"
        ))
        .contains("services[0].handler"));
    }
}
