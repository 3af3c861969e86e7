//! The collectors this node is connected to, keyed by collector id so that
//! connecting twice (or both ways) never creates a second entry.

use crate::balance::{self, RoundRobin};
use crate::breaker::{Breaker, BreakerConfig};
use crate::config::MeshConfig;
use crate::error::MeshError;
use crate::pb;
use crate::pb::collective_dispatcher_client::CollectiveDispatcherClient;
use crate::relay::ServeReply;
use crate::security::{ClientAuth, Security};
use crate::unary::{CallHeaders, UnaryClient};
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::time::Instant;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// A gRPC client of a peer's CollectiveDispatcher.
pub type Client = CollectiveDispatcherClient<InterceptedService<Channel, ClientAuth>>;

/// Dial a client (lazily: the connection is made on first use and re-made
/// after a failure by the channel itself).
pub fn dial(
    address: &str,
    security: &Security,
    connect_timeout: Duration,
) -> Result<Client, MeshError> {
    let channel = security.endpoint(address, connect_timeout)?.connect_lazy();
    Ok(CollectiveDispatcherClient::with_interceptor(
        channel,
        security.client_auth(),
    ))
}

/// One connected collector.
pub struct Peer {
    /// Its collector id.
    pub id: String,
    /// The address it advertised (or we dialled).
    pub address: String,
    /// Its tonic clients: for Connect, and for every call when there are no
    /// lean clients (a few HTTP/2 connections then, so that many concurrent
    /// forwarded calls are not serialized through one connection's task).
    clients: Vec<Client>,
    next_client: AtomicUsize,
    /// The lean clients that forwarded calls and probes use.
    hops: Vec<UnaryClient>,
    next_hop: AtomicUsize,
    /// Its circuit breaker.
    pub breaker: Breaker,
    shared: RwLock<Vec<String>>,
    healthy: AtomicBool,
    probe_failures: AtomicU32,
    next_probe: Mutex<Instant>,
    dead_since: Mutex<Option<Instant>>,
}

/// HTTP/2 connections per peer for forwarded calls, through tonic (a peer
/// address of a scheme the lean client does not speak).
pub const CONNECTIONS_PER_PEER: usize = 2;

/// Lean connections per peer. Their calls do not queue behind
/// a connection task (each call writes its frames to the shared stream state
/// itself), so one connection serves many concurrent calls.
pub const HOP_CONNECTIONS_PER_PEER: usize = 1;

impl Peer {
    /// A tonic client of this peer (connections taken in turn).
    pub fn client(&self) -> Client {
        let i = self.next_client.fetch_add(1, Ordering::Relaxed) % self.clients.len();
        self.clients[i].clone()
    }

    /// Call Serve on this peer: over a lean hop connection, else through
    /// tonic. Errors are transport or gRPC failures of the call.
    pub(crate) async fn serve(
        &self,
        frame: Bytes,
        headers: &CallHeaders,
    ) -> Result<ServeReply, tonic::Status> {
        if !self.hops.is_empty() {
            let i = self.next_hop.fetch_add(1, Ordering::Relaxed) % self.hops.len();
            return self.hops[i].serve_reply(frame, headers).await;
        }
        let call: pb::ServeRequest = crate::wire::decode(&frame, usize::MAX, "request")?;
        let mut request = tonic::Request::new(call);
        if let Some(timeout) = headers.timeout {
            request.set_timeout(timeout);
        }
        let metadata = request.metadata_mut();
        if let Some(v) = headers.traceparent.as_ref().and_then(|v| v.to_str().ok()) {
            if let Ok(v) = v.parse() {
                metadata.insert(crate::trace::TRACEPARENT, v);
            }
        }
        if headers.probe {
            metadata.insert(
                crate::health::PROBE_HEADER,
                tonic::metadata::MetadataValue::from_static("1"),
            );
        }
        // Boxed: tonic's call future is large, and inline it would make
        // every forwarded call's future (and each copy of it) that large.
        let mut client = self.client();
        let call = Box::pin(client.serve(request));
        ServeReply::of(&call.await?.into_inner())
    }

    /// The namespaces both sides serve.
    pub fn shared(&self) -> Vec<String> {
        self.shared
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn serves(&self, namespace: &str) -> bool {
        let shared = self.shared.read().unwrap_or_else(|e| e.into_inner());
        shared.iter().any(|n| n == namespace)
    }

    /// Whether the last probe (or reconnect) succeeded.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Consecutive failed probes.
    pub fn probe_failures(&self) -> u32 {
        self.probe_failures.load(Ordering::Relaxed)
    }

    /// Record a failed probe: the peer leaves routing; the next probe waits
    /// `backoff` (chosen by the caller from the failure count).
    pub fn mark_dead(&self, next_probe: Instant) -> u32 {
        self.healthy.store(false, Ordering::Relaxed);
        self.dead_since
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert(Instant::now());
        *self.next_probe.lock().unwrap_or_else(|e| e.into_inner()) = next_probe;
        self.probe_failures.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Record a successful probe or reconnect.
    pub fn mark_alive(&self, next_probe: Instant) {
        self.probe_failures.store(0, Ordering::Relaxed);
        *self.dead_since.lock().unwrap_or_else(|e| e.into_inner()) = None;
        *self.next_probe.lock().unwrap_or_else(|e| e.into_inner()) = next_probe;
        self.healthy.store(true, Ordering::Relaxed);
    }

    /// Since when the peer has been unreachable, if it is.
    pub fn dead_since(&self) -> Option<Instant> {
        *self.dead_since.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// When this peer should next be probed.
    pub fn next_probe(&self) -> Instant {
        *self.next_probe.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A peer as reported to operators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    /// Collector id.
    pub id: String,
    /// Address.
    pub address: String,
    /// Shared namespaces.
    pub shared_namespaces: Vec<String>,
    /// Routable now.
    pub healthy: bool,
    /// Circuit breaker open.
    pub breaker_open: bool,
}

/// All peers, plus how to dial new ones and how to order them.
pub struct PeerTable {
    peers: RwLock<HashMap<String, Arc<Peer>>>,
    dialer: Dialer,
    breaker: BreakerConfig,
    max_peers: usize,
    round_robin: RoundRobin,
}

/// How peers are dialled.
struct Dialer {
    security: Security,
    connect_timeout: Duration,
    /// Responses a forwarded call may bring back (the node's own limit, with
    /// the same headroom its server allows).
    max_response: usize,
}

impl Dialer {
    fn dial(&self, address: &str) -> Result<Client, MeshError> {
        Ok(dial(address, &self.security, self.connect_timeout)?
            .max_decoding_message_size(self.max_response)
            .max_encoding_message_size(self.max_response))
    }

    /// The lean clients for `address`, over TLS when it is on. None for an
    /// address of another scheme (or `https://` without TLS settings),
    /// which tonic's client then carries as best it can.
    fn hops(&self, address: &str) -> Result<Vec<UnaryClient>, MeshError> {
        let tls = self.security.tls_connector()?;
        let scheme_ok = match address.split_once("://") {
            None => true,
            Some(("http", _)) => tls.is_none(),
            Some(("https", _)) => tls.is_some(),
            Some(_) => false,
        };
        if !scheme_ok {
            return Ok(Vec::new());
        }
        let bad = |reason: String| MeshError::Address {
            address: address.to_string(),
            reason,
        };
        (0..HOP_CONNECTIONS_PER_PEER)
            .map(|_| {
                let client = UnaryClient::new(
                    address,
                    self.security.authorization(),
                    self.connect_timeout,
                    self.max_response,
                )
                .map_err(bad)?;
                match &tls {
                    None => Ok(client),
                    Some(connector) => {
                        let name = self.security.server_name(client.host())?;
                        client.with_tls(connector.clone(), name).map_err(bad)
                    }
                }
            })
            .collect()
    }
}

impl PeerTable {
    /// An empty table for a node with `config`.
    pub fn new(config: &MeshConfig) -> Self {
        Self {
            peers: RwLock::default(),
            dialer: Dialer {
                security: config.security.clone(),
                connect_timeout: config.connect_timeout,
                max_response: config.max_message_bytes.saturating_mul(2),
            },
            breaker: config.breaker,
            max_peers: config.max_peers,
            round_robin: RoundRobin::default(),
        }
    }

    /// A client for `address`, reusing a known peer's connection.
    pub fn client_for(&self, address: &str) -> Result<Client, MeshError> {
        let known = {
            let peers = self.peers.read().unwrap_or_else(|e| e.into_inner());
            peers
                .values()
                .find(|p| p.address == address)
                .map(|p| p.client())
        };
        match known {
            Some(client) => Ok(client),
            None => self.dialer.dial(address),
        }
    }

    /// Add the peer `id`, or update it: a known id keeps its connection
    /// (unless its address changed), its breaker and its place.
    pub fn upsert(&self, id: &str, address: &str, shared: Vec<String>) -> Result<(), MeshError> {
        let mut peers = self.peers.write().unwrap_or_else(|e| e.into_inner());
        if let Some(peer) = peers.get(id).filter(|p| p.address == address) {
            *peer.shared.write().unwrap_or_else(|e| e.into_inner()) = shared;
            peer.mark_alive(Instant::now());
            return Ok(());
        }
        let hops = self.dialer.hops(address)?;
        // With hop clients, tonic's carries only Connect: one is plenty.
        let tonic_clients = if hops.is_empty() {
            CONNECTIONS_PER_PEER
        } else {
            1
        };
        let clients = (0..tonic_clients)
            .map(|_| self.dialer.dial(address))
            .collect::<Result<Vec<_>, _>>()?;
        // An id first seen as "unknown" (no collector_id sent) is the same
        // collector once it tells us its id: keep one entry.
        peers.retain(|key, p| !(key == "unknown" && p.address == address && id != "unknown"));
        if !peers.contains_key(id) && peers.len() >= self.max_peers {
            return Err(MeshError::PeerTableFull {
                max: self.max_peers,
            });
        }
        peers.insert(
            id.to_string(),
            Arc::new(Peer {
                id: id.to_string(),
                address: address.to_string(),
                clients,
                next_client: AtomicUsize::new(0),
                hops,
                next_hop: AtomicUsize::new(0),
                breaker: Breaker::new(self.breaker),
                shared: RwLock::new(shared),
                healthy: AtomicBool::new(true),
                probe_failures: AtomicU32::new(0),
                next_probe: Mutex::new(Instant::now()),
                dead_since: Mutex::new(None),
            }),
        );
        Ok(())
    }

    /// Forget the peer `id`.
    pub fn remove(&self, id: &str) {
        self.peers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }

    /// The peer `id`.
    pub fn get(&self, id: &str) -> Option<Arc<Peer>> {
        self.peers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
    }

    /// Every peer.
    pub fn all(&self) -> Vec<Arc<Peer>> {
        let mut all: Vec<_> = self
            .peers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        all.sort_by(|a, b| a.id.cmp(&b.id));
        all
    }

    /// Healthy peers serving `namespace` whose breaker is not open, in the
    /// order to try them: by rendezvous hash of `hash_key` if given, else
    /// round robin.
    pub fn candidates(&self, namespace: &str, hash_key: Option<&str>) -> Vec<Arc<Peer>> {
        let now = Instant::now();
        let eligible: Vec<Arc<Peer>> = self
            .all()
            .into_iter()
            .filter(|p| p.is_healthy() && p.serves(namespace) && !p.breaker.is_open(now))
            .collect();
        match hash_key {
            Some(key) => balance::by_hash(key, eligible, |p| p.id.as_str()),
            None => self.round_robin.order(namespace, eligible),
        }
    }

    /// Operator view of every peer.
    pub fn info(&self) -> Vec<PeerInfo> {
        let now = Instant::now();
        self.all()
            .iter()
            .map(|p| PeerInfo {
                id: p.id.clone(),
                address: p.address.clone(),
                shared_namespaces: p.shared(),
                healthy: p.is_healthy(),
                breaker_open: p.breaker.is_open(now),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(peers: &[Arc<Peer>]) -> Vec<&str> {
        let mut ids: Vec<&str> = peers.iter().map(|p| p.id.as_str()).collect();
        ids.sort_unstable();
        ids
    }

    /// Automatic routing tries only peers that are healthy, serve the
    /// namespace and whose breaker lets calls through; each comes back when
    /// its reason to be skipped is gone.
    #[tokio::test]
    async fn candidates_skip_dead_peers_open_breakers_and_other_namespaces() {
        let table = PeerTable::new(&MeshConfig::default());
        for (id, port, namespaces) in [("p1", 1, ["x"]), ("p2", 2, ["x"]), ("p3", 3, ["y"])] {
            let shared = namespaces.iter().map(|n| n.to_string()).collect();
            table
                .upsert(id, &format!("127.0.0.1:{port}"), shared)
                .expect("room in the table");
        }
        let candidates = |ns: &str| table.candidates(ns, None);
        assert_eq!(ids(&candidates("x")), ["p1", "p2"]);
        assert_eq!(ids(&candidates("y")), ["p3"]);
        assert_eq!(ids(&table.candidates("x", Some("tenant-7"))), ["p1", "p2"]);

        let p1 = table.get("p1").expect("known");
        p1.mark_dead(Instant::now() + Duration::from_secs(60));
        assert_eq!(ids(&candidates("x")), ["p2"]);
        assert_eq!(ids(&table.candidates("x", Some("tenant-7"))), ["p2"]);

        let p2 = table.get("p2").expect("known");
        let now = Instant::now();
        for _ in 0..BreakerConfig::default().failures {
            p2.breaker
                .try_acquire(now)
                .expect("closed")
                .record(false, now);
        }
        assert!(candidates("x").is_empty(), "p1 dead, p2's breaker open");

        p1.mark_alive(Instant::now());
        assert_eq!(ids(&candidates("x")), ["p1"]);
    }
}
