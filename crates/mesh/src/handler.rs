//! Service handlers and the table that finds them by namespace and
//! `<Service>.<Method>`.

use crate::trace::CallContext;
use prost_types::Any;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};

/// What a handler returns when it cannot produce an output. Its text becomes
/// the `"handler error: <error>"` message of a `500` response.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct HandlerError(pub String);

impl HandlerError {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

/// The future a handler returns.
pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<Any, HandlerError>> + Send>>;

/// A registered handler: the call's context and input in, an output out.
pub type Handler = Arc<dyn Fn(CallContext, Any) -> HandlerFuture + Send + Sync>;

/// Wrap an `async fn(Any) -> Result<Any, HandlerError>` as a [`Handler`].
pub fn from_fn<F, Fut>(f: F) -> Handler
where
    F: Fn(Any) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Any, HandlerError>> + Send + 'static,
{
    Arc::new(move |_, input| Box::pin(f(input)))
}

/// Wrap an `async fn(CallContext, Any) -> Result<Any, HandlerError>` as a
/// [`Handler`], for handlers that want the deadline or trace context.
pub fn from_fn_with_context<F, Fut>(f: F) -> Handler
where
    F: Fn(CallContext, Any) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Any, HandlerError>> + Send + 'static,
{
    Arc::new(move |ctx, input| Box::pin(f(ctx, input)))
}

/// Why a lookup found no handler.
#[derive(Debug, PartialEq, Eq)]
pub enum Missing {
    /// Nothing at all is registered in the namespace.
    Namespace,
    /// The namespace exists but not this `<Service>.<Method>`.
    Method,
}

/// Handlers by namespace, then service, then method: nested so that a lookup
/// borrows the request's strings instead of building a key per call.
#[derive(Default)]
pub struct Services {
    table: RwLock<HashMap<String, ByService>>,
}

/// One namespace's handlers: service, then method.
type ByService = HashMap<String, HashMap<String, Handler>>;

impl Services {
    /// Register (or replace) the handler of `service.method` in `namespace`.
    pub fn insert(&self, namespace: &str, service: &str, method: &str, handler: Handler) {
        let mut table = self.table.write().unwrap_or_else(|e| e.into_inner());
        table
            .entry(namespace.to_string())
            .or_default()
            .entry(service.to_string())
            .or_default()
            .insert(method.to_string(), handler);
    }

    /// The handler of `service.method` in `namespace`.
    pub fn get(&self, namespace: &str, service: &str, method: &str) -> Result<Handler, Missing> {
        let table = self.table.read().unwrap_or_else(|e| e.into_inner());
        let methods = table.get(namespace).ok_or(Missing::Namespace)?;
        methods
            .get(service)
            .and_then(|m| m.get(method))
            .cloned()
            .ok_or(Missing::Method)
    }

    /// Every namespace that has at least one handler.
    pub fn namespaces(&self) -> Vec<String> {
        let table = self.table.read().unwrap_or_else(|e| e.into_inner());
        let mut names: Vec<String> = table.keys().cloned().collect();
        names.sort();
        names
    }
}
