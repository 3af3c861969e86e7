//! Settings of a mesh node, with defaults that suit a loopback or LAN mesh.

use crate::breaker::BreakerConfig;
use crate::security::Security;
use std::time::Duration;

/// Everything a [`crate::Dispatcher`] can be tuned with.
#[derive(Debug, Clone)]
pub struct MeshConfig {
    /// Peer health probing.
    pub health: HealthConfig,
    /// Per-peer circuit breaker.
    pub breaker: BreakerConfig,
    /// Largest accepted request, bytes (encoded protobuf). Larger requests up
    /// to twice this size (and at least 64 KiB more) get a `413` status in
    /// the response; beyond that the body is not read further and the call
    /// fails with gRPC's `RESOURCE_EXHAUSTED`. Responses over this size fail
    /// with `OUT_OF_RANGE`.
    pub max_message_bytes: usize,
    /// How long dialling a peer may take.
    pub connect_timeout: Duration,
    /// Longest a forwarded call may take when the caller set no deadline.
    pub call_timeout: Duration,
    /// Optional TLS and shared token.
    pub security: Security,
    /// Most peers kept; a Connect from a new collector beyond this is
    /// refused with `503`, so callers cannot grow the table without bound.
    pub max_peers: usize,
    /// Most dial-backs (the Connect a node sends back to a collector that
    /// connected to it) in flight at once; there is never more than one per
    /// address. A Connect beyond this is answered without a dial-back.
    pub max_dialbacks: usize,
}

impl Default for MeshConfig {
    fn default() -> Self {
        Self {
            health: HealthConfig::default(),
            breaker: BreakerConfig::default(),
            max_message_bytes: 4 * 1024 * 1024,
            connect_timeout: Duration::from_secs(2),
            call_timeout: Duration::from_secs(30),
            security: Security::default(),
            max_peers: 256,
            max_dialbacks: 16,
        }
    }
}

/// How peers are probed. A peer that fails one probe leaves routing at once;
/// with the defaults a dead peer is out within `probe_interval +
/// probe_timeout` (≤ 1 s). A dead peer is re-probed with exponential backoff
/// up to `max_backoff` and re-announced (Connect) when it answers again.
#[derive(Debug, Clone, Copy)]
pub struct HealthConfig {
    /// Time between probes of a healthy peer.
    pub probe_interval: Duration,
    /// Longest a probe may take.
    pub probe_timeout: Duration,
    /// Ceiling of the delay between probes of a dead peer.
    pub max_backoff: Duration,
    /// A peer dead this long is forgotten (it can connect again).
    pub forget_after: Duration,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            probe_interval: Duration::from_millis(500),
            probe_timeout: Duration::from_millis(500),
            max_backoff: Duration::from_secs(10),
            forget_after: Duration::from_secs(600),
        }
    }
}
