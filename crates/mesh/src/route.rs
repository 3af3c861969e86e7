//! Dispatch: route a call to a target collector, to a local handler, or to
//! one of the connected collectors sharing the namespace. A forwarded call is
//! always a Serve, so a call makes at most one hop and cannot loop.

use crate::call::DispatchCall;
use crate::node::Node;
use crate::pb;
use crate::peers::Peer;
use crate::relay::ServeReply;
use crate::serve;
use crate::status::{self, INTERNAL, NOT_FOUND};
use crate::trace::child_traceparent;
use crate::unary::CallHeaders;
use tokio::time::Instant;
use tonic::Code;

/// A Dispatch's answer: built here, or a peer's Serve answer passed on as
/// it came (see `relay`).
#[derive(Debug)]
pub(crate) enum Answer {
    Built(pb::DispatchResponse),
    Relayed(ServeReply),
}

impl Answer {
    /// Whether the call was handled (`200`).
    pub(crate) fn is_ok(&self) -> bool {
        match self {
            Self::Built(r) => status::is_ok(r.status.as_ref()),
            Self::Relayed(r) => r.is_ok(),
        }
    }

    /// The answer as a message.
    pub(crate) fn into_message(self) -> pb::DispatchResponse {
        match self {
            Self::Built(r) => r,
            Self::Relayed(r) => r.decode(),
        }
    }
}

/// Route `call`.
pub(crate) async fn dispatch(
    node: &Node,
    call: DispatchCall,
    deadline: Option<Instant>,
    traceparent: Option<String>,
) -> Answer {
    let answer = |status: pb::Status| {
        Answer::Built(pb::DispatchResponse {
            status: Some(status),
            output: None,
            handled_by_collector_id: String::new(),
        })
    };
    let local = match serve::required(call.namespace(), call.service_name(), call.method()) {
        Ok(service) => node
            .services
            .get(call.namespace(), service, call.method())
            .is_ok(),
        Err(status) => return answer(status),
    };
    let target = call.target();

    // A target, if given, is the only choice: a connected collector, as in the
    // original (which has no connection to itself, so its own id is a 404 too).
    if !target.is_empty() {
        let Some(peer) = node.peers.get(target) else {
            return answer(status::new(
                NOT_FOUND,
                format!("no connection to collector '{target}'"),
            ));
        };
        return match forward(node, &peer, &call, deadline, traceparent.as_deref()).await {
            Ok(response) => Answer::Relayed(response),
            Err(e) => answer(status::new(INTERNAL, format!("serve RPC failed: {e}"))),
        };
    }

    // Local first.
    if local {
        return Answer::Built(from_serve(
            serve::serve(node, call.into_serve_request(), deadline, traceparent).await,
        ));
    }

    // Then the peers sharing the namespace, in balancing order; first 200 wins.
    let candidates = node.peers.candidates(call.namespace(), call.hash_key());
    let mut last_error = None;
    for peer in &candidates {
        match forward(node, peer, &call, deadline, traceparent.as_deref()).await {
            Ok(response) if response.is_ok() => return Answer::Relayed(response),
            Ok(response) => {
                let s = response
                    .decode::<pb::ServeResponse>()
                    .status
                    .unwrap_or_default();
                last_error = Some(format!("{}: {} {}", peer.id, s.code, s.message));
            }
            Err(e) => last_error = Some(format!("{}: {e}", peer.id)),
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
    }
    let status = status::new(
        NOT_FOUND,
        format!("no collector found for namespace '{}'", call.namespace()),
    );
    answer(match last_error {
        Some(e) => status::with_details(
            status,
            &[("tried", candidates.len().to_string()), ("last_error", e)],
        ),
        None => status,
    })
}

fn from_serve(response: pb::ServeResponse) -> pb::DispatchResponse {
    pb::DispatchResponse {
        status: response.status,
        output: response.output,
        handled_by_collector_id: response.executor_id,
    }
}

/// Forward `call` to `peer` as a Serve, within the caller's deadline (or the
/// configured call timeout), with a child trace context, through the peer's
/// circuit breaker. `Err` is a transport-level failure, as text. `call` is
/// only borrowed (each attempt frames its own Serve with its own trace
/// context), so a retry on another peer needs no copy.
pub(crate) async fn forward(
    node: &Node,
    peer: &Peer,
    call: &DispatchCall,
    deadline: Option<Instant>,
    traceparent: Option<&str>,
) -> Result<ServeReply, String> {
    let started = Instant::now();
    // Dropped unrecorded (this call was cancelled), the permit settles
    // nothing, and a trial passes to the next caller.
    let permit = match peer.breaker.try_acquire(started) {
        Ok(permit) => permit,
        Err(wait) => {
            return Err(format!(
                "circuit breaker open for collector '{}' (next trial in {} ms)",
                peer.id,
                wait.as_millis()
            ))
        }
    };
    let budget = match deadline {
        Some(d) => d.saturating_duration_since(started),
        None => node.config.call_timeout,
    };
    if budget.is_zero() {
        permit.record(true, started);
        return Err("deadline exceeded before the call was forwarded".into());
    }
    let trace = child_traceparent(traceparent);
    let headers = CallHeaders {
        timeout: Some(budget),
        traceparent: trace.parse().ok(),
        probe: false,
    };
    let frame = call.serve_frame(&trace);
    // A forwarded call always has a service (Dispatch checked it).
    let metrics = node.metrics.route(
        "forward",
        call.namespace(),
        call.service_name(),
        call.method(),
    );
    let result = tokio::time::timeout(budget, peer.serve(frame, &headers)).await;
    let now = Instant::now();
    let outcome = match result {
        Err(_) => Err(format!("deadline exceeded after {} ms", budget.as_millis())),
        Ok(Err(status)) => {
            if matches!(status.code(), Code::Unavailable) {
                // Passive health: stop routing to it until a probe succeeds.
                peer.mark_dead(now + node.config.health.probe_interval);
            }
            Err(describe(&status))
        }
        Ok(Ok(response)) => Ok(response),
    };
    let healthy = match &outcome {
        Ok(r) => !r.is_server_error(),
        Err(_) => false,
    };
    permit.record(healthy, now);
    let ok = matches!(&outcome, Ok(r) if r.is_ok());
    metrics.record(ok, now - started);
    outcome
}

fn describe(status: &tonic::Status) -> String {
    let code = match status.code() {
        Code::Unavailable => "unavailable",
        Code::DeadlineExceeded => "deadline exceeded",
        Code::Cancelled => "cancelled",
        Code::Unauthenticated => "unauthenticated",
        Code::OutOfRange | Code::ResourceExhausted => "message too large",
        _ => "error",
    };
    let message = status.message();
    if message.is_empty() {
        code.to_string()
    } else {
        format!("{code}: {message}")
    }
}
