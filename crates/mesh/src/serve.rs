//! Serve: run a method on this node, with the checks (and exact messages) the
//! original clients rely on, in this order: required fields, registry
//! validator, namespace, method, handler.

use crate::handler::{HandlerError, HandlerFuture, Missing};
use crate::node::Node;
use crate::pb;
use crate::status::{self, BAD_REQUEST, INTERNAL, NOT_FOUND, TIMEOUT};
use crate::trace::CallContext;
use prost_types::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::time::Instant;

/// The three `400` checks shared by Serve and Dispatch. On success: the
/// service name.
pub(crate) fn required<'a>(
    namespace: &str,
    service: Option<&'a pb::ServiceTypeRef>,
    method: &str,
) -> Result<&'a str, pb::Status> {
    if namespace.is_empty() {
        return Err(status::new(BAD_REQUEST, "namespace is required"));
    }
    let service = match service {
        Some(s) if !s.service_name.is_empty() => s.service_name.as_str(),
        _ => return Err(status::new(BAD_REQUEST, "service is required")),
    };
    if method.is_empty() {
        return Err(status::new(BAD_REQUEST, "method_name is required"));
    }
    Ok(service)
}

/// Run `request` here. `deadline` and `traceparent` come from the caller.
pub(crate) async fn serve(
    node: &Node,
    request: pb::ServeRequest,
    deadline: Option<Instant>,
    traceparent: Option<String>,
) -> pb::ServeResponse {
    let respond = |status, output| pb::ServeResponse {
        status: Some(status),
        output,
        executor_id: node.me.id.clone(),
    };
    let namespace = request.namespace.as_str();
    let method = request.method_name.as_str();
    let service = match required(namespace, request.service.as_ref(), method) {
        Ok(s) => s,
        Err(status) => return respond(status, None),
    };
    if let Some(validator) = node.validator() {
        if let Err(reason) = validator.validate(namespace, service, method).await {
            return respond(
                status::new(
                    NOT_FOUND,
                    format!("service not registered in registry: {reason}"),
                ),
                None,
            );
        }
    }
    let handler = match node.services.get(namespace, service, method) {
        Ok(h) => h,
        Err(Missing::Namespace) => {
            return respond(
                status::new(NOT_FOUND, format!("namespace '{namespace}' not found")),
                None,
            )
        }
        Err(Missing::Method) => {
            return respond(
                status::new(
                    NOT_FOUND,
                    format!("method '{service}.{method}' not found in namespace '{namespace}'"),
                ),
                None,
            )
        }
    };
    let context = CallContext {
        namespace: namespace.to_string(),
        method: format!("{service}.{method}"),
        deadline,
        traceparent,
        execution_context: request.execution_context,
    };
    // A panic in the handler becomes a 500 response instead of tearing down
    // the connection. The handler runs inside this call's task (no task of
    // its own per call: spawning one cost a fair share of a small call's CPU),
    // so when the call is dropped (the caller's deadline, enforced by the
    // server, or the caller went away) the handler is dropped with it.
    let handler = CatchPanic(handler(context, request.input.unwrap_or_default()));
    let outcome = match deadline {
        Some(d) => match tokio::time::timeout_at(d, handler).await {
            Ok(outcome) => outcome,
            Err(_) => {
                return respond(
                    status::new(TIMEOUT, "deadline exceeded while the handler ran"),
                    None,
                )
            }
        },
        None => handler.await,
    };
    match outcome {
        Ok(Ok(output)) => respond(status::ok(), Some(output)),
        Ok(Err(e)) => respond(status::new(INTERNAL, format!("handler error: {e}")), None),
        Err(Panicked) => respond(
            status::new(INTERNAL, "handler error: the handler panicked"),
            None,
        ),
    }
}

/// The handler panicked.
struct Panicked;

/// Polls a handler's future, turning a panic into [`Panicked`]. Once it has
/// panicked the future is not polled again.
struct CatchPanic(HandlerFuture);

impl Future for CatchPanic {
    type Output = Result<Result<Any, HandlerError>, Panicked>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // Unwind safety: after a panic the future is dropped unpolled, so no
        // state it broke is observed again.
        match std::panic::catch_unwind(AssertUnwindSafe(|| self.0.as_mut().poll(cx))) {
            Ok(poll) => poll.map(Ok),
            Err(_) => Poll::Ready(Err(Panicked)),
        }
    }
}
