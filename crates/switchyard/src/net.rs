//! `--tcp`, `--udp`, `--syslog-tcp`, `--syslog-udp`: network sources of the
//! dispatcher.

use anyhow::Context;
use clap::Args;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use switchyard_engine::metrics::{ComponentKind, DiscardsFn, Metrics};
use switchyard_engine::supervise::{supervise, Health};
use switchyard_engine::IntakeSender;
use switchyard_sources::net::{serve_tcp, serve_udp, Format, NetConfig, NetCounters};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::info;

/// Network source options of `switchyard dispatcher`.
#[derive(Args, Debug, Clone)]
pub struct NetArgs {
    /// Accept log lines over TCP on this address (one record per line).
    #[arg(long = "tcp", value_name = "ADDR", env = "DISPATCHER_TCP")]
    pub tcp: Option<SocketAddr>,
    /// Accept log lines over UDP on this address.
    #[arg(long = "udp", value_name = "ADDR", env = "DISPATCHER_UDP")]
    pub udp: Option<SocketAddr>,
    /// Accept syslog (RFC 5424/3164, newline or octet-counted) over TCP.
    #[arg(
        long = "syslog-tcp",
        value_name = "ADDR",
        env = "DISPATCHER_SYSLOG_TCP"
    )]
    pub syslog_tcp: Option<SocketAddr>,
    /// Accept syslog (RFC 5424/3164) over UDP.
    #[arg(
        long = "syslog-udp",
        value_name = "ADDR",
        env = "DISPATCHER_SYSLOG_UDP"
    )]
    pub syslog_udp: Option<SocketAddr>,
    /// Longest network message, bytes (longer ones are cut and counted).
    #[arg(long, default_value = "65536")]
    pub max_message_bytes: usize,
    /// Most TCP connections at once, per listener.
    #[arg(long, default_value = "256")]
    pub max_connections: usize,
}

/// The running network sources.
pub struct NetSources {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    counters: Vec<(&'static str, Arc<NetCounters>)>,
    /// What each listener loses, by reason, read at scrape time.
    discards: Vec<(&'static str, DiscardsFn)>,
}

impl NetSources {
    /// Bind every configured address and start serving. A listener whose
    /// task ends early (an error, a panic) is bound again and restarted by
    /// [`supervise`], counted and reported down on `health` meanwhile, under
    /// `health_name` or else its flag's name.
    pub async fn start(
        args: &NetArgs,
        intake: &IntakeSender,
        health: &Health,
        health_name: Option<&str>,
    ) -> anyhow::Result<Self> {
        let (stop, stop_rx) = watch::channel(false);
        let mut sources = Self {
            stop,
            tasks: Vec::new(),
            counters: Vec::new(),
            discards: Vec::new(),
        };
        let config = |format| NetConfig {
            max_message_bytes: args.max_message_bytes,
            max_connections: args.max_connections,
            ..NetConfig::new(format)
        };
        let listeners = [
            ("tcp", args.tcp, Format::Lines, Transport::Tcp),
            (
                "syslog_tcp",
                args.syslog_tcp,
                Format::Syslog,
                Transport::Tcp,
            ),
            ("udp", args.udp, Format::Lines, Transport::Udp),
            (
                "syslog_udp",
                args.syslog_udp,
                Format::Syslog,
                Transport::Udp,
            ),
        ];
        for (name, addr, format, transport) in listeners {
            let Some(addr) = addr else { continue };
            let socket = Bound::bind(transport, addr).await.with_context(|| {
                format!("cannot bind {addr} — check --{}", name.replace('_', "-"))
            })?;
            // A restart binds the port the first socket got (`:0` included).
            let addr = socket.local_addr()?;
            let counters = Arc::new(NetCounters::default());
            info!(%addr, source = name, "listening");
            let mut first = Some(socket);
            let (config, intake, counters2, stop) = (
                config(format),
                intake.clone(),
                counters.clone(),
                stop_rx.clone(),
            );
            let attempt = move || {
                let first = first.take();
                let (config, intake, counters, stop) = (
                    config.clone(),
                    intake.clone(),
                    counters2.clone(),
                    stop.clone(),
                );
                async move {
                    let socket = match first {
                        Some(s) => s,
                        None => Bound::bind(transport, addr)
                            .await
                            .map_err(|e| format!("cannot bind {addr} again: {e}"))?,
                    };
                    match socket {
                        Bound::Tcp(l) => serve_tcp(l, config, intake, counters, stop).await,
                        Bound::Udp(s) => serve_udp(s, config, intake, counters, stop).await,
                    }
                    Ok(())
                }
            };
            sources.tasks.push(tokio::spawn(supervise(
                health.register(health_name.unwrap_or(name)),
                stop_rx.clone(),
                attempt,
            )));
            let c = counters.clone();
            let discards: DiscardsFn = match transport {
                Transport::Tcp => Arc::new(move || c.tcp_discards()),
                Transport::Udp => Arc::new(move || c.udp_discards()),
            };
            sources.discards.push((name, discards));
            sources.counters.push((name, counters));
        }
        Ok(sources)
    }

    /// Counters of every source, for `/stats`.
    pub fn stats_fn(&self) -> impl Fn() -> Value + Send + Sync + 'static {
        let counters = self.counters.clone();
        move || {
            let mut out = serde_json::Map::new();
            for (name, c) in &counters {
                out.insert(
                    (*name).into(),
                    json!({
                        "messages": c.messages.load(Relaxed),
                        "malformed": c.malformed.load(Relaxed),
                        "too_long": c.too_long.load(Relaxed),
                        "connections": c.connections.load(Relaxed),
                        "refused": c.refused.load(Relaxed),
                        "udp_dropped": c.udp_dropped.load(Relaxed),
                    }),
                );
            }
            Value::Object(out)
        }
    }

    /// Report what each listener loses on `/metrics`, under its flag's name
    /// (`udp`, `syslog_tcp`, …) or, when given, under `component` (the name
    /// of a pipeline file's source, which has one listener).
    pub fn report_discards(&self, metrics: &Metrics, component: Option<&str>) {
        for (name, read) in &self.discards {
            metrics.add_discards(
                component.unwrap_or(name),
                ComponentKind::Source,
                read.clone(),
            );
        }
    }

    /// Stop listening and reading; returns once every source has handed on
    /// what it read.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Transport {
    Tcp,
    Udp,
}

/// A bound listener or socket, before it is served.
enum Bound {
    Tcp(tokio::net::TcpListener),
    Udp(tokio::net::UdpSocket),
}

impl Bound {
    async fn bind(transport: Transport, addr: SocketAddr) -> std::io::Result<Self> {
        Ok(match transport {
            Transport::Tcp => Self::Tcp(tokio::net::TcpListener::bind(addr).await?),
            Transport::Udp => Self::Udp(tokio::net::UdpSocket::bind(addr).await?),
        })
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        match self {
            Self::Tcp(l) => l.local_addr(),
            Self::Udp(s) => s.local_addr(),
        }
    }
}
