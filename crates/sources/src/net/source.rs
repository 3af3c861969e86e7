//! `type: tcp`, `udp`, `syslog_tcp`, `syslog_udp`: one listener each — the
//! typed settings (the `switchyard dispatcher` flags `--tcp`, `--udp`,
//! `--syslog-tcp`, `--syslog-udp`, `--max-message-bytes`,
//! `--max-connections`) and the start: bind, then serve under supervision,
//! binding the same port again after a failure.

use super::{serve_tcp, serve_udp, Format, NetConfig, NetCounters};
use crate::settings::default_queue_size;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use switchyard_engine::metrics::DiscardsFn;
use switchyard_engine::source::{
    RunningSource, Source, SourceConfig, SourceContext, SourceError, StatsFn,
};
use switchyard_engine::supervise::supervise;
use tokio::task::JoinHandle;
use tracing::info;

/// Settings of one network listener.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NetSourceConfig {
    /// Listen address.
    pub address: SocketAddr,
    /// Longest message, bytes; longer ones are cut (or skipped when
    /// octet-counted) and counted (`--max-message-bytes`).
    #[serde(default = "default_max_message")]
    pub max_message_bytes: usize,
    /// Most TCP connections at once (`--max-connections`).
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Bound of the source's queue, events.
    #[serde(default = "default_queue_size")]
    pub queue_size: usize,
}

fn default_max_message() -> usize {
    65_536
}
fn default_max_connections() -> usize {
    256
}

impl NetSourceConfig {
    /// The settings with every default, listening on `address`.
    pub fn new(address: SocketAddr) -> Self {
        Self {
            address,
            max_message_bytes: default_max_message(),
            max_connections: default_max_connections(),
            queue_size: default_queue_size(),
        }
    }
}

/// Whether a listener takes connections or datagrams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// A TCP listener: pushes back by not reading.
    Tcp,
    /// A UDP socket: drops (and counts) when the queue stays full.
    Udp,
}

macro_rules! listener_type {
    ($(#[$doc:meta])* $name:ident, $transport:expr, $format:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Deserialize, Serialize)]
        #[serde(transparent)]
        pub struct $name(pub NetSourceConfig);

        impl SourceConfig for $name {
            fn build(self) -> Result<Box<dyn Source>, SourceError> {
                Ok(Box::new(NetSource::new($transport, $format, self.0)?))
            }
        }
    };
}

listener_type!(
    /// `type: tcp`: lines over TCP.
    TcpConfig,
    Transport::Tcp,
    Format::Lines
);
listener_type!(
    /// `type: udp`: lines over UDP.
    UdpConfig,
    Transport::Udp,
    Format::Lines
);
listener_type!(
    /// `type: syslog_tcp`: syslog over TCP (newline or octet-counted).
    SyslogTcpConfig,
    Transport::Tcp,
    Format::Syslog
);
listener_type!(
    /// `type: syslog_udp`: syslog over UDP.
    SyslogUdpConfig,
    Transport::Udp,
    Format::Syslog
);

/// One network listener, ready to start.
#[derive(Debug)]
pub struct NetSource {
    transport: Transport,
    format: Format,
    config: NetSourceConfig,
}

impl NetSource {
    /// Check `config`; errors name the key.
    pub fn new(
        transport: Transport,
        format: Format,
        config: NetSourceConfig,
    ) -> Result<Self, SourceError> {
        let zero = [
            ("max_message_bytes", config.max_message_bytes),
            ("max_connections", config.max_connections),
        ];
        SourceError::from_problems(
            zero.iter()
                .filter(|(_, n)| *n == 0)
                .map(|(key, _)| SourceError::config(*key, "must be greater than 0"))
                .collect(),
        )?;
        Ok(Self {
            transport,
            format,
            config,
        })
    }
}

#[async_trait::async_trait]
impl Source for NetSource {
    fn queue_size(&self) -> usize {
        self.config.queue_size
    }

    async fn start(
        self: Box<Self>,
        cx: SourceContext,
    ) -> Result<Box<dyn RunningSource>, SourceError> {
        let (transport, addr) = (self.transport, self.config.address);
        let socket = Bound::bind(transport, addr)
            .await
            .map_err(|e| SourceError::start("address", format!("cannot bind {addr}: {e}")))?;
        // A restart binds the port the first socket got (`:0` included).
        let addr = socket
            .local_addr()
            .map_err(|e| SourceError::start("address", e.to_string()))?;
        info!(%addr, source = %cx.name, "listening");
        let config = NetConfig {
            max_message_bytes: self.config.max_message_bytes,
            max_connections: self.config.max_connections,
            ..NetConfig::new(self.format)
        };
        let counters = Arc::new(NetCounters::default());
        let mut first = Some(socket);
        let (intake, c, stop) = (cx.output, counters.clone(), cx.shutdown.clone());
        let attempt = move || {
            let first = first.take();
            let (config, intake, counters, stop) =
                (config.clone(), intake.clone(), c.clone(), stop.clone());
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
        let task = tokio::spawn(supervise(
            cx.health.register(&cx.name),
            cx.shutdown,
            attempt,
        ));
        Ok(Box::new(RunningNet {
            task,
            counters,
            transport,
        }))
    }
}

/// A listener, serving.
struct RunningNet {
    task: JoinHandle<()>,
    counters: Arc<NetCounters>,
    transport: Transport,
}

#[async_trait::async_trait]
impl RunningSource for RunningNet {
    fn stats(&self) -> StatsFn {
        let c = self.counters.clone();
        Arc::new(move || {
            json!({
                "messages": c.messages.load(Relaxed),
                "malformed": c.malformed.load(Relaxed),
                "too_long": c.too_long.load(Relaxed),
                "connections": c.connections.load(Relaxed),
                "refused": c.refused.load(Relaxed),
                "udp_dropped": c.udp_dropped.load(Relaxed),
            })
        })
    }

    fn discards(&self) -> Option<DiscardsFn> {
        let c = self.counters.clone();
        Some(match self.transport {
            Transport::Tcp => Arc::new(move || c.tcp_discards()),
            Transport::Udp => Arc::new(move || c.udp_discards()),
        })
    }

    /// Returns once every connection handed on what it read.
    async fn stop(self: Box<Self>) {
        let _ = self.task.await;
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_four_types_read_the_same_keys() {
        let v = serde_json::json!({"address": "127.0.0.1:1", "max_connections": 3});
        let c: SyslogTcpConfig = serde_json::from_value(v).unwrap();
        assert_eq!(c.0.max_connections, 3);
        assert_eq!(c.0.max_message_bytes, 65_536);
        let bad = serde_json::json!({"address": "127.0.0.1:1", "port": 3});
        let err = serde_json::from_value::<UdpConfig>(bad).unwrap_err();
        assert!(err.to_string().contains("unknown field `port`"), "{err}");
        let zero = NetSourceConfig {
            max_connections: 0,
            ..NetSourceConfig::new("127.0.0.1:1".parse().unwrap())
        };
        let err = NetSource::new(Transport::Tcp, Format::Lines, zero).unwrap_err();
        assert_eq!(err.key(), Some("max_connections"));
    }
}
