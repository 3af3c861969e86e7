//! Serving a node on a listener: accepting connections (with TLS when it is
//! on), driving each one's HTTP/2 session with its calls, and the health
//! prober; all stopped together on shutdown, in-flight calls first.
//!
//! Each connection is one task. It polls the HTTP/2 session and, in the
//! same task, the calls in flight on it ([`rpc::answer`]); answers that
//! become ready in one turn are written together. A call never waits on
//! another call's handler: each is its own future, polled when woken.

use crate::error::MeshError;
use crate::health;
use crate::node::Node;
use crate::rpc::{self, Methods};
use bytes::Bytes;
use futures_util::stream::{FuturesUnordered, StreamExt};
use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, warn};

/// Calls one connection may have in flight; more are refused by HTTP/2
/// itself (`REFUSED_STREAM`), so one client cannot grow a node's memory
/// without bound.
const MAX_CALLS_PER_CONNECTION: u32 = 256;
/// Largest header block accepted.
const MAX_HEADER_LIST: u32 = 64 * 1024;
/// Flow-control windows: large enough that small calls never wait for a
/// window update, and few updates are sent.
const STREAM_WINDOW: u32 = 2 * 1024 * 1024;
const CONNECTION_WINDOW: u32 = 5 * 1024 * 1024;
/// Longest the TLS and HTTP/2 handshakes of a new connection may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serve `node` on `listener` until `shutdown` completes; in-flight calls
/// finish first.
pub(crate) async fn serve(
    node: Arc<Node>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), MeshError> {
    let tls = node.config.security.tls_acceptor()?;
    let (stop, stopped) = watch::channel(false);
    let prober = tokio::spawn(health::run(node.clone(), stopped.clone()));
    let methods = Arc::new(Methods::new(node));
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = accept(&listener) => {
                let session = drive(accepted, tls.clone(), methods.clone(), stopped.clone());
                connections.spawn(session);
            }
            // Reap finished connections as they end.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    let _ = stop.send(true);
    while connections.join_next().await.is_some() {}
    let _ = prober.await;
    Ok(())
}

/// The next connection, with `TCP_NODELAY` on: without it, Nagle's
/// algorithm holds back the small write that ends a response until the
/// peer's (delayed, up to 40 ms) ACK of the previous one arrives. Errors of
/// a single connection are skipped; running out of descriptors pauses
/// accepting briefly instead of spinning.
async fn accept(listener: &TcpListener) -> TcpStream {
    loop {
        match listener.accept().await {
            Ok((tcp, _)) => {
                if let Err(error) = tcp.set_nodelay(true) {
                    debug!(%error, "could not turn Nagle off on a connection");
                }
                return tcp;
            }
            Err(error) if is_per_connection(&error) => {
                debug!(%error, "a connection failed while being accepted");
            }
            Err(error) => {
                warn!(%error, "accepting connections failed; retrying in 100 ms");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

fn is_per_connection(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
    )
}

/// One connection from handshake to close.
async fn drive(
    tcp: TcpStream,
    tls: Option<TlsAcceptor>,
    methods: Arc<Methods>,
    stop: watch::Receiver<bool>,
) {
    let result = match tls {
        None => session(tcp, methods, stop).await,
        Some(tls) => match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(tcp)).await {
            Ok(Ok(stream)) => session(stream, methods, stop).await,
            Ok(Err(error)) => Err(format!("TLS handshake: {error}")),
            Err(_) => Err("TLS handshake timed out".to_string()),
        },
    };
    if let Err(error) = result {
        debug!(%error, "connection closed");
    }
}

/// The HTTP/2 session of one connection and the calls made on it. On stop,
/// the peer is told (GOAWAY) and the calls already started are finished.
async fn session<T>(
    io: T,
    methods: Arc<Methods>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), String>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let handshake = h2::server::Builder::new()
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_concurrent_streams(MAX_CALLS_PER_CONNECTION)
        .max_header_list_size(MAX_HEADER_LIST)
        .handshake::<_, Bytes>(io);
    let mut conn = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake)
        .await
        .map_err(|_| "HTTP/2 handshake timed out".to_string())?
        .map_err(|e| format!("HTTP/2 handshake: {e}"))?;
    let mut calls = FuturesUnordered::new();
    let mut stopping = *stop.borrow();
    if stopping {
        conn.graceful_shutdown();
    }
    loop {
        tokio::select! {
            // Calls first: every answer that is ready is queued before the
            // session is polled again, which writes them out together.
            biased;
            Some(()) = calls.next(), if !calls.is_empty() => {}
            accepted = conn.accept() => match accepted {
                Some(Ok((request, respond))) => {
                    // Boxed, it is moved once rather than on each step into
                    // the set.
                    calls.push(Box::pin(rpc::answer(methods.clone(), request, respond)));
                }
                Some(Err(e)) => return Err(e.to_string()),
                None => return Ok(()),
            },
            changed = stop.changed(), if !stopping => {
                // A dropped sender means the server is gone: stop as well.
                let _ = changed;
                stopping = true;
                conn.graceful_shutdown();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn accepted_connections_have_nagle_off() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("bound");
        let _client = TcpStream::connect(addr).await.expect("connect");
        let accepted = accept(&listener).await;
        assert!(accepted.nodelay().expect("readable option"));
    }
}
