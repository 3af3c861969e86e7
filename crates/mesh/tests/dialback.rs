//! Dial-backs are bounded: a node that receives Connects dials each caller
//! back, but never more than once at a time per address and never more than
//! `max_dialbacks` at once in all. The callers here are fake collectors that
//! count the dial-backs reaching them and hold each one open, so every
//! dial-back a node started is still in flight when the test counts.

mod common;

use common::*;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use switchyard_mesh::pb::collective_dispatcher_server::{
    CollectiveDispatcher, CollectiveDispatcherServer,
};
use switchyard_mesh::pb::{self};
use switchyard_mesh::{COLLECTOR_ID, NO_DIALBACK};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Response, Status};

/// A collector that counts incoming Connects (the dial-backs) and answers
/// none of them until `release` turns true.
#[derive(Clone)]
struct HoldingPeer {
    connects: Arc<AtomicUsize>,
    release: watch::Receiver<bool>,
}

#[tonic::async_trait]
impl CollectiveDispatcher for HoldingPeer {
    async fn serve(
        &self,
        _: Request<pb::ServeRequest>,
    ) -> Result<Response<pb::ServeResponse>, Status> {
        Ok(Response::new(pb::ServeResponse::default()))
    }

    async fn connect(
        &self,
        request: Request<pb::ConnectRequest>,
    ) -> Result<Response<pb::ConnectResponse>, Status> {
        assert!(
            request.get_ref().metadata.contains_key(NO_DIALBACK),
            "a dial-back asks not to be dialled back"
        );
        self.connects.fetch_add(1, Ordering::SeqCst);
        let mut release = self.release.clone();
        let _ = release.wait_for(|r| *r).await;
        Err(Status::unavailable("held, then refused"))
    }

    async fn dispatch(
        &self,
        _: Request<pb::DispatchRequest>,
    ) -> Result<Response<pb::DispatchResponse>, Status> {
        Ok(Response::new(pb::DispatchResponse::default()))
    }
}

/// Start a holding peer on loopback; its address and its Connect counter.
async fn holding_peer(release: watch::Receiver<bool>) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("bound").to_string();
    let connects = Arc::new(AtomicUsize::new(0));
    let peer = HoldingPeer {
        connects: connects.clone(),
        release,
    };
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(CollectiveDispatcherServer::new(peer))
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    (addr, connects)
}

fn connect_from(id: &str, address: &str) -> pb::ConnectRequest {
    pb::ConnectRequest {
        address: address.into(),
        namespaces: vec!["orders".into()],
        metadata: HashMap::from([(COLLECTOR_ID.to_string(), id.to_string())]),
    }
}

/// After the last Connect was answered, every dial-back the node decided to
/// start has been spawned; give the spawned ones time to reach the peers.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(500)).await;
}

#[tokio::test]
async fn many_connects_from_one_peer_start_one_dial_back() {
    let (release, held) = watch::channel(false);
    let (peer_addr, connects) = holding_peer(held).await;
    let b = TestNode::start("b", &["orders"]).await;
    let mut client = b.client();
    for _ in 0..50 {
        let r = client
            .connect(connect_from("a", &peer_addr))
            .await
            .expect("connect answered")
            .into_inner();
        assert_eq!(code_msg(r.status).0, 200, "every Connect is still answered");
    }
    let arrived = eventually(Duration::from_secs(5), || async {
        connects.load(Ordering::SeqCst) >= 1
    })
    .await;
    assert!(arrived, "the first Connect was dialled back");
    settle().await;
    assert_eq!(connects.load(Ordering::SeqCst), 1, "one dial-back, not 50");
    assert_eq!(b.node.peers().len(), 1, "and one peer entry");

    // Once that dial-back has ended, the next Connect may dial back again.
    release.send(true).expect("peer running");
    let mut next = 0;
    for _ in 0..100 {
        client
            .connect(connect_from("a", &peer_addr))
            .await
            .expect("connect answered");
        next = connects.load(Ordering::SeqCst);
        if next > 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(next > 1, "the gate reopened after the dial-back ended");
}

#[tokio::test]
async fn dial_backs_in_flight_are_capped_across_peers() {
    let (_release, held) = watch::channel(false);
    let mut config = fast_config();
    config.max_dialbacks = 3;
    let b = TestNode::start_with("b", &["orders"], config).await;
    let mut client = b.client();
    let mut counters = vec![];
    for i in 0..8 {
        let (addr, connects) = holding_peer(held.clone()).await;
        let r = client
            .connect(connect_from(&format!("p{i}"), &addr))
            .await
            .expect("connect answered")
            .into_inner();
        assert_eq!(code_msg(r.status).0, 200);
        counters.push(connects);
    }
    let total = || {
        counters
            .iter()
            .map(|c| c.load(Ordering::SeqCst))
            .sum::<usize>()
    };
    let arrived = eventually(Duration::from_secs(5), || async { total() >= 3 }).await;
    assert!(arrived, "the first three peers were dialled back");
    settle().await;
    assert_eq!(total(), 3, "no more than max_dialbacks at once");
    assert_eq!(b.node.peers().len(), 8, "all eight are recorded as peers");
}
