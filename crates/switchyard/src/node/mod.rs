//! `switchyard node`: one mesh node from a YAML config — the gRPC
//! CollectiveDispatcher, the built-in handlers it binds, an event pipeline
//! for `publish` (the same engine as `switchyard run`, see [`events`]), an
//! optional admin HTTP API, and peers connected at start (retried until they
//! are up). SIGHUP re-reads the config and applies new namespaces
//! (re-announced to peers) and new peers.
//!
//! A stop (SIGTERM or SIGINT) ends the gRPC server, then drains the
//! pipeline for up to `pipeline.shutdown_timeout`, as `switchyard run`
//! does (see [`crate::process::shutdown`]).

mod admin;
mod config;
mod events;
mod handlers;

use anyhow::Context;
use clap::Args;
use config::{HandlerKind, NodeConfig};
use events::{Ledger, NodeEvents};
use handlers::{HttpForward, Publisher};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use switchyard_core::backoff::{Backoff, Jitter};
use switchyard_engine::metrics::Metrics;
use switchyard_engine::topology::Pipeline;
use switchyard_mesh::{
    BreakerConfig, Dispatcher, HealthConfig, MeshConfig, Security, TlsConfig, Token,
};
use tokio::task::JoinSet;
use tracing::{error, info, warn};

#[derive(Args, Debug)]
pub struct NodeArgs {
    /// The node's YAML config (id, listen, namespaces, peers, services...).
    #[arg(long, short, env = "SWITCHYARD_NODE_CONFIG")]
    pub config: PathBuf,
}

/// Environment variable holding the mesh's shared token (wins over `token:`).
pub const TOKEN_ENV: &str = "SWITCHYARD_MESH_TOKEN";

pub fn main(args: NodeArgs) -> anyhow::Result<()> {
    let config = NodeConfig::load(&args.config)?;
    crate::process::run(run(args, config))
}

/// The mesh settings of a config: TLS files are read here, so a missing file
/// fails at start.
pub fn security(config: &NodeConfig) -> anyhow::Result<Security> {
    let token = token(config).map(Token::new);
    let tls = match &config.tls {
        None => None,
        Some(files) => {
            let read = |p: &PathBuf, key: &str| {
                std::fs::read(p)
                    .with_context(|| format!("key `tls.{key}`: cannot read `{}`", p.display()))
            };
            Some(TlsConfig {
                cert_pem: read(&files.cert, "cert")?,
                key_pem: read(&files.key, "key")?,
                ca_pem: read(&files.ca, "ca")?,
                server_name: files.server_name.clone(),
                require_client_cert: files.require_client_cert,
            })
        }
    };
    Ok(Security { tls, token })
}

/// The shared token: the environment variable, else the config key.
fn token(config: &NodeConfig) -> Option<String> {
    std::env::var(TOKEN_ENV)
        .ok()
        .filter(|t| !t.is_empty())
        .or_else(|| config.token.clone())
}

/// What start-up does about the shared token's transport.
#[derive(Debug, PartialEq, Eq)]
enum TokenTransport {
    /// No token, or a token under TLS.
    Protected,
    /// A token without TLS, allowed by `allow_plaintext_token: true`.
    PlaintextAllowed,
    /// A token without TLS, not allowed: refuse to start.
    PlaintextRefused,
}

/// A token without TLS crosses the network in clear text, where anyone on the
/// path can read and replay it; that is refused unless the operator says the
/// network is trusted.
fn token_transport(has_token: bool, has_tls: bool, allow_plaintext: bool) -> TokenTransport {
    match (has_token, has_tls, allow_plaintext) {
        (false, _, _) | (true, true, _) => TokenTransport::Protected,
        (true, false, true) => TokenTransport::PlaintextAllowed,
        (true, false, false) => TokenTransport::PlaintextRefused,
    }
}

/// Refuse, or warn about, a token that would travel without TLS.
fn check_token_transport(config: &NodeConfig) -> anyhow::Result<()> {
    match token_transport(
        token(config).is_some(),
        config.tls.is_some(),
        config.allow_plaintext_token,
    ) {
        TokenTransport::Protected => Ok(()),
        TokenTransport::PlaintextAllowed => {
            warn!(
                "the mesh token travels in clear text (no `tls:`, allow_plaintext_token: true): \
                 anyone who can read this network can read and replay it; configure `tls:` \
                 (cert, key, ca) to protect it"
            );
            Ok(())
        }
        TokenTransport::PlaintextRefused => anyhow::bail!(
            "a mesh token is set (`token:` or {TOKEN_ENV}) but `tls:` is not: the token would \
             travel in clear text, readable and replayable by anyone on the network path. \
             Configure `tls:` (cert, key, ca), or set `allow_plaintext_token: true` if the \
             network is trusted (loopback, or an encrypted overlay)"
        ),
    }
}

fn mesh_config(config: &NodeConfig) -> anyhow::Result<MeshConfig> {
    Ok(MeshConfig {
        health: HealthConfig {
            probe_interval: config.health.probe_interval,
            probe_timeout: config.health.probe_timeout,
            max_backoff: config.health.max_backoff,
            forget_after: config.health.forget_after,
        },
        breaker: BreakerConfig {
            failures: config.breaker.failures,
            open_for: config.breaker.open_for,
        },
        max_message_bytes: config.max_message_bytes,
        max_peers: config.max_peers,
        security: security(config)?,
        ..MeshConfig::default()
    })
}

async fn run(args: NodeArgs, config: NodeConfig) -> anyhow::Result<()> {
    // Here, not in `main`: the warning needs the log set up by `run`.
    check_token_transport(&config)?;
    let mesh = mesh_config(&config)?;
    let token = token(&config);

    // The pipeline behind `publish`: a source → the sink's buffer → its
    // delivery stack.
    let published = NodeEvents::start(&config.id, &config.pipeline)?;
    let ledger = published.ledger();
    let sender = published
        .pipeline
        .sender(events::SOURCE)
        .context("the pipeline has its `publish` source")?;
    let publisher = Arc::new(Publisher::new(sender, Duration::from_secs(2)));
    let sampler = crate::process::rates::sample_rates_every_second(published.metrics.clone());

    // Bound first, so that `listen: host:0` advertises the port it got.
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("key `listen`: cannot listen on {}", config.listen))?;
    let bound = listener.local_addr().context("the bound address")?;
    let advertised = config.advertised_for(bound);
    let node = Dispatcher::with_config(
        config.id.clone(),
        advertised.clone(),
        config.namespaces.clone(),
        mesh,
    );
    bind_services(&node, &config, &publisher)?;
    let mut background = JoinSet::new();
    if let Some(addr) = config.admin {
        let admin = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("key `admin`: cannot listen on {addr}"))?;
        let addr = admin
            .local_addr()
            .context("the admin API's bound address")?;
        let extra = extra_metrics(published.metrics.clone(), ledger.clone());
        let app = admin::router(node.clone(), token, extra);
        background.spawn(async move {
            if let Err(e) = axum::serve(admin, app).await {
                error!(error = %e, "admin server failed");
            }
        });
        info!(admin = %addr, "admin API listening");
    }
    for peer in config.peers.clone() {
        background.spawn(keep_connected(node.clone(), peer));
    }
    background.spawn(reload_on_sighup(node.clone(), args.config.clone()));

    info!(id = %config.id, listen = %bound, advertise = %advertised, namespaces = ?config.namespaces, "node listening");
    crate::process::notify::ready();
    let stopping = crate::process::shutdown::watch(
        published.pipeline.cutoff(),
        config.pipeline.shutdown_timeout,
        stopped_at_once(&published.pipeline, ledger.clone()),
    );
    let served = node.serve(listener, stopping).await;
    info!("shutting down: draining the pipeline");
    background.shutdown().await;
    publisher.close();
    drop(node);
    let lost_in_router = published.pipeline.lost_in_routers();
    published.pipeline.finish().await;
    sampler.abort();
    let c = ledger.snapshot();
    let lost = c.lost + lost_in_router.load(std::sync::atomic::Ordering::Relaxed);
    crate::process::stdout::print_line(&format!(
        "final counters: received={} sent={} filtered={} dropped={} dead_lettered={} lost={lost}",
        c.received, c.sent, c.filtered, c.dropped, c.dead_lettered
    ))?;
    served.context("gRPC server failed")
}

/// The node's `/metrics` beyond the mesh's own: the pipeline's
/// `dispatcher_*` series and `switchyard_node_events_total`.
fn extra_metrics(metrics: Arc<Metrics>, ledger: Ledger) -> admin::ExtraMetrics {
    Arc::new(move || {
        let page = metrics.render();
        let families = page.strip_suffix("# EOF\n").unwrap_or(&page);
        format!("{families}{}", ledger.families())
    })
}

/// What a second signal reports before the process exits without draining:
/// the events still in memory (the source's queue, the sink's buffer and
/// batches) are lost.
fn stopped_at_once(pipeline: &Pipeline, ledger: Ledger) -> impl FnOnce() + Send + 'static {
    let queue = pipeline.sources[0].sender.stats();
    let sink = &pipeline.sinks[0];
    let (buffer, counters) = (sink.buffer.clone(), sink.counters.clone());
    move || {
        let relaxed = std::sync::atomic::Ordering::Relaxed;
        let lost = queue.events.load(relaxed)
            + buffer.events.load(relaxed)
            + counters.unsettled()
            + counters.snapshot().lost;
        let c = ledger.snapshot();
        tracing::error!(lost, "stopped at once: {lost} events in memory lost");
        crate::process::stdout::final_line(format_args!(
            "final counters: received={} sent={} filtered={} dropped={} dead_lettered={} lost={lost} stopped_at_once=1",
            c.received, c.sent, c.filtered, c.dropped, c.dead_lettered
        ));
    }
}

fn bind_services(
    node: &Dispatcher,
    config: &NodeConfig,
    publisher: &Arc<Publisher>,
) -> anyhow::Result<()> {
    let http = reqwest::Client::builder()
        .build()
        .context("cannot build the HTTP client")?;
    for binding in &config.services {
        let r = binding.route()?;
        match binding.handler {
            HandlerKind::Echo => {
                node.register_service(&r.namespace, &r.service, &r.method, handlers::echo)
            }
            HandlerKind::Publish => {
                let p = publisher.clone();
                node.register_service_with_context(
                    &r.namespace,
                    &r.service,
                    &r.method,
                    move |ctx, input| {
                        let p = p.clone();
                        async move { p.publish(ctx, input).await }
                    },
                );
            }
            HandlerKind::Http => {
                let forward = Arc::new(HttpForward {
                    client: http.clone(),
                    // Checked by the config: an http binding has a url.
                    url: binding.url.clone().unwrap_or_default(),
                    timeout: binding.timeout.unwrap_or(Duration::from_secs(10)),
                    limit: config.max_message_bytes,
                });
                node.register_service_with_context(
                    &r.namespace,
                    &r.service,
                    &r.method,
                    move |ctx, input| {
                        let f = forward.clone();
                        async move { f.call(ctx, input).await }
                    },
                );
            }
        }
        info!(bind = %binding.bind, handler = ?binding.handler, "service bound");
    }
    Ok(())
}

/// Keep a configured peer connected: connect now (retrying until it is up)
/// and again whenever the mesh has forgotten it after a long outage. While
/// it is known, health probing keeps the link.
async fn keep_connected(node: Dispatcher, address: String) {
    loop {
        if !node.peers().iter().any(|p| p.address == address) {
            connect_until_up(&node, &address).await;
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}

/// The first retry's ceiling when a peer is not reachable yet.
const PEER_RETRY_BASE: Duration = Duration::from_millis(200);
/// The longest wait between two attempts to reach a peer.
const PEER_RETRY_MAX: Duration = Duration::from_secs(5);

/// Connect to `address`, retrying with the shared backoff (from 0.2 s,
/// doubling, full jitter, at most 5 s) until it answers.
async fn connect_until_up(node: &Dispatcher, address: &str) {
    let backoff = Backoff::new(PEER_RETRY_BASE, PEER_RETRY_MAX, Jitter::FULL);
    let mut retry = 0u32;
    loop {
        let namespaces = node.namespaces();
        match node.connect_to(address, &namespaces).await {
            Ok(r) => {
                info!(peer = %r.target_collector_id, %address, shared = ?r.shared_namespaces, "connected to peer");
                return;
            }
            Err(e) => {
                let delay = backoff.delay(retry, None);
                retry = retry.saturating_add(1);
                warn!(%address, error = %e, retry_in_ms = delay.as_millis() as u64, "peer not reachable yet");
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// On SIGHUP: re-read the config; apply changed namespaces (re-announced to
/// every peer) and connect new peers. Other keys need a restart.
async fn reload_on_sighup(node: Dispatcher, path: PathBuf) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            warn!(error = %e, "cannot watch SIGHUP; config reload disabled");
            return;
        }
    };
    while hup.recv().await.is_some() {
        let config = match NodeConfig::load(&path) {
            Ok(c) => c,
            Err(e) => {
                error!(
                    error = format!("{e:#}"),
                    "config reload failed; keeping the running config"
                );
                continue;
            }
        };
        if config.namespaces != node.namespaces() {
            let n = node.set_namespaces(config.namespaces.clone()).await;
            info!(namespaces = ?config.namespaces, reannounced = n, "namespaces reloaded");
        }
        let known: Vec<String> = node.peers().into_iter().map(|p| p.address).collect();
        for peer in config.peers.into_iter().filter(|p| !known.contains(p)) {
            tokio::spawn(keep_connected(node.clone(), peer));
        }
        info!("config reloaded (namespaces and peers; other keys need a restart)");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_without_tls_is_refused_unless_allowed() {
        use TokenTransport::*;
        assert_eq!(token_transport(false, false, false), Protected);
        assert_eq!(token_transport(true, true, false), Protected);
        assert_eq!(token_transport(true, false, true), PlaintextAllowed);
        assert_eq!(token_transport(true, false, false), PlaintextRefused);
    }

    #[test]
    fn tls_files_are_read_at_start_and_errors_name_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("node.pem");
        std::fs::write(&cert, "cert").unwrap();
        let yaml = format!(
            "id: a\nlisten: 127.0.0.1:1\ntoken: from-config\ntls: {{cert: {}, key: {}, ca: {}}}\n",
            cert.display(),
            dir.path().join("missing.key").display(),
            cert.display()
        );
        let config = NodeConfig::parse(&yaml).unwrap();
        let err = format!("{:#}", security(&config).unwrap_err());
        assert!(
            err.contains("key `tls.key`") && err.contains("missing.key"),
            "{err}"
        );

        // Mutual TLS is off unless asked for.
        let yaml = |extra: &str| {
            format!(
                "id: a\nlisten: 127.0.0.1:1\ntls: {{cert: {0}, key: {0}, ca: {0}{extra}}}\n",
                cert.display()
            )
        };
        let tls = |yaml: &str| security(&NodeConfig::parse(yaml).unwrap()).unwrap().tls;
        assert!(!tls(&yaml("")).unwrap().require_client_cert);
        assert!(
            tls(&yaml(", require_client_cert: true"))
                .unwrap()
                .require_client_cert
        );

        let config = NodeConfig::parse("id: a\nlisten: 127.0.0.1:1\ntoken: from-config\n").unwrap();
        let s = security(&config).unwrap();
        assert!(s.token.is_some() && s.tls.is_none());
        assert!(
            !format!("{s:?}").contains("from-config"),
            "the token is never printed"
        );
    }
}
