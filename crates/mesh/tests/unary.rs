//! The lean unary client (the one hops travel by), against real nodes:
//! Serve and Dispatch, deadline and trace headers, token, size limit, and a
//! new connection after the node it talked to restarted.

mod common;

use common::*;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use switchyard_mesh::{any, CallHeaders, MeshConfig, Security, Token, UnaryClient};

fn lean(addr: &str, security: &Security) -> UnaryClient {
    UnaryClient::new(
        addr,
        security.authorization(),
        Duration::from_secs(2),
        4 * 1024 * 1024,
    )
    .expect("valid address")
}

#[tokio::test]
async fn serve_and_dispatch_answer_as_with_tonic() {
    let a = TestNode::start("a", &["orders"]).await;
    let b = TestNode::start("b", &["orders"]).await;
    answer(&b.node, "orders", "Who", "Am", r#""b""#);
    a.node.connect_to(&b.addr, &["orders"]).await.unwrap();

    let to_b = lean(&b.addr, &Security::default());
    let r = to_b
        .serve(&serve_req("orders", "Who", "Am"), &CallHeaders::default())
        .await
        .unwrap();
    assert_eq!(code_msg(r.status), (200, "OK".into()));
    assert_eq!(output_text(r.output), r#""b""#);
    assert_eq!(r.executor_id, "b");

    let r = to_b
        .serve(&serve_req("", "Who", "Am"), &CallHeaders::default())
        .await
        .unwrap();
    assert_eq!(code_msg(r.status), (400, "namespace is required".into()));

    // Through A: a hop.
    let to_a = lean(&format!("http://{}", a.addr), &Security::default());
    let r = to_a
        .dispatch(
            &dispatch_req("orders", "Who", "Am"),
            &CallHeaders::default(),
        )
        .await
        .unwrap();
    assert_eq!(code_msg(r.status).0, 200);
    assert_eq!(r.handled_by_collector_id, "b");
    assert_eq!(output_text(r.output), r#""b""#);
}

/// What the handler saw: time left before the deadline, traceparent.
type Seen = Arc<Mutex<Option<(Option<Duration>, Option<String>)>>>;

#[tokio::test]
async fn deadline_and_traceparent_reach_the_handler() {
    let b = TestNode::start("b", &["orders"]).await;
    let seen: Seen = Arc::default();
    let s = seen.clone();
    b.node
        .register_service_with_context("orders", "Trace", "Fast", move |ctx, _| {
            *s.lock().unwrap() = Some((ctx.remaining(), ctx.traceparent.clone()));
            async { Ok(any::json("{}")) }
        });
    b.node
        .register_service("orders", "Trace", "Slow", |_| async {
            tokio::time::sleep(Duration::from_secs(3)).await;
            Ok(any::json("{}"))
        });
    let client = lean(&b.addr, &Security::default());
    let trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let headers = CallHeaders {
        timeout: Some(Duration::from_secs(4)),
        traceparent: Some(http::HeaderValue::from_static(trace)),
        probe: false,
    };
    let r = client
        .serve(&serve_req("orders", "Trace", "Fast"), &headers)
        .await
        .unwrap();
    assert_eq!(code_msg(r.status).0, 200);
    let (remaining, seen_trace) = seen.lock().unwrap().clone().expect("handler ran");
    let remaining = remaining.expect("deadline reached the handler");
    assert!(remaining <= Duration::from_secs(4) && remaining > Duration::from_secs(1));
    assert_eq!(seen_trace.as_deref(), Some(trace));

    // The server enforces the deadline it was sent: whichever of its two
    // guards fires first answers (a `504` from the handler's own timeout, or
    // gRPC's cancellation).
    let headers = CallHeaders {
        timeout: Some(Duration::from_millis(200)),
        ..Default::default()
    };
    let started = std::time::Instant::now();
    match client
        .serve(&serve_req("orders", "Trace", "Slow"), &headers)
        .await
    {
        Ok(r) => assert_eq!(code_msg(r.status).0, 504),
        Err(err) => assert!(
            matches!(
                err.code(),
                tonic::Code::Cancelled | tonic::Code::DeadlineExceeded
            ),
            "{err:?}"
        ),
    }
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn the_token_is_sent_and_a_wrong_one_is_refused() {
    let mut config = MeshConfig::default();
    config.security.token = Some(Token::new("s3cret"));
    let b = TestNode::start_with("b", &["orders"], config).await;
    answer(&b.node, "orders", "Who", "Am", r#""b""#);
    let with_token = Security {
        tls: None,
        token: Some(Token::new("s3cret")),
    };
    let r = lean(&b.addr, &with_token)
        .serve(&serve_req("orders", "Who", "Am"), &CallHeaders::default())
        .await
        .unwrap();
    assert_eq!(code_msg(r.status).0, 200);

    let err = lean(&b.addr, &Security::default())
        .serve(&serve_req("orders", "Who", "Am"), &CallHeaders::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    assert!(err.message().contains("bearer token"), "{err:?}");
}

#[tokio::test]
async fn oversized_responses_are_refused() {
    let b = TestNode::start("b", &["orders"]).await;
    b.node
        .register_service("orders", "Big", "Answer", |_| async {
            Ok(any::json(&format!("\"{}\"", "x".repeat(10_000))))
        });
    let small = UnaryClient::new(&b.addr, None, Duration::from_secs(2), 1024).unwrap();
    let err = small
        .serve(
            &serve_req("orders", "Big", "Answer"),
            &CallHeaders::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::OutOfRange, "{err:?}");
    // The connection is still good for calls within the limit.
    let r = small
        .serve(&serve_req("", "Big", "Answer"), &CallHeaders::default())
        .await
        .unwrap();
    assert_eq!(code_msg(r.status).0, 400);

    let mut big = serve_req("orders", "Big", "Answer");
    big.input = Some(any::json(&"y".repeat(2000)));
    let err = small
        .serve(&big, &CallHeaders::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::OutOfRange, "{err:?}");
}

#[tokio::test]
async fn a_restarted_node_is_reached_on_a_new_connection() {
    let b = TestNode::start("b", &["orders"]).await;
    answer(&b.node, "orders", "Who", "Am", r#""first""#);
    let addr = b.addr.clone();
    let client = lean(&addr, &Security::default());
    let call = serve_req("orders", "Who", "Am");
    let r = client.serve(&call, &CallHeaders::default()).await.unwrap();
    assert_eq!(output_text(r.output), r#""first""#);

    b.stop().await;
    let err = client
        .serve(&call, &CallHeaders::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable, "{err:?}");

    let b = TestNode::start_at("b", &addr, &["orders"]).await;
    answer(&b.node, "orders", "Who", "Am", r#""second""#);
    let r = client.serve(&call, &CallHeaders::default()).await.unwrap();
    assert_eq!(output_text(r.output), r#""second""#);
    assert_eq!(r.executor_id, "b");
}

#[tokio::test]
async fn unreachable_address_is_unavailable_quickly() {
    let client = UnaryClient::new("127.0.0.1:9", None, Duration::from_secs(1), 1024).unwrap();
    let started = std::time::Instant::now();
    let err = client
        .serve(&serve_req("orders", "Who", "Am"), &CallHeaders::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable);
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(UnaryClient::new("not an address", None, Duration::from_secs(1), 1024).is_err());
}
