//! A lean unary client of `CollectiveDispatcher`: each call goes straight
//! onto an HTTP/2 connection. A node forwards its hops (and probes its
//! peers) with it; tools and benchmarks may call nodes with it too.
//!
//! tonic's `Channel` puts every request through a tower `Buffer` task and
//! then hyper's dispatch channel into the connection task, which spawns yet
//! another task to pipe the request body; that is three task hand-offs, and
//! their allocations, per forwarded call. A forwarded call is one small,
//! fully known message, so here it is encoded once into one buffer and
//! handed to `h2` directly: the connection task only does the socket I/O.
//! The wire format is plain gRPC (same path, headers, framing and trailers),
//! so any gRPC server — ours or the original collectors — answers it.
//!
//! With TLS ([`UnaryClient::with_tls`]) the same HTTP/2 session runs over
//! rustls, HTTP/2 chosen by ALPN.

use crate::pb;
use crate::relay::ServeReply;
use crate::wire;
use bytes::Bytes;
use h2::client::SendRequest;
use http::{HeaderValue, Method, Request, Uri, Version};
use prost::Message;
use std::sync::Mutex;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::TlsConnector;
use tonic::{Code, Status};
use tracing::debug;

/// The gRPC paths of Serve and Dispatch.
const SERVE_PATH: &str = "/collector.CollectiveDispatcher/Serve";
const DISPATCH_PATH: &str = "/collector.CollectiveDispatcher/Dispatch";
/// A keep-alive ping is sent this often...
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
/// ...and the connection is dropped if its answer takes longer than this.
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(5);
/// Flow-control windows: large enough that small calls never wait for a
/// window update, and few updates are sent (hyper's defaults).
const STREAM_WINDOW: u32 = 2 * 1024 * 1024;
const CONNECTION_WINDOW: u32 = 5 * 1024 * 1024;

/// What travels with one call besides its message.
#[derive(Debug, Clone, Default)]
pub struct CallHeaders {
    /// The caller's remaining budget, sent as `grpc-timeout`.
    pub timeout: Option<Duration>,
    /// `traceparent`.
    pub traceparent: Option<HeaderValue>,
    /// Marks a health probe.
    pub probe: bool,
}

/// One HTTP/2 connection to a node, dialled on first use and re-dialled on
/// the call after it broke. Share it (`Arc`) rather than clone it: calls on
/// one client share its connection.
pub struct UnaryClient {
    /// `host:port` to dial.
    authority: String,
    serve_uri: Uri,
    dispatch_uri: Uri,
    authorization: Option<HeaderValue>,
    connect_timeout: Duration,
    max_message: usize,
    /// TLS, if on: how to start it and the name the peer must prove.
    tls: Option<(TlsConnector, ServerName<'static>)>,
    /// The live connection's handle and its generation, so that a failed
    /// call forgets only the connection it failed on.
    conn: Mutex<Option<(u64, SendRequest<Bytes>)>>,
    /// Serializes dialling: many callers arriving at a cold or broken
    /// connection make one new connection, not one each.
    dialing: tokio::sync::Mutex<u64>,
}

impl UnaryClient {
    /// A client of the node at `address` (`host:port`, `http://host:port`
    /// or, for [`Self::with_tls`], `https://host:port`). `authorization` is
    /// sent with every call; messages either way are limited to
    /// `max_message` bytes. Nothing is dialled yet.
    pub fn new(
        address: &str,
        authorization: Option<HeaderValue>,
        connect_timeout: Duration,
        max_message: usize,
    ) -> Result<Self, String> {
        let authority = ["http://", "https://"]
            .iter()
            .find_map(|scheme| address.strip_prefix(scheme))
            .unwrap_or(address)
            .trim_end_matches('/');
        Ok(Self {
            authority: authority.to_string(),
            serve_uri: uri_of("http", authority, SERVE_PATH)?,
            dispatch_uri: uri_of("http", authority, DISPATCH_PATH)?,
            authorization,
            connect_timeout,
            max_message,
            tls: None,
            conn: Mutex::new(None),
            dialing: tokio::sync::Mutex::new(0),
        })
    }

    /// Speak TLS through `connector`; the node must present a certificate
    /// for `server_name`.
    pub fn with_tls(
        mut self,
        connector: TlsConnector,
        server_name: ServerName<'static>,
    ) -> Result<Self, String> {
        self.serve_uri = uri_of("https", &self.authority, SERVE_PATH)?;
        self.dispatch_uri = uri_of("https", &self.authority, DISPATCH_PATH)?;
        self.tls = Some((connector, server_name));
        Ok(self)
    }

    /// The host part of the address dialled (what a certificate names).
    pub fn host(&self) -> &str {
        self.serve_uri.host().unwrap_or(&self.authority)
    }

    /// Call Serve. Transport failures, and gRPC errors of the call itself,
    /// are a `Status` as tonic's client would report them.
    pub async fn serve(
        &self,
        call: &pb::ServeRequest,
        headers: &CallHeaders,
    ) -> Result<pb::ServeResponse, Status> {
        self.unary(&self.serve_uri, call, headers).await
    }

    /// Call Dispatch; errors as for [`Self::serve`].
    pub async fn dispatch(
        &self,
        call: &pb::DispatchRequest,
        headers: &CallHeaders,
    ) -> Result<pb::DispatchResponse, Status> {
        self.unary(&self.dispatch_uri, call, headers).await
    }

    /// Call Serve for a node that relays the answer (see `relay`): the
    /// response is checked and its status code read, but not decoded into a
    /// message.
    /// `request` is a framed `ServeRequest`.
    pub(crate) async fn serve_reply(
        &self,
        request: Bytes,
        headers: &CallHeaders,
    ) -> Result<ServeReply, Status> {
        let frame = self.unary_frame(&self.serve_uri, request, headers).await?;
        ServeReply::parse(frame, self.max_message)
    }

    async fn unary<Req: Message, Resp: Message + Default>(
        &self,
        uri: &Uri,
        call: &Req,
        headers: &CallHeaders,
    ) -> Result<Resp, Status> {
        let body = wire::encode(call, self.max_message, "request")?;
        let frame = self.unary_frame(uri, body, headers).await?;
        wire::decode(&frame, self.max_message, "response")
    }

    /// Make the call with `body` (a framed request); the response body (one length-prefixed message, not
    /// yet checked) of a call that ended with status OK.
    async fn unary_frame(
        &self,
        uri: &Uri,
        body: Bytes,
        headers: &CallHeaders,
    ) -> Result<Bytes, Status> {
        if body.len() > self.max_message.saturating_add(wire::PREFIX) {
            return Err(wire::too_large(
                "request",
                body.len() - wire::PREFIX,
                self.max_message,
            ));
        }
        let request = self.request(uri, headers);
        let (generation, sender) = self.sender().await?;
        let fail = |e: h2::Error| self.failed(generation, e);
        let mut sender = sender.ready().await.map_err(fail)?;
        let (response, mut stream) = sender.send_request(request, false).map_err(fail)?;
        stream.send_data(body, true).map_err(fail)?;
        let response = response.await.map_err(fail)?;
        let (head, mut body) = response.into_parts();
        if head.status != http::StatusCode::OK {
            return Err(wire::status_of_http(head.status));
        }
        // A trailers-only response: the status is in the headers.
        if let Some(status) = wire::status_of(&head.headers) {
            return Err(match status.code() {
                Code::Ok => Status::internal("response without a message"),
                _ => status,
            });
        }
        let frame = wire::read_body(&mut body, self.max_message, "response")
            .await
            .map_err(fail)??;
        let trailers = body.trailers().await.map_err(fail)?;
        // The usual ending, recognised without building a `Status`.
        let ok = trailers
            .as_ref()
            .and_then(|t| t.get(wire::GRPC_STATUS))
            .is_some_and(|code| code == "0");
        if ok {
            return Ok(frame);
        }
        match trailers.as_ref().and_then(wire::status_of) {
            Some(status) if status.code() == Code::Ok => Ok(frame),
            Some(status) => Err(status),
            None => Err(Status::internal("response without grpc-status")),
        }
    }

    fn request(&self, uri: &Uri, headers: &CallHeaders) -> Request<()> {
        let mut request = Request::new(());
        *request.method_mut() = Method::POST;
        *request.uri_mut() = uri.clone();
        *request.version_mut() = Version::HTTP_2;
        let h = request.headers_mut();
        h.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc"),
        );
        h.insert(http::header::TE, HeaderValue::from_static("trailers"));
        // Values that differ on every call are sent "never indexed": put in
        // HPACK's dynamic table they would only evict the entries that do
        // repeat, at a cost to both ends.
        if let Some(timeout) = headers.timeout {
            let mut v = wire::grpc_timeout(timeout);
            v.set_sensitive(true);
            h.insert(wire::GRPC_TIMEOUT, v);
        }
        if let Some(v) = &headers.traceparent {
            let mut v = v.clone();
            v.set_sensitive(true);
            h.insert(crate::trace::TRACEPARENT_HEADER, v);
        }
        if headers.probe {
            h.insert(crate::health::PROBE_HEADER, HeaderValue::from_static("1"));
        }
        if let Some(v) = &self.authorization {
            h.insert(http::header::AUTHORIZATION, v.clone());
        }
        request
    }

    /// The live connection, dialling one if there is none.
    async fn sender(&self) -> Result<(u64, SendRequest<Bytes>), Status> {
        if let Some(live) = self.live() {
            return Ok(live);
        }
        let mut generation = self.dialing.lock().await;
        // Someone else may have dialled while we waited.
        if let Some(live) = self.live() {
            return Ok(live);
        }
        // Boxed: dialling (TCP, TLS, HTTP/2 handshakes) is a large future
        // that is rarely needed; inline, every call's future (and each copy
        // of it) would be that large.
        let sender = Box::pin(self.dial()).await?;
        *generation += 1;
        *self.conn.lock().unwrap_or_else(|e| e.into_inner()) = Some((*generation, sender.clone()));
        Ok((*generation, sender))
    }

    fn live(&self) -> Option<(u64, SendRequest<Bytes>)> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    async fn dial(&self) -> Result<SendRequest<Bytes>, Status> {
        let unavailable = |what: String| self.unavailable(what);
        let tcp = tokio::time::timeout(self.connect_timeout, TcpStream::connect(&self.authority))
            .await
            .map_err(|_| unavailable("timed out".into()))?
            .map_err(|e| unavailable(e.to_string()))?;
        // Small writes go out at once (see the server's note on Nagle).
        tcp.set_nodelay(true)
            .map_err(|e| unavailable(e.to_string()))?;
        let Some((connector, name)) = &self.tls else {
            return self.handshake(tcp).await;
        };
        let tls = tokio::time::timeout(self.connect_timeout, connector.connect(name.clone(), tcp))
            .await
            .map_err(|_| unavailable("TLS handshake timed out".into()))?
            .map_err(|e| unavailable(format!("TLS handshake: {e}")))?;
        if tls.get_ref().1.alpn_protocol() != Some(b"h2") {
            return Err(unavailable(
                "the node did not agree to HTTP/2 (ALPN h2) over TLS".into(),
            ));
        }
        self.handshake(tls).await
    }

    /// Start HTTP/2 on `io` and drive the connection in a task of its own.
    async fn handshake<T>(&self, io: T) -> Result<SendRequest<Bytes>, Status>
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let unavailable = |what: String| self.unavailable(what);
        let handshake = h2::client::Builder::new()
            .initial_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .max_send_buffer_size(self.max_message.saturating_add(wire::PREFIX))
            .max_header_list_size(64 * 1024)
            .handshake::<_, Bytes>(io);
        let (sender, mut connection) = tokio::time::timeout(self.connect_timeout, handshake)
            .await
            .map_err(|_| unavailable("HTTP/2 handshake timed out".into()))?
            .map_err(|e| unavailable(e.to_string()))?;
        let ping = connection.ping_pong();
        let authority = self.authority.clone();
        tokio::spawn(async move {
            tokio::select! {
                result = &mut connection => {
                    if let Err(error) = result {
                        debug!(peer = %authority, %error, "connection closed");
                    }
                }
                () = keepalive(ping) => {
                    debug!(peer = %authority, "pings unanswered; connection dropped");
                }
            }
        });
        Ok(sender)
    }

    /// Dialling failed: `what` went wrong.
    fn unavailable(&self, what: String) -> Status {
        Status::unavailable(format!("connecting to {}: {what}", self.authority))
    }

    /// A call failed on connection `generation`: if the connection itself
    /// is gone, forget it so the next call dials anew.
    fn failed(&self, generation: u64, error: h2::Error) -> Status {
        let broken = error.is_io() || error.is_go_away() || !error.is_reset();
        if broken {
            let mut conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
            if conn.as_ref().is_some_and(|(g, _)| *g == generation) {
                *conn = None;
            }
        }
        status_of_h2(&error, broken)
    }
}

fn uri_of(scheme: &str, authority: &str, path: &str) -> Result<Uri, String> {
    Uri::builder()
        .scheme(scheme)
        .authority(authority)
        .path_and_query(path)
        .build()
        .map_err(|e| e.to_string())
}

/// Ping the peer every [`KEEPALIVE_INTERVAL`]; return when an answer takes
/// longer than [`KEEPALIVE_TIMEOUT`] (or pinging is impossible).
async fn keepalive(ping: Option<h2::PingPong>) {
    let Some(mut ping) = ping else {
        return std::future::pending().await;
    };
    loop {
        tokio::time::sleep(KEEPALIVE_INTERVAL).await;
        match tokio::time::timeout(KEEPALIVE_TIMEOUT, ping.ping(h2::Ping::opaque())).await {
            Ok(Ok(_)) => {}
            // The connection itself failed: its own future reports that.
            Ok(Err(_)) => return std::future::pending().await,
            Err(_) => return,
        }
    }
}

/// How tonic's client reports the same `h2` failure.
fn status_of_h2(error: &h2::Error, broken: bool) -> Status {
    let code = if broken {
        Code::Unavailable
    } else {
        match error.reason() {
            Some(h2::Reason::REFUSED_STREAM) => Code::Unavailable,
            Some(h2::Reason::CANCEL) => Code::Cancelled,
            Some(h2::Reason::ENHANCE_YOUR_CALM) => Code::ResourceExhausted,
            Some(h2::Reason::INADEQUATE_SECURITY) => Code::PermissionDenied,
            _ => Code::Internal,
        }
    };
    Status::new(code, error.to_string())
}
