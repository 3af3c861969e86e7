//! The node's gRPC server at the HTTP/2 level, with a raw `h2` client: what
//! it answers to requests no generated client would send (wrong method or
//! content type, unknown path, a compressed or broken message), that a call
//! the client resets stops its handler, and that shutdown lets a call in
//! flight finish.

mod common;

use bytes::{BufMut, Bytes, BytesMut};
use common::*;
use http::{HeaderMap, Method, Request, StatusCode};
use prost::Message;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use switchyard_mesh::pb;
use tokio::net::TcpStream;

const SERVE: &str = "/collector.CollectiveDispatcher/Serve";

/// An HTTP/2 connection to `addr`, driven in the background.
async fn connect(addr: &str) -> h2::client::SendRequest<Bytes> {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let (send, conn) = h2::client::handshake(tcp).await.expect("HTTP/2 handshake");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    send
}

fn request(method: Method, path: &str, content_type: &str) -> Request<()> {
    Request::builder()
        .method(method)
        .uri(format!("http://localhost{path}"))
        .header("content-type", content_type)
        .header("te", "trailers")
        .body(())
        .unwrap()
}

fn frame(flag: u8, message: &[u8]) -> Bytes {
    let mut b = BytesMut::new();
    b.put_u8(flag);
    b.put_u32(message.len() as u32);
    b.put_slice(message);
    b.freeze()
}

/// What came back: HTTP status, headers, body, trailers.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
    trailers: Option<HeaderMap>,
}

impl Answer {
    /// `grpc-status` and `grpc-message`, from the trailers or, for a
    /// trailers-only answer, the headers.
    fn grpc(&self) -> (String, String) {
        let h = self.trailers.as_ref().unwrap_or(&self.headers);
        let get = |k: &str| {
            h.get(k)
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default()
        };
        (get("grpc-status"), get("grpc-message"))
    }
}

/// A Serve request with this content type and body.
async fn serve(send: &h2::client::SendRequest<Bytes>, content_type: &str, body: Bytes) -> Answer {
    call(send, request(Method::POST, SERVE, content_type), body).await
}

async fn call(send: &h2::client::SendRequest<Bytes>, req: Request<()>, body: Bytes) -> Answer {
    let mut send = send.clone().ready().await.expect("ready");
    let (response, mut stream) = send.send_request(req, false).expect("send");
    stream.send_data(body, true).expect("data");
    let response = response.await.expect("response");
    let (head, mut recv) = response.into_parts();
    let mut body = Vec::new();
    while let Some(chunk) = recv.data().await {
        let chunk = chunk.expect("chunk");
        let _ = recv.flow_control().release_capacity(chunk.len());
        body.extend_from_slice(&chunk);
    }
    let trailers = recv.trailers().await.expect("trailers");
    Answer {
        status: head.status,
        headers: head.headers,
        body,
        trailers,
    }
}

#[tokio::test]
async fn requests_that_are_not_grpc_calls_get_clear_answers() {
    let b = TestNode::start("b", &["orders"]).await;
    answer(&b.node, "orders", "Who", "Am", r#""b""#);
    let h2 = connect(&b.addr).await;
    let good = Bytes::from(serve_req("orders", "Who", "Am").encode_to_vec());

    // A well-formed call: headers, one message, grpc-status 0 in trailers.
    let a = serve(&h2, "application/grpc", frame(0, &good)).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.headers["content-type"], "application/grpc");
    assert_eq!(a.grpc().0, "0");
    let reply = pb::ServeResponse::decode(&a.body[5..]).expect("one message");
    assert_eq!(code_msg(reply.status).0, 200);
    assert_eq!(reply.executor_id, "b");

    // `application/grpc+proto` is gRPC too.
    let a = serve(&h2, "application/grpc+proto", frame(0, &good)).await;
    assert_eq!(a.grpc().0, "0");

    // Not gRPC: plain HTTP statuses, as the gRPC specification asks.
    let a = serve(&h2, "application/json", frame(0, &good)).await;
    assert_eq!(a.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let a = call(
        &h2,
        request(Method::GET, SERVE, "application/grpc"),
        Bytes::new(),
    )
    .await;
    assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED);

    // An unknown method: UNIMPLEMENTED (12), trailers-only.
    let a = call(
        &h2,
        request(
            Method::POST,
            "/collector.CollectiveDispatcher/Nope",
            "application/grpc",
        ),
        frame(0, &good),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(a.trailers.is_none() && a.body.is_empty());
    let (code, message) = a.grpc();
    assert_eq!(code, "12");
    assert!(message.contains("Nope"), "{message}");

    // A compressed message (nothing was negotiated): UNIMPLEMENTED.
    let a = serve(&h2, "application/grpc", frame(1, &good)).await;
    assert_eq!(a.grpc().0, "12");

    // Bytes that are not a ServeRequest, and a body that is not one
    // message: INTERNAL (13), with a reason.
    let a = serve(&h2, "application/grpc", frame(0, &[0xff; 7])).await;
    let (code, message) = a.grpc();
    assert_eq!(code, "13");
    assert!(message.starts_with("decoding the request"), "{message}");
    let a = serve(&h2, "application/grpc", Bytes::new()).await;
    assert_eq!(a.grpc().0, "13");
    let mut two = frame(0, &good).to_vec();
    two.extend_from_slice(&frame(0, &good));
    let a = serve(&h2, "application/grpc", two.into()).await;
    assert_eq!(a.grpc().0, "13");

    // The connection survived all of that.
    let a = serve(&h2, "application/grpc", frame(0, &good)).await;
    assert_eq!(a.grpc().0, "0");
}

/// A slow handler on `node` (`orders/Slow.Call`, 800 ms) that flags when it
/// starts and when it finishes.
struct Slow {
    started: Arc<AtomicBool>,
    finished: Arc<AtomicBool>,
}

impl Slow {
    fn register(node: &switchyard_mesh::Dispatcher) -> Self {
        let slow = Self {
            started: Arc::new(AtomicBool::new(false)),
            finished: Arc::new(AtomicBool::new(false)),
        };
        let (started, finished) = (slow.started.clone(), slow.finished.clone());
        node.register_service("orders", "Slow", "Call", move |input| {
            let (started, finished) = (started.clone(), finished.clone());
            async move {
                started.store(true, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(800)).await;
                finished.store(true, Ordering::SeqCst);
                Ok(input)
            }
        });
        slow
    }

    /// Wait (up to 2 s) until the handler has started.
    async fn wait_started(&self) {
        let started = &self.started;
        let seen = eventually(Duration::from_secs(2), || async {
            started.load(Ordering::SeqCst)
        })
        .await;
        assert!(seen, "handler started");
    }

    fn finished(&self) -> bool {
        self.finished.load(Ordering::SeqCst)
    }
}

#[tokio::test]
async fn a_call_the_client_resets_stops_its_handler() {
    let b = TestNode::start("b", &["orders"]).await;
    let slow = Slow::register(&b.node);
    let h2 = connect(&b.addr).await;
    let mut send = h2.ready().await.expect("ready");
    let body = Bytes::from(serve_req("orders", "Slow", "Call").encode_to_vec());
    let (response, mut stream) = send
        .send_request(request(Method::POST, SERVE, "application/grpc"), false)
        .expect("send");
    stream.send_data(frame(0, &body), true).expect("data");
    slow.wait_started().await;
    // Dropping both halves of the stream resets it (RST_STREAM CANCEL).
    drop(response);
    drop(stream);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!slow.finished(), "handler was dropped");
}

#[tokio::test]
async fn shutdown_lets_a_call_in_flight_finish() {
    let b = TestNode::start("b", &["orders"]).await;
    let slow = Slow::register(&b.node);
    let mut client = b.client();
    let in_flight = tokio::spawn(async move {
        client
            .serve(serve_req("orders", "Slow", "Call"))
            .await
            .map(|r| r.into_inner())
    });
    slow.wait_started().await;
    let addr = b.addr.clone();
    b.stop().await;
    let reply = in_flight
        .await
        .unwrap()
        .expect("the call in flight is answered");
    assert_eq!(code_msg(reply.status).0, 200);
    assert!(slow.finished());
    // And nothing listens any more.
    assert!(TcpStream::connect(&addr).await.is_err());
}
