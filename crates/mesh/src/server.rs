//! Serving a node on a listener: TLS and token checks in front of both gRPC
//! services, the message size limit, and the health prober, all stopped
//! together on shutdown.

use crate::error::MeshError;
use crate::grpc::{Front, NodeRegistry};
use crate::health;
use crate::node::Node;
use crate::pb::collective_dispatcher_server::CollectiveDispatcherServer;
use crate::pb::collector_registry_server::CollectorRegistryServer;
use crate::validator::RegistryService;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::server::TcpIncoming;
use tonic::transport::Server;

/// Serve `node` on `listener` until `shutdown` completes; in-flight calls
/// finish first.
pub(crate) async fn serve(
    node: Arc<Node>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), MeshError> {
    let (stop, stopped) = watch::channel(false);
    let prober = tokio::spawn(health::run(node.clone(), stopped));

    // Requests a little over the limit are decoded so they can be answered
    // with a `413` status; far larger ones are refused by gRPC itself.
    let limit = node.config.max_message_bytes;
    let decode_limit = limit.saturating_mul(2).max(limit.saturating_add(64 * 1024));
    let auth = node.config.security.server_auth();
    let dispatcher = CollectiveDispatcherServer::from_arc(Arc::new(Front(node.clone())))
        .max_decoding_message_size(decode_limit)
        .max_encoding_message_size(decode_limit);
    let registry =
        CollectorRegistryServer::new(RegistryService(Arc::new(NodeRegistry(node.clone()))));

    let mut builder = Server::builder();
    if let Some(tls) = node.config.security.server_tls() {
        builder = builder.tls_config(tls)?;
    }
    let result = builder
        .add_service(InterceptedService::new(dispatcher, auth.clone()))
        .add_service(InterceptedService::new(registry, auth))
        .serve_with_incoming_shutdown(incoming(listener), shutdown)
        .await;
    let _ = stop.send(true);
    let _ = prober.await;
    result.map_err(MeshError::Serve)
}

/// The accepted connections, with `TCP_NODELAY` on. The server builder's own
/// `tcp_nodelay` applies only to listeners it binds itself, not to an
/// incoming stream it is handed; without it, Nagle's algorithm holds back
/// the small write that ends a response until the peer's (delayed, up to
/// 40 ms) ACK of the previous one arrives.
fn incoming(listener: TcpListener) -> TcpIncoming {
    TcpIncoming::from(listener).with_nodelay(Some(true))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_stream::StreamExt;

    #[tokio::test]
    async fn accepted_connections_have_nagle_off() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("bound");
        let mut incoming = incoming(listener);
        let _client = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let accepted = incoming
            .next()
            .await
            .expect("a connection")
            .expect("accepted");
        assert!(accepted.nodelay().expect("readable option"));
    }
}
