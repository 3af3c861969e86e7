//! The mesh: Switchyard nodes linked by gRPC, routing calls by namespace.
//!
//! A node speaks `collector.CollectiveDispatcher` exactly as the original
//! collectors do — same protobuf, same HTTP-style codes in `Status.code`, same
//! messages — so clients generated from the original `.proto` work unchanged.
//! On top of that contract it does what the original does not: Connect is
//! bidirectional and idempotent; several peers in one namespace are balanced
//! (round robin, or rendezvous hashing on the `hash_key` routing hint); peers
//! are health-probed, skipped when dead and re-announced when back; each peer
//! has a circuit breaker; deadlines and `traceparent` cross the hop; every
//! route has metrics; namespaces can change at run time; TLS and a shared
//! token are optional.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use switchyard_mesh::{any, Dispatcher};
//! let b = Dispatcher::new("b", "127.0.0.1:50052", ["orders"]);
//! b.register_service("orders", "OrderService", "Create", |input| async move { Ok(input) });
//! let running = b.spawn(tokio::net::TcpListener::bind("127.0.0.1:50052").await?);
//!
//! let a = Dispatcher::new("a", "127.0.0.1:50051", ["users", "orders"]);
//! a.connect_to("127.0.0.1:50052", &["users", "orders"]).await?; // shared: ["orders"]
//! # running.shutdown().await?; Ok(()) }
//! ```
//!
//! # Layout
//! - [`dispatcher`]: the library handle — register, connect, serve.
//! - `node`: the state the pieces below share.
//! - `server`: the listener and each connection's HTTP/2 session; `rpc`:
//!   one unary gRPC call on it, from headers to trailers.
//! - `grpc`: the RPCs once decoded: size limit, metrics, one call per RPC.
//! - `serve`, `route`, `connect`: the three RPCs' logic; `dialback`: the
//!   bound on the dial-backs that Connects start.
//! - [`peers`]: connected collectors, keyed by id; [`balance`]: their order.
//! - [`unary`]: the lean client a forwarded call travels by; `wire`: the
//!   bits of gRPC framing it needs.
//! - [`health`]: probing, removal and reconnection; [`breaker`]: per-peer breaker.
//! - [`trace`]: deadline and `traceparent` across a hop.
//! - [`metrics`]: per-route Prometheus metrics.
//! - [`validator`]: registry validation, local or over `CollectorRegistry`.
//! - [`security`]: TLS and bearer token; [`config`]: settings.
//! - [`handler`], [`any`]: handlers and their `Any` payloads; [`status`]: codes.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

/// Generated protobuf types and gRPC stubs of package `collector`.
#[allow(missing_docs, clippy::all)]
pub mod pb {
    tonic::include_proto!("collector");
}

pub mod any;
pub mod balance;
pub mod breaker;
mod call;
pub mod config;
mod connect;
mod dialback;
pub mod dispatcher;
pub mod error;
mod grpc;
pub mod handler;
pub mod health;
pub mod metrics;
mod node;
pub mod peers;
mod relay;
mod route;
mod rpc;
mod scan;
pub mod security;
mod serve;
mod server;
pub mod status;
pub mod trace;
pub mod unary;
pub mod validator;
mod wire;

/// The parsers of bytes from peers and callers, for the fuzz targets only.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing {
    use bytes::Bytes;

    /// A `DispatchRequest` message as the server scans it: accepted exactly
    /// when prost accepts it, and then every field reads.
    pub fn dispatch_request(message: &[u8]) {
        use prost::Message;
        let decoded = crate::pb::DispatchRequest::decode(message);
        let scanned = crate::call::DispatchCall::parse(Bytes::copy_from_slice(message));
        assert_eq!(decoded.is_ok(), scanned.is_ok(), "{message:02x?}");
        if let (Ok(d), Ok(s)) = (decoded, scanned) {
            assert_eq!(s.namespace(), d.namespace);
            assert_eq!(s.method(), d.method_name);
            let _ = (s.service_name(), s.target(), s.hash_key(), s.len());
        }
    }

    /// A unary response body (prefix and message) as the relay checks it.
    pub fn serve_reply(frame: &[u8], max: usize) {
        if let Ok(r) = crate::relay::ServeReply::parse(Bytes::copy_from_slice(frame), max) {
            let _ = (r.is_ok(), r.is_server_error(), r.message_len());
        }
    }

    /// A `grpc-message` value as read from trailers.
    pub fn grpc_message(value: &[u8]) {
        let mut headers = http::HeaderMap::new();
        if let Ok(v) = http::HeaderValue::from_bytes(value) {
            headers.insert(crate::wire::GRPC_STATUS, v.clone());
            headers.insert(crate::wire::GRPC_MESSAGE, v);
            let _ = crate::wire::status_of(&headers);
        }
    }
}

pub use breaker::BreakerConfig;
pub use config::{HealthConfig, MeshConfig};
pub use connect::{COLLECTOR_ID, NO_DIALBACK};
pub use dispatcher::{Dispatcher, Running};
pub use error::MeshError;
pub use handler::{Handler, HandlerError};
pub use peers::{dial, Client, PeerInfo};
pub use security::{Security, TlsConfig, Token};
pub use trace::CallContext;
pub use unary::{CallHeaders, UnaryClient};
pub use validator::{AllowList, GrpcRegistryValidator, RegistryValidator};
