//! Bad input never panics or hangs a node: every case is a status in the
//! response with a clear message (or, for a message far above the limit, a
//! gRPC error from the transport).

mod common;

use common::*;
use std::time::Duration;
use switchyard_mesh::{any, MeshError};

const TIMESTAMP: &str = "type.googleapis.com/google.protobuf.Timestamp";

#[tokio::test]
async fn garbage_or_wrong_typed_any_is_a_handler_error() {
    let b = TestNode::start("b", &["t"]).await;
    b.node
        .register_service("t", "Clock", "Check", |input| async move {
            let ts: prost_types::Timestamp = any::unpack(&input, TIMESTAMP)?;
            Ok(any::json(&ts.seconds.to_string()))
        });
    let mut client = b.client();
    let mut req = serve_req("t", "Clock", "Check");
    req.input = Some(prost_types::Any {
        type_url: TIMESTAMP.into(),
        value: vec![0xff, 0xff, 0xff],
    });
    let r = client.serve(req.clone()).await.unwrap().into_inner();
    let (code, message) = code_msg(r.status);
    assert_eq!(code, 500);
    assert!(
        message.starts_with(
            "handler error: cannot decode input as `type.googleapis.com/google.protobuf.Timestamp`"
        ),
        "{message}"
    );
    req.input = Some(any::json("{}"));
    let r = client.serve(req.clone()).await.unwrap().into_inner();
    let (code, message) = code_msg(r.status);
    assert_eq!(code, 500);
    assert!(message.contains("expected input of type"), "{message}");
    req.input = None;
    let r = client.serve(req).await.unwrap().into_inner();
    assert_eq!(code_msg(r.status).0, 500, "a missing input is an empty Any");
}

#[tokio::test]
async fn a_panicking_handler_is_a_500_and_the_node_keeps_serving() {
    let b = TestNode::start("b", &["t"]).await;
    b.node
        .register_service("t", "Bad", "Panic", |input| async move {
            if input.value.is_empty() || !input.value.is_empty() {
                panic!("handler bug");
            }
            Ok(input)
        });
    answer(&b.node, "t", "Good", "Ok", "fine");
    let mut client = b.client();
    let r = client
        .serve(serve_req("t", "Bad", "Panic"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        code_msg(r.status),
        (500, "handler error: the handler panicked".into())
    );
    let r = client
        .serve(serve_req("t", "Good", "Ok"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code_msg(r.status).0, 200);
}

#[tokio::test]
async fn oversized_messages_get_413_or_a_transport_error() {
    let mut config = fast_config();
    config.max_message_bytes = 1024;
    let b = TestNode::start_with("b", &["t"], config).await;
    b.node
        .register_service("t", "Echo", "Echo", |input| async move { Ok(input) });
    let mut client = b.client();
    let mut req = serve_req("t", "Echo", "Echo");
    req.input = Some(any::json(&"x".repeat(500)));
    assert_eq!(
        code_msg(client.serve(req.clone()).await.unwrap().into_inner().status).0,
        200
    );

    req.input = Some(any::json(&"x".repeat(1500)));
    let (code, message) = code_msg(client.serve(req.clone()).await.unwrap().into_inner().status);
    assert_eq!(code, 413);
    assert!(message.starts_with("message too large: "), "{message}");
    assert!(
        message.ends_with("exceeds the limit of 1024 bytes"),
        "{message}"
    );

    let mut d = dispatch_req("t", "Echo", "Echo");
    d.input = req.input.clone();
    assert_eq!(
        code_msg(client.dispatch(d).await.unwrap().into_inner().status).0,
        413
    );

    req.input = Some(any::json(&"x".repeat(100_000)));
    let err = client.serve(req).await.unwrap_err();
    assert!(
        matches!(
            err.code(),
            tonic::Code::OutOfRange | tonic::Code::ResourceExhausted
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn unreachable_peers_are_reported_not_hung_on() {
    let a = TestNode::start("a", &["orders"]).await;
    // Nothing listens on the discard port of loopback.
    match a.node.connect_to("127.0.0.1:9", &["orders"]).await {
        Err(MeshError::Call { .. }) => {}
        other => panic!("expected a call error, got {other:?}"),
    }
    match a.node.connect_to("not an address", &["orders"]).await {
        Err(MeshError::Address { .. }) => {}
        other => panic!("expected an address error, got {other:?}"),
    }
    assert!(a.node.peers().is_empty());

    let b = TestNode::start("b", &["orders"]).await;
    a.node.connect_to(&b.addr, &["orders"]).await.unwrap();
    b.stop().await;
    let mut req = dispatch_req("orders", "Who", "Am");
    req.target_collector_id = "b".into();
    let started = tokio::time::Instant::now();
    let r = a.client().dispatch(req).await.unwrap().into_inner();
    let (code, message) = code_msg(r.status);
    assert_eq!(code, 500);
    assert!(message.starts_with("serve RPC failed: "), "{message}");
    assert!(started.elapsed() < Duration::from_secs(5));

    let r = a
        .client()
        .dispatch(dispatch_req("orders", "Who", "Am"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        code_msg(r.status),
        (404, "no collector found for namespace 'orders'".into())
    );
}
