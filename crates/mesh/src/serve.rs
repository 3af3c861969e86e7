//! Serve: run a method on this node, with the checks (and exact messages) the
//! original clients rely on, in this order: required fields, registry
//! validator, namespace, method, handler.

use crate::handler::Missing;
use crate::node::Node;
use crate::pb;
use crate::status::{self, BAD_REQUEST, INTERNAL, NOT_FOUND, TIMEOUT};
use crate::trace::CallContext;
use tokio::time::Instant;

/// The three `400` checks shared by Serve and Dispatch. On success: the
/// service name.
pub(crate) fn required<'a>(
    namespace: &str,
    service: Option<&'a str>,
    method: &str,
) -> Result<&'a str, pb::Status> {
    if namespace.is_empty() {
        return Err(status::new(BAD_REQUEST, "namespace is required"));
    }
    let service = match service {
        Some(s) if !s.is_empty() => s,
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
    let service = match required(
        namespace,
        request.service.as_ref().map(|s| s.service_name.as_str()),
        method,
    ) {
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
    // The handler runs as its own task so that a panic in it becomes a 500
    // response instead of tearing down the connection. If this call is
    // dropped (the caller's deadline, enforced by the server, or the caller
    // went away), the guard aborts the handler rather than leaving it running.
    let mut task = AbortOnDrop(tokio::spawn(handler(
        context,
        request.input.unwrap_or_default(),
    )));
    let outcome = match deadline {
        Some(d) => match tokio::time::timeout_at(d, &mut task.0).await {
            Ok(joined) => joined,
            Err(_) => {
                return respond(
                    status::new(TIMEOUT, "deadline exceeded while the handler ran"),
                    None,
                )
            }
        },
        None => (&mut task.0).await,
    };
    match outcome {
        Ok(Ok(output)) => respond(status::ok(), Some(output)),
        Ok(Err(e)) => respond(status::new(INTERNAL, format!("handler error: {e}")), None),
        Err(join) => respond(
            status::new(
                INTERNAL,
                format!(
                    "handler error: {}",
                    if join.is_panic() {
                        "the handler panicked"
                    } else {
                        "the handler was cancelled"
                    }
                ),
            ),
            None,
        ),
    }
}

/// Aborts the task when dropped.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
