//! The RPCs of a node once their message is decoded: check the size limit,
//! call the logic module of each RPC, record metrics. Errors are statuses
//! inside the response; the gRPC call itself succeeds.

use crate::call::DispatchCall;
use crate::connect;
use crate::health::PROBE_HEADER;
use crate::node::Node;
use crate::pb;
use crate::route;
use crate::serve;
use crate::status::{self, TOO_LARGE};
use crate::trace::{deadline_of, traceparent_of};
use crate::validator::RegistryValidator;
use prost::Message;
use std::sync::Arc;
use tokio::time::Instant;
use tonic::metadata::MetadataMap;

pub(crate) struct Front(pub Arc<Node>);

impl Front {
    fn too_large(&self, size: usize) -> Option<pb::Status> {
        let limit = self.0.config.max_message_bytes;
        (size > limit).then(|| {
            status::new(
                TOO_LARGE,
                format!("message too large: {size} bytes exceeds the limit of {limit} bytes"),
            )
        })
    }
}

impl Front {
    pub(crate) async fn serve(
        &self,
        metadata: &MetadataMap,
        req: pb::ServeRequest,
    ) -> pb::ServeResponse {
        let started = Instant::now();
        let probe = metadata.contains_key(PROBE_HEADER);
        let deadline = deadline_of(metadata);
        let trace = traceparent_of(metadata, &req.execution_context);
        // Probes stay out of the call metrics.
        let metrics = (!probe).then(|| {
            self.0.metrics.route(
                "serve",
                &req.namespace,
                req.service.as_ref().map(|s| s.service_name.as_str()),
                &req.method_name,
            )
        });
        let response = match self.too_large(req.encoded_len()) {
            Some(s) => pb::ServeResponse {
                status: Some(s),
                output: None,
                executor_id: self.0.me.id.clone(),
            },
            None => serve::serve(&self.0, req, deadline, trace).await,
        };
        if let Some(metrics) = metrics {
            metrics.record(status::is_ok(response.status.as_ref()), started.elapsed());
        }
        response
    }

    pub(crate) fn connect(&self, req: pb::ConnectRequest) -> pb::ConnectResponse {
        let started = Instant::now();
        let response = match self.too_large(req.encoded_len()) {
            Some(s) => pb::ConnectResponse {
                status: Some(s),
                ..Default::default()
            },
            None => connect::accept(&self.0, req),
        };
        let ok = status::is_ok(response.status.as_ref());
        self.0
            .metrics
            .record("connect", "", "", ok, started.elapsed());
        response
    }

    pub(crate) async fn dispatch(
        &self,
        metadata: &MetadataMap,
        req: DispatchCall,
    ) -> route::Answer {
        let started = Instant::now();
        let deadline = deadline_of(metadata);
        let trace = traceparent_of(metadata, &Default::default());
        let metrics = self.0.metrics.route(
            "dispatch",
            req.namespace(),
            req.service_name(),
            req.method(),
        );
        let response = match self.too_large(req.len()) {
            Some(s) => route::Answer::Built(pb::DispatchResponse {
                status: Some(s),
                ..Default::default()
            }),
            None => route::dispatch(&self.0, req, deadline, trace).await,
        };
        metrics.record(response.is_ok(), started.elapsed());
        response
    }
}

/// The node's answer to `CollectorRegistry.ValidateMethod`: its configured
/// validator if it has one, else its own handler table.
pub(crate) struct NodeRegistry(pub Arc<Node>);

#[tonic::async_trait]
impl RegistryValidator for NodeRegistry {
    async fn validate(&self, namespace: &str, service: &str, method: &str) -> Result<(), String> {
        if let Some(v) = self.0.validator() {
            return v.validate(namespace, service, method).await;
        }
        self.0
            .services
            .get(namespace, service, method)
            .map(|_| ())
            .map_err(|_| {
                format!("method '{service}.{method}' is not registered in namespace '{namespace}'")
            })
    }
}
