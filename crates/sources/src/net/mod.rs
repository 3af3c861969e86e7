//! Network sources: TCP and UDP, as plain lines or as syslog (RFC 5424 and
//! RFC 3164; over TCP newline-delimited or octet-counted).
//!
//! - TCP pushes back: a connection is not read while the intake queue is
//!   full. Connections beyond `max_connections` are refused and counted.
//! - UDP cannot push back: datagrams that find the queue full for
//!   `udp_queue_wait` are dropped and counted (`udp_dropped`).
//! - Messages are bounded by `max_message_bytes` (longer ones are cut or, when
//!   octet-counted, skipped, and counted). Syslog lines that do not parse are
//!   kept whole as the message and counted (`malformed`), never dropped.

mod framing;
pub mod source;
pub mod syslog;

pub use framing::Framer;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use switchyard_core::{Event, LogRecord, Payload};
use switchyard_engine::intake::SendError;
use switchyard_engine::IntakeSender;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{watch, Semaphore};
use tracing::{debug, warn};

/// How messages are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One log record per line, the line as its message.
    Lines,
    /// Syslog messages.
    Syslog,
}

/// Settings of a network source.
#[derive(Debug, Clone)]
pub struct NetConfig {
    /// Message format.
    pub format: Format,
    /// Longest message, bytes.
    pub max_message_bytes: usize,
    /// Most TCP connections at once.
    pub max_connections: usize,
    /// How long UDP datagrams may wait for queue room before being dropped.
    pub udp_queue_wait: Duration,
}

impl NetConfig {
    /// Defaults for `format`.
    pub fn new(format: Format) -> Self {
        Self {
            format,
            max_message_bytes: 64 * 1024,
            max_connections: 256,
            udp_queue_wait: Duration::from_millis(100),
        }
    }
}

/// What a network source has done.
#[derive(Debug, Default)]
pub struct NetCounters {
    /// Messages sent to the pipeline.
    pub messages: AtomicU64,
    /// Syslog messages that did not parse (kept as raw messages).
    pub malformed: AtomicU64,
    /// Messages cut or skipped for being longer than allowed.
    pub too_long: AtomicU64,
    /// TCP connections accepted.
    pub connections: AtomicU64,
    /// TCP connections refused over `max_connections`.
    pub refused: AtomicU64,
    /// UDP messages dropped because the queue stayed full.
    pub udp_dropped: AtomicU64,
}

impl NetCounters {
    /// What a TCP listener lost, by reason (the `reason` label of
    /// `dispatcher_component_discarded_events_total`). A refused connection
    /// counts once, whatever its client would have sent.
    pub fn tcp_discards(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("too_long", self.too_long.load(Relaxed)),
            ("connection_refused", self.refused.load(Relaxed)),
        ]
    }

    /// What a UDP socket lost, by reason.
    pub fn udp_discards(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("too_long", self.too_long.load(Relaxed)),
            ("udp_queue_full", self.udp_dropped.load(Relaxed)),
        ]
    }
}

/// Turns framed messages into events.
struct Decoder {
    config: NetConfig,
    counters: Arc<NetCounters>,
    source_type: &'static str,
}

impl Decoder {
    fn events(&self, frames: Vec<String>, peer: SocketAddr) -> Vec<Event> {
        let now = time::OffsetDateTime::now_utc();
        let peer = peer.to_string();
        frames
            .into_iter()
            .map(|frame| {
                let mut rec = match self.config.format {
                    Format::Lines => LogRecord::new(frame),
                    Format::Syslog => {
                        // The parser takes any text without panicking (its
                        // property tests say so); should a case be missed,
                        // the message is still kept, whole, as malformed.
                        let parsed = std::panic::catch_unwind(|| syslog::parse(&frame, now));
                        let (rec, error) = parsed.unwrap_or_else(|_| {
                            let mut rec = LogRecord::new(frame.as_str());
                            rec.timestamp = now;
                            (rec, Some("the syslog parser failed on it".to_string()))
                        });
                        if let Some(reason) = error {
                            self.counters.malformed.fetch_add(1, Relaxed);
                            debug!(%peer, %reason, "malformed syslog message kept as is");
                        }
                        rec
                    }
                };
                rec.source_type = Some(self.source_type);
                rec.source_id = Some(peer.clone());
                Event::new(Payload::Log(rec))
            })
            .collect()
    }
}

/// Accept TCP connections until `stop` turns true.
pub async fn serve_tcp(
    listener: TcpListener,
    config: NetConfig,
    intake: IntakeSender,
    counters: Arc<NetCounters>,
    mut stop: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(config.max_connections.max(1)));
    let source_type = match config.format {
        Format::Lines => "tcp",
        Format::Syslog => "syslog",
    };
    let decoder = Arc::new(Decoder {
        config,
        counters: counters.clone(),
        source_type,
    });
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            accepted = listener.accept() => {
                let (socket, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        warn!(error = %e, "tcp source: accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    counters.refused.fetch_add(1, Relaxed);
                    warn!(%peer, "tcp source: too many connections; refused");
                    continue;
                };
                counters.connections.fetch_add(1, Relaxed);
                let (decoder, intake, stop) = (decoder.clone(), intake.clone(), stop.clone());
                connections.spawn(async move {
                    read_connection(socket, peer, &decoder, &intake, stop).await;
                    drop(slot);
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    // Connections see `stop` too and end after what they already read.
    while connections.join_next().await.is_some() {}
}

async fn read_connection(
    mut socket: TcpStream,
    peer: SocketAddr,
    decoder: &Decoder,
    intake: &IntakeSender,
    mut stop: watch::Receiver<bool>,
) {
    let max = decoder.config.max_message_bytes;
    let mut framer = Framer::new(max, decoder.config.format == Format::Syslog);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let mut frames = Vec::new();
        let ended = tokio::select! {
            _ = stop.changed() => true,
            read = socket.read(&mut buf) => match read {
                Ok(0) | Err(_) => {
                    framer.finish(&mut frames);
                    true
                }
                Ok(n) => {
                    framer.feed(&buf[..n], &mut frames);
                    false
                }
            },
        };
        decoder
            .counters
            .too_long
            .fetch_add(std::mem::take(&mut framer.too_long), Relaxed);
        if !frames.is_empty() {
            let events = decoder.events(frames, peer);
            let n = events.len() as u64;
            // Waits for room: the connection is not read meanwhile.
            if intake.send(events).await.is_err() {
                break;
            }
            decoder.counters.messages.fetch_add(n, Relaxed);
        }
        if ended {
            break;
        }
    }
}

/// Receive UDP datagrams until `stop` turns true. Each datagram holds one
/// message (syslog) or one or more lines.
pub async fn serve_udp(
    socket: UdpSocket,
    config: NetConfig,
    intake: IntakeSender,
    counters: Arc<NetCounters>,
    mut stop: watch::Receiver<bool>,
) {
    let source_type = match config.format {
        Format::Lines => "udp",
        Format::Syslog => "syslog",
    };
    let wait = config.udp_queue_wait;
    let decoder = Decoder {
        config,
        counters: counters.clone(),
        source_type,
    };
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let (n, peer) = tokio::select! {
            _ = stop.changed() => break,
            r = socket.recv_from(&mut buf) => match r {
                Ok(r) => r,
                Err(e) => {
                    warn!(error = %e, "udp source: receive failed");
                    continue;
                }
            },
        };
        let mut framer = Framer::new(decoder.config.max_message_bytes, false);
        let mut frames = Vec::new();
        match decoder.config.format {
            Format::Syslog => framer.feed(&buf[..n], &mut frames),
            Format::Lines => framer.feed(&buf[..n], &mut frames),
        }
        framer.finish(&mut frames);
        counters.too_long.fetch_add(framer.too_long, Relaxed);
        if frames.is_empty() {
            continue;
        }
        let events = decoder.events(frames, peer);
        let count = events.len() as u64;
        match intake.send_timeout(events, wait).await {
            Ok(()) => {
                counters.messages.fetch_add(count, Relaxed);
            }
            Err(SendError::Full(_)) => {
                let dropped = counters.udp_dropped.fetch_add(count, Relaxed) + count;
                if dropped.is_power_of_two() {
                    warn!(dropped, "udp source: pipeline full; datagrams dropped");
                }
            }
            Err(SendError::Closed(_)) => break,
        }
    }
}
