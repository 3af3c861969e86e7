//! Peer health. Each peer is probed with an empty Serve — every collector,
//! ours or the original, answers it at once with `400 namespace is required`,
//! so any answer means "alive" and it has no side effect. A peer that fails a
//! probe leaves routing at once and is re-probed with exponential backoff;
//! when it answers again it is re-announced with Connect (it may have
//! restarted and forgotten us) and rejoins routing.

use crate::connect;
use crate::node::Node;
use crate::peers::Peer;
use crate::unary::CallHeaders;
use std::sync::Arc;
use std::time::Duration;
use switchyard_core::backoff::{Backoff, Jitter};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tonic::Code;
use tracing::{info, warn};

/// Marks a probe, so the probed node keeps it out of its call metrics.
pub const PROBE_HEADER: &str = "x-switchyard-probe";

/// Probe due peers until `stop` turns true.
pub(crate) async fn run(node: Arc<Node>, mut stop: watch::Receiver<bool>) {
    let config = node.config.health;
    // Check for due probes often enough that scheduling adds little delay.
    let mut tick =
        tokio::time::interval((config.probe_interval / 4).max(Duration::from_millis(20)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut probes = JoinSet::new();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => break,
        }
        // At most one probe per peer in flight.
        while probes.try_join_next().is_some() {}
        if !probes.is_empty() {
            continue;
        }
        let now = Instant::now();
        for peer in node.peers.all() {
            if peer
                .dead_since()
                .is_some_and(|since| now - since >= config.forget_after)
            {
                warn!(peer = %peer.id, address = %peer.address, "peer dead too long; forgotten");
                node.peers.remove(&peer.id);
                continue;
            }
            if peer.next_probe() <= now {
                probes.spawn(check(node.clone(), peer));
            }
        }
        let all = node.peers.all();
        let healthy = all.iter().filter(|p| p.is_healthy()).count();
        node.metrics.set_peers(healthy, all.len() - healthy);
    }
    probes.abort_all();
}

async fn check(node: Arc<Node>, peer: Arc<Peer>) {
    let config = node.config.health;
    let alive = probe(&peer, config.probe_timeout).await;
    let now = Instant::now();
    match (alive, peer.is_healthy()) {
        (true, true) => peer.mark_alive(now + config.probe_interval),
        (true, false) => {
            let namespaces = node.namespaces();
            match connect::connect_to(&node, &peer.address, &namespaces, false).await {
                Ok(r) => {
                    if r.target_collector_id != peer.id {
                        // Another collector now lives at that address.
                        node.peers.remove(&peer.id);
                    }
                    peer.mark_alive(now + config.probe_interval);
                    info!(peer = %peer.id, "peer is back; reconnected");
                }
                Err(error) => {
                    let n = peer.probe_failures();
                    peer.mark_dead(now + backoff(config.probe_interval, config.max_backoff, n));
                    warn!(peer = %peer.id, %error, "peer answers but reconnect failed");
                }
            }
        }
        (false, was_healthy) => {
            let n = peer.probe_failures();
            peer.mark_dead(now + backoff(config.probe_interval, config.max_backoff, n));
            if was_healthy {
                warn!(peer = %peer.id, address = %peer.address, "peer unreachable; removed from routing");
            }
        }
    }
}

async fn probe(peer: &Peer, timeout: Duration) -> bool {
    let headers = CallHeaders {
        timeout: Some(timeout),
        traceparent: None,
        probe: true,
    };
    // An empty ServeRequest: a frame prefix saying zero bytes.
    let call = bytes::Bytes::from_static(&[0; crate::wire::PREFIX]);
    match tokio::time::timeout(timeout, peer.serve(call, &headers)).await {
        Err(_) => false,
        Ok(Ok(_)) => true,
        // The peer answered, just not with a response (e.g. a token
        // mismatch): it is up, and calls will report the real problem.
        Ok(Err(status)) => !matches!(
            status.code(),
            Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown
        ),
    }
}

/// The delay before re-probing a peer after `failures` failed probes:
/// doubling from `base`, capped at `max`, plus up to 25% jitter so that
/// nodes do not probe in lockstep.
pub(crate) fn backoff(base: Duration, max: Duration, failures: u32) -> Duration {
    Backoff::new(base, max, Jitter::QUARTER_MORE).delay(failures, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let base = Duration::from_millis(100);
        let max = Duration::from_secs(1);
        let b0 = backoff(base, max, 0);
        assert!(b0 >= base && b0 <= base.mul_f64(1.25));
        let b3 = backoff(base, max, 3);
        assert!(b3 >= Duration::from_millis(800) && b3 <= Duration::from_millis(1000));
        assert!(backoff(base, max, 30) <= max.mul_f64(1.25));
    }
}
