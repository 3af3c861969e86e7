//! One unary gRPC call on an HTTP/2 stream, from request headers to
//! trailers: check the headers and the token, read the one message within
//! the size limit, run the RPC, and write its answer or a status.
//!
//! All four RPCs of a node (`Serve`, `Connect`, `Dispatch`,
//! `ValidateMethod`) are unary and small, so a call is one future that the
//! connection's own task polls (see `server`): no task, channel or body
//! pipe per call, and the answers that become ready together leave in one
//! write.

use crate::call::DispatchCall;
use crate::grpc::{Front, NodeRegistry};
use crate::node::Node;
use crate::route::Answer;
use crate::security::ServerAuth;
use crate::validator::RegistryService;
use crate::wire;
use bytes::Bytes;
use h2::server::SendResponse;
use h2::RecvStream;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use prost::Message;
use std::future::poll_fn;
use std::sync::Arc;
use tonic::metadata::MetadataMap;
use tonic::{Code, Status};

/// The gRPC methods a node serves, by path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rpc {
    Serve,
    Connect,
    Dispatch,
    ValidateMethod,
}

impl Rpc {
    fn of(path: &str) -> Option<Self> {
        Some(match path {
            "/collector.CollectiveDispatcher/Serve" => Self::Serve,
            "/collector.CollectiveDispatcher/Connect" => Self::Connect,
            "/collector.CollectiveDispatcher/Dispatch" => Self::Dispatch,
            "/collector.CollectorRegistry/ValidateMethod" => Self::ValidateMethod,
            _ => return None,
        })
    }
}

/// What every call on one node's server shares.
pub(crate) struct Methods {
    front: Front,
    registry: RegistryService,
    auth: ServerAuth,
    /// Largest request message read; see [`Methods::new`].
    decode_limit: usize,
}

impl Methods {
    pub(crate) fn new(node: Arc<Node>) -> Self {
        // Requests a little over the configured limit are still read, so
        // they can be answered with a `413` status inside the response;
        // far larger ones are refused by gRPC itself (`RESOURCE_EXHAUSTED`).
        let limit = node.config.max_message_bytes;
        let decode_limit = limit.saturating_mul(2).max(limit.saturating_add(64 * 1024));
        Self {
            registry: RegistryService(Arc::new(NodeRegistry(node.clone()))),
            auth: node.config.security.server_auth(),
            decode_limit,
            front: Front(node),
        }
    }
}

/// Why a call gets no message back.
enum Refusal {
    /// Not a gRPC request at all: a bare HTTP status.
    Http(StatusCode),
    /// A gRPC error, sent as a trailers-only response.
    Grpc(Status),
}

impl From<Status> for Refusal {
    fn from(status: Status) -> Self {
        Self::Grpc(status)
    }
}

/// Answer one call. A call the client resets (it gave up, or its deadline
/// passed) is dropped at once, and with it the work it started: a handler
/// running here, or a hop forwarded to a peer.
pub(crate) async fn answer(
    methods: Arc<Methods>,
    request: Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
) {
    let outcome = tokio::select! {
        biased;
        outcome = run(&methods, request) => outcome,
        _ = poll_fn(|cx| respond.poll_reset(cx)) => return,
    };
    // A failure to send means the stream or the connection is gone; there
    // is nobody left to tell.
    let _ = match outcome {
        Ok(message) => respond
            .send_response(grpc_head(), false)
            .and_then(|mut stream| {
                stream.send_data(message, false)?;
                stream.send_trailers(status_headers(Code::Ok, ""))
            }),
        Err(Refusal::Grpc(status)) => {
            let mut head = grpc_head();
            head.headers_mut()
                .extend(status_headers(status.code(), status.message()));
            respond.send_response(head, true).map(drop)
        }
        Err(Refusal::Http(code)) => {
            let mut head = Response::new(());
            *head.status_mut() = code;
            respond.send_response(head, true).map(drop)
        }
    };
}

async fn run(methods: &Methods, request: Request<RecvStream>) -> Result<Bytes, Refusal> {
    let (head, mut body) = request.into_parts();
    if head.method != http::Method::POST {
        return Err(Refusal::Http(StatusCode::METHOD_NOT_ALLOWED));
    }
    if !is_grpc(&head.headers) {
        // What the gRPC specification asks of a server for any other type.
        return Err(Refusal::Http(StatusCode::UNSUPPORTED_MEDIA_TYPE));
    }
    let Some(rpc) = Rpc::of(head.uri.path()) else {
        return Err(Status::unimplemented(format!("unknown method {}", head.uri.path())).into());
    };
    methods.auth.check(&head.headers)?;
    let limit = methods.decode_limit;
    let frame = wire::read_body(&mut body, limit, "request")
        .await
        .map_err(|e| Status::cancelled(format!("reading the request: {e}")))?
        .map_err(|e| Status::resource_exhausted(e.message()))?;
    let metadata = MetadataMap::from_headers(head.headers);
    let front = &methods.front;
    let response = match rpc {
        Rpc::Serve => {
            let request = wire::decode(&frame, limit, "request")?;
            encode(&front.serve(&metadata, request).await, limit)
        }
        Rpc::Connect => encode(
            &front.connect(wire::decode(&frame, limit, "request")?),
            limit,
        ),
        Rpc::Dispatch => {
            let message = wire::message_of(&frame, limit, "request")?;
            let request = DispatchCall::parse(frame.slice_ref(message))
                .map_err(|e| Status::internal(format!("decoding the request: {e}")))?;
            match front.dispatch(&metadata, request).await {
                Answer::Built(response) => encode(&response, limit),
                Answer::Relayed(reply) if reply.message_len() > limit => {
                    Err(wire::too_large("response", reply.message_len(), limit))
                }
                Answer::Relayed(reply) => Ok(reply.into_frame()),
            }
        }
        Rpc::ValidateMethod => {
            let request = wire::decode(&frame, limit, "request")?;
            encode(&methods.registry.validate_method(request).await, limit)
        }
    };
    Ok(response?)
}

/// A response message as its frame, within the same limit as requests (a
/// handler's oversized output fails the call, `OUT_OF_RANGE`).
fn encode(message: &impl Message, limit: usize) -> Result<Bytes, Status> {
    wire::encode(message, limit, "response")
}

/// `content-type: application/grpc`, with or without a `+proto` or other
/// suffix.
fn is_grpc(headers: &HeaderMap) -> bool {
    headers.get(http::header::CONTENT_TYPE).is_some_and(|v| {
        match v.as_bytes().strip_prefix(b"application/grpc") {
            Some(rest) => rest.is_empty() || rest[0] == b'+' || rest[0] == b';',
            None => false,
        }
    })
}

fn grpc_head() -> Response<()> {
    let mut head = Response::new(());
    head.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    head
}

fn status_headers(code: Code, message: &str) -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(2);
    let code = match code {
        // Nearly every call ends so: a static value, no allocation.
        Code::Ok => HeaderValue::from_static("0"),
        other => HeaderValue::from(other as i32),
    };
    headers.insert(wire::GRPC_STATUS, code);
    if !message.is_empty() {
        headers.insert(wire::GRPC_MESSAGE, wire::percent_encode(message));
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb;
    use std::time::Duration;

    #[test]
    fn paths_name_the_four_methods_and_nothing_else() {
        assert_eq!(
            Rpc::of("/collector.CollectiveDispatcher/Serve"),
            Some(Rpc::Serve)
        );
        assert_eq!(
            Rpc::of("/collector.CollectorRegistry/ValidateMethod"),
            Some(Rpc::ValidateMethod)
        );
        assert_eq!(Rpc::of("/collector.CollectiveDispatcher/serve"), None);
        assert_eq!(Rpc::of("/collector.CollectorRegistry/Serve"), None);
        assert_eq!(Rpc::of("/"), None);
    }

    #[test]
    fn grpc_content_types_are_recognised() {
        let with = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(http::header::CONTENT_TYPE, HeaderValue::from_static(v));
            is_grpc(&h)
        };
        assert!(with("application/grpc"));
        assert!(with("application/grpc+proto"));
        assert!(with("application/grpc; charset=utf-8"));
        assert!(!with("application/grpcx"));
        assert!(!with("application/json"));
        assert!(!is_grpc(&HeaderMap::new()));
    }

    /// Every call's future is allocated and moved per call: a rarely taken
    /// branch that is large inline (dialling, tonic's client) makes every
    /// call pay for copying it. Such branches are boxed; this keeps them so.
    #[test]
    fn call_futures_stay_small() {
        fn returned_size<A, B, R>(_: &impl Fn(A, B) -> R) -> usize {
            std::mem::size_of::<R>()
        }
        let answer_size = returned_size(&|r: Request<RecvStream>, s: SendResponse<Bytes>| {
            answer(Arc::new(methods()), r, s)
        });
        assert!(
            answer_size <= 4096,
            "a call's future takes {answer_size} bytes"
        );
        let hop = crate::unary::UnaryClient::new("127.0.0.1:1", None, Duration::from_secs(1), 64)
            .expect("valid address");
        let (call, headers) = (pb::ServeRequest::default(), Default::default());
        let hop_size = std::mem::size_of_val(&hop.serve(&call, &headers));
        assert!(
            hop_size <= 1024,
            "a forwarded call's future takes {hop_size} bytes"
        );
    }

    fn methods() -> Methods {
        let me = crate::node::Identity {
            id: "a".into(),
            address: "127.0.0.1:1".into(),
        };
        let node = crate::node::Node::new(me, vec![], crate::config::MeshConfig::default());
        Methods::new(Arc::new(node))
    }

    #[test]
    fn a_status_travels_as_code_and_encoded_message() {
        let h = status_headers(Code::Unauthenticated, "no token: é");
        assert_eq!(h["grpc-status"], "16");
        assert_eq!(h["grpc-message"], "no token: %C3%A9");
        let ok = status_headers(Code::Ok, "");
        assert_eq!(ok["grpc-status"], "0");
        assert!(!ok.contains_key("grpc-message"));
    }
}
