//! [`Dispatcher`]: the library handle of one mesh node.

use crate::call::DispatchCall;
use crate::config::MeshConfig;
use crate::connect;
use crate::error::MeshError;
use crate::handler::{self, Handler, HandlerError};
use crate::node::{Identity, Node};
use crate::pb;
use crate::peers::PeerInfo;
use crate::route;
use crate::serve;
use crate::server;
use crate::trace::CallContext;
use crate::validator::RegistryValidator;
use prost_types::Any;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// One node of the mesh: its handlers, its peers and its server. Cheap to
/// clone; all clones are the same node.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use switchyard_mesh::{any, Dispatcher};
/// let node = Dispatcher::new("collector-1", "127.0.0.1:50051", ["users"]);
/// node.register_service("users", "UserService", "GetUser", |input| async move {
///     Ok(any::json(&format!("{{\"echo\":{}}}", any::text(&input)?)))
/// });
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:50051").await?;
/// let running = node.spawn(listener);
/// node.connect_to("127.0.0.1:50052", &["users"]).await?;
/// running.shutdown().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Dispatcher {
    node: Arc<Node>,
}

impl Dispatcher {
    /// A node with default settings. `address` is what peers dial to reach it.
    pub fn new<N: Into<String>>(
        id: impl Into<String>,
        address: impl Into<String>,
        namespaces: impl IntoIterator<Item = N>,
    ) -> Self {
        Self::with_config(id, address, namespaces, MeshConfig::default())
    }

    /// A node with `config`.
    pub fn with_config<N: Into<String>>(
        id: impl Into<String>,
        address: impl Into<String>,
        namespaces: impl IntoIterator<Item = N>,
        config: MeshConfig,
    ) -> Self {
        let me = Identity {
            id: id.into(),
            address: address.into(),
        };
        let namespaces = namespaces.into_iter().map(Into::into).collect();
        Self {
            node: Arc::new(Node::new(me, namespaces, config)),
        }
    }

    /// This node's collector id.
    pub fn id(&self) -> &str {
        &self.node.me.id
    }

    /// The namespaces this node serves.
    pub fn namespaces(&self) -> Vec<String> {
        self.node.namespaces()
    }

    /// Register (or replace) `service.method` in `namespace`.
    pub fn register_service<F, Fut>(&self, namespace: &str, service: &str, method: &str, f: F)
    where
        F: Fn(Any) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Any, HandlerError>> + Send + 'static,
    {
        self.register_handler(namespace, service, method, handler::from_fn(f));
    }

    /// Register a handler that also receives the call's [`CallContext`].
    pub fn register_service_with_context<F, Fut>(
        &self,
        namespace: &str,
        service: &str,
        method: &str,
        f: F,
    ) where
        F: Fn(CallContext, Any) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Any, HandlerError>> + Send + 'static,
    {
        self.register_handler(namespace, service, method, handler::from_fn_with_context(f));
    }

    /// Register an already built [`Handler`].
    pub fn register_handler(&self, namespace: &str, service: &str, method: &str, h: Handler) {
        self.node.services.insert(namespace, service, method, h);
    }

    /// Set (or with `None`, remove) the registry validator consulted before
    /// every Serve.
    pub fn set_registry_validator(&self, validator: Option<Arc<dyn RegistryValidator>>) {
        *self
            .node
            .validator
            .write()
            .unwrap_or_else(|e| e.into_inner()) = validator;
    }

    /// Connect to the collector at `address`, announcing `namespaces`. The
    /// peer dials back, so it can route here too. Connecting again to the
    /// same collector updates it; it never adds a second entry.
    pub async fn connect_to<N: AsRef<str>>(
        &self,
        address: &str,
        namespaces: &[N],
    ) -> Result<pb::ConnectResponse, MeshError> {
        let namespaces: Vec<String> = namespaces.iter().map(|n| n.as_ref().to_string()).collect();
        connect::connect_to(&self.node, address, &namespaces, true).await
    }

    /// Replace this node's namespaces and re-announce them to every peer.
    /// Returns how many peers accepted the announcement.
    pub async fn set_namespaces<N: Into<String>>(
        &self,
        namespaces: impl IntoIterator<Item = N>,
    ) -> usize {
        let namespaces = namespaces.into_iter().map(Into::into).collect();
        *self
            .node
            .namespaces
            .write()
            .unwrap_or_else(|e| e.into_inner()) = namespaces;
        connect::reannounce(&self.node).await
    }

    /// The connected peers, for operators.
    pub fn peers(&self) -> Vec<PeerInfo> {
        self.node.peers.info()
    }

    /// Per-route metrics in Prometheus text format.
    pub fn metrics_text(&self) -> String {
        self.node.metrics.render()
    }

    /// Run a Serve in-process (as if it arrived over gRPC without deadline).
    pub async fn serve_local(&self, request: pb::ServeRequest) -> pb::ServeResponse {
        serve::serve(&self.node, request, None, None).await
    }

    /// Run a Dispatch in-process.
    pub async fn dispatch(&self, request: pb::DispatchRequest) -> pb::DispatchResponse {
        route::dispatch(&self.node, DispatchCall::of(&request), None, None)
            .await
            .into_message()
    }

    /// Serve on `listener` until `shutdown` completes.
    pub async fn serve(
        &self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), MeshError> {
        server::serve(self.node.clone(), listener, shutdown).await
    }

    /// Serve on `listener` in a background task.
    pub fn spawn(&self, listener: TcpListener) -> Running {
        let local_addr = listener.local_addr().ok();
        let (stop, stopped) = oneshot::channel::<()>();
        let this = self.clone();
        let task = tokio::spawn(async move {
            this.serve(listener, async {
                let _ = stopped.await;
            })
            .await
        });
        Running {
            local_addr,
            stop,
            task,
        }
    }
}

/// A node serving in the background.
pub struct Running {
    local_addr: Option<SocketAddr>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), MeshError>>,
}

impl Running {
    /// The address it listens on.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }

    /// Stop accepting, let in-flight calls finish, stop probing.
    pub async fn shutdown(self) -> Result<(), MeshError> {
        let _ = self.stop.send(());
        match self.task.await {
            Ok(result) => result,
            // The server task does not panic; if it did, report it as a
            // server error rather than propagating the panic.
            Err(e) => Err(MeshError::Task(e.to_string())),
        }
    }
}
