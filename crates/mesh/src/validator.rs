//! Registry validation: "is `<Service>.<Method>` registered in `<namespace>`?",
//! asked before any handler lookup. A validator can be local ([`AllowList`])
//! or the `CollectorRegistry.ValidateMethod` RPC of another process
//! ([`GrpcRegistryValidator`]); [`RegistryService`] serves any validator over
//! that RPC.

use crate::error::MeshError;
use crate::pb;
use crate::pb::collector_registry_client::CollectorRegistryClient;
use crate::security::{ClientAuth, Security};
use crate::status;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// Answers whether a method is registered; `Err` carries the reason it is not.
#[tonic::async_trait]
pub trait RegistryValidator: Send + Sync + 'static {
    /// `Ok(())` when `service.method` may be served in `namespace`.
    async fn validate(&self, namespace: &str, service: &str, method: &str) -> Result<(), String>;
}

/// A fixed set of `(namespace, "<Service>.<Method>")`.
#[derive(Debug, Default, Clone)]
pub struct AllowList(HashSet<(String, String)>);

impl AllowList {
    /// Allow `service.method` in `namespace`.
    pub fn allow(mut self, namespace: &str, service: &str, method: &str) -> Self {
        self.0
            .insert((namespace.to_string(), format!("{service}.{method}")));
        self
    }
}

#[tonic::async_trait]
impl RegistryValidator for AllowList {
    async fn validate(&self, namespace: &str, service: &str, method: &str) -> Result<(), String> {
        let key = (namespace.to_string(), format!("{service}.{method}"));
        if self.0.contains(&key) {
            Ok(())
        } else {
            Err(format!(
                "method '{service}.{method}' is not registered in namespace '{namespace}'"
            ))
        }
    }
}

/// Asks a remote `CollectorRegistry`.
#[derive(Clone)]
pub struct GrpcRegistryValidator {
    client: CollectorRegistryClient<InterceptedService<Channel, ClientAuth>>,
}

impl GrpcRegistryValidator {
    /// A validator that calls the registry at `address` (dialled lazily).
    pub fn new(address: &str, security: &Security) -> Result<Self, MeshError> {
        let channel = security
            .endpoint(address, Duration::from_secs(2))?
            .timeout(Duration::from_secs(5))
            .connect_lazy();
        Ok(Self {
            client: CollectorRegistryClient::with_interceptor(channel, security.client_auth()),
        })
    }
}

#[tonic::async_trait]
impl RegistryValidator for GrpcRegistryValidator {
    async fn validate(&self, namespace: &str, service: &str, method: &str) -> Result<(), String> {
        let request = pb::ValidateMethodRequest {
            namespace: namespace.to_string(),
            service_name: service.to_string(),
            method_name: method.to_string(),
        };
        let response = self
            .client
            .clone()
            .validate_method(request)
            .await
            .map_err(|e| format!("registry unreachable: {}", e.message()))?
            .into_inner();
        match (response.is_valid, response.status) {
            (true, _) => Ok(()),
            (false, _) if !response.message.is_empty() => Err(response.message),
            (false, Some(s)) if !s.message.is_empty() => Err(s.message),
            (false, _) => Err(format!(
                "method '{service}.{method}' is not registered in namespace '{namespace}'"
            )),
        }
    }
}

/// Serves a validator as `collector.CollectorRegistry`.
pub struct RegistryService(pub Arc<dyn RegistryValidator>);

impl RegistryService {
    /// Answer one `ValidateMethod` request.
    pub async fn validate_method(
        &self,
        r: pb::ValidateMethodRequest,
    ) -> pb::ValidateMethodResponse {
        let missing = if r.namespace.is_empty() {
            Some("namespace is required")
        } else if r.service_name.is_empty() {
            Some("service_name is required")
        } else if r.method_name.is_empty() {
            Some("method_name is required")
        } else {
            None
        };
        match missing {
            Some(m) => pb::ValidateMethodResponse {
                status: Some(status::new(status::BAD_REQUEST, m)),
                is_valid: false,
                message: m.to_string(),
            },
            None => match self
                .0
                .validate(&r.namespace, &r.service_name, &r.method_name)
                .await
            {
                Ok(()) => pb::ValidateMethodResponse {
                    status: Some(status::ok()),
                    is_valid: true,
                    message: String::new(),
                },
                Err(reason) => pb::ValidateMethodResponse {
                    status: Some(status::ok()),
                    is_valid: false,
                    message: reason,
                },
            },
        }
    }
}

#[tonic::async_trait]
impl pb::collector_registry_server::CollectorRegistry for RegistryService {
    async fn validate_method(
        &self,
        request: tonic::Request<pb::ValidateMethodRequest>,
    ) -> Result<tonic::Response<pb::ValidateMethodResponse>, tonic::Status> {
        let response = RegistryService::validate_method(self, request.into_inner()).await;
        Ok(tonic::Response::new(response))
    }
}
