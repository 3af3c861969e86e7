//! Connect: link two collectors. The receiving node records the caller and
//! then dials back, so both sides can route to each other; a dial-back is
//! marked so that it is not answered with another dial-back. Peers are keyed
//! by collector id, so connecting again updates the entry instead of adding one.

use crate::error::MeshError;
use crate::node::Node;
use crate::pb;
use crate::status::{self, BAD_REQUEST};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tracing::{debug, warn};

/// Metadata key carrying the caller's collector id.
pub const COLLECTOR_ID: &str = "collector_id";
/// Metadata key marking a Connect that must not be answered by a dial-back
/// (dial-backs themselves, and re-announcements).
pub const NO_DIALBACK: &str = "switchyard.no_dialback";

/// Handle an incoming Connect.
pub(crate) fn accept(node: &Arc<Node>, request: pb::ConnectRequest) -> pb::ConnectResponse {
    if request.address.is_empty() {
        return pb::ConnectResponse {
            status: Some(status::new(BAD_REQUEST, "address is required")),
            ..Default::default()
        };
    }
    let caller = request
        .metadata
        .get(COLLECTOR_ID)
        .filter(|id| !id.is_empty())
        .cloned()
        .unwrap_or_else(|| "unknown".to_string());
    let mine = node.namespaces();
    let shared: Vec<String> = request
        .namespaces
        .iter()
        .filter(|n| mine.contains(n))
        .cloned()
        .collect();
    if caller != node.me.id {
        match node.peers.upsert(&caller, &request.address, shared.clone()) {
            Ok(()) if !request.metadata.contains_key(NO_DIALBACK) => {
                dial_back(node, &request.address);
            }
            Ok(()) => {}
            Err(MeshError::PeerTableFull { max }) => {
                return pb::ConnectResponse {
                    status: Some(status::new(
                        status::UNAVAILABLE,
                        format!("peer table full ({max} peers); try another collector"),
                    )),
                    ..Default::default()
                }
            }
            // An address we cannot even parse: still answer (the original
            // does), but the caller will not be routable from here.
            Err(error) => warn!(%caller, %error, "cannot record peer"),
        }
    }
    pb::ConnectResponse {
        status: Some(status::ok()),
        connection_id: connection_id(&node.me.id),
        shared_namespaces: shared,
        target_collector_id: node.me.id.clone(),
    }
}

/// Dial the caller at `address` back in a task, unless a dial-back to it is
/// already in flight or too many are (see [`crate::dialback`]).
fn dial_back(node: &Arc<Node>, address: &str) {
    let Some(permit) = node.dialbacks.try_start(address) else {
        debug!(%address, "dial-back skipped: one is in flight, or too many are");
        return;
    };
    let (node, address) = (node.clone(), address.to_string());
    tokio::spawn(async move {
        let _permit = permit;
        let namespaces = node.namespaces();
        match connect_to(&node, &address, &namespaces, false).await {
            Ok(r) => debug!(peer = %r.target_collector_id, "dial-back connected"),
            Err(error) => {
                warn!(%address, %error, "dial-back failed; the peer can still route here")
            }
        }
    });
}

/// Connect this node to the collector at `address`, announcing `namespaces`.
/// `dialback`: whether the peer should dial back (false for dial-backs and
/// re-announcements, where it already knows us).
pub(crate) async fn connect_to(
    node: &Node,
    address: &str,
    namespaces: &[String],
    dialback: bool,
) -> Result<pb::ConnectResponse, MeshError> {
    let mut metadata = HashMap::from([(COLLECTOR_ID.to_string(), node.me.id.clone())]);
    if !dialback {
        metadata.insert(NO_DIALBACK.to_string(), "1".to_string());
    }
    let request = pb::ConnectRequest {
        address: node.me.address.clone(),
        namespaces: namespaces.to_vec(),
        metadata,
    };
    let mut client = node.peers.client_for(address)?;
    let mut call = tonic::Request::new(request);
    call.set_timeout(node.config.connect_timeout * 2);
    let response = tokio::time::timeout(node.config.connect_timeout * 2, client.connect(call))
        .await
        .map_err(|_| MeshError::Call {
            address: address.to_string(),
            status: Box::new(tonic::Status::deadline_exceeded("connect timed out")),
        })?
        .map_err(|status| MeshError::Call {
            address: address.to_string(),
            status: Box::new(status),
        })?
        .into_inner();
    let s = response.status.clone().unwrap_or_default();
    if s.code != status::OK {
        return Err(MeshError::Refused {
            address: address.to_string(),
            code: s.code,
            message: s.message,
        });
    }
    if response.target_collector_id == node.me.id {
        return Err(MeshError::Refused {
            address: address.to_string(),
            code: s.code,
            message: "that is this node itself".into(),
        });
    }
    node.peers.upsert(
        &response.target_collector_id,
        address,
        response.shared_namespaces.clone(),
    )?;
    Ok(response)
}

/// Tell every peer this node's current namespaces (after they changed).
/// Returns how many peers accepted.
pub(crate) async fn reannounce(node: &Node) -> usize {
    let namespaces = node.namespaces();
    let mut accepted = 0;
    for peer in node.peers.all() {
        match connect_to(node, &peer.address, &namespaces, false).await {
            Ok(_) => accepted += 1,
            Err(error) => warn!(peer = %peer.id, %error, "cannot re-announce namespaces"),
        }
    }
    accepted
}

fn connection_id(me: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!(
        "{me}-{:x}-{:08x}",
        NEXT.fetch_add(1, Ordering::Relaxed),
        fastrand::u32(..)
    )
}
