//! `switchyard mesh call`: Connect, Serve or Dispatch against a node from the
//! shell; prints the response as JSON and exits 1 unless its status is 200.

use anyhow::Context;
use base64::Engine as _;
use clap::{Args, Subcommand};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;
use switchyard_mesh::any::JSON_TYPE_URL;
use switchyard_mesh::pb::{self, ServiceTypeRef};
use switchyard_mesh::{dial, Security, TlsConfig, Token, COLLECTOR_ID};

#[derive(Args, Debug)]
pub struct CallArgs {
    /// The node's gRPC address (`host:port`).
    #[arg(long, env = "SWITCHYARD_MESH_ADDR", default_value = "127.0.0.1:50051")]
    pub addr: String,
    /// Shared bearer token (never logged).
    #[arg(long, env = "SWITCHYARD_MESH_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// CA certificate (PEM): call over TLS, trusting this CA.
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// Name expected in the node's certificate (default: the host of --addr).
    #[arg(long, requires = "ca")]
    pub server_name: Option<String>,
    /// Client certificate (PEM), for nodes that require one (mutual TLS).
    #[arg(long, requires_all = ["ca", "key"])]
    pub cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, requires = "cert")]
    pub key: Option<PathBuf>,
    /// Deadline of the call (sent as `grpc-timeout`).
    #[arg(long, default_value = "10s", value_parser = crate::cli::duration)]
    pub timeout: Duration,
    /// W3C trace context to send (`traceparent` header).
    #[arg(long)]
    pub traceparent: Option<String>,
    #[command(subcommand)]
    pub rpc: Rpc,
}

#[derive(Subcommand, Debug)]
pub enum Rpc {
    /// Run a method on exactly this node.
    Serve(Target),
    /// Route a method through this node (local, a target, or a peer).
    Dispatch {
        #[command(flatten)]
        target: Target,
        /// Route to this collector only.
        #[arg(long)]
        to: Option<String>,
        /// Routing hint `key=value` (e.g. `hash_key=tenant-7`); repeatable.
        #[arg(long = "hint", value_parser = key_value)]
        hints: Vec<(String, String)>,
    },
    /// Announce a collector at `--address` to this node.
    Connect {
        /// The announcing collector's address.
        #[arg(long)]
        address: String,
        /// Its namespaces, comma-separated.
        #[arg(long, value_delimiter = ',')]
        namespaces: Vec<String>,
        /// Its collector id (`metadata["collector_id"]`).
        #[arg(long)]
        collector_id: Option<String>,
    },
}

#[derive(Args, Debug)]
pub struct Target {
    #[arg(long)]
    pub namespace: String,
    #[arg(long)]
    pub service: String,
    #[arg(long)]
    pub method: String,
    /// The payload (sent as `Any.value`); default `{}`.
    #[arg(long, conflicts_with = "input_file")]
    pub input: Option<String>,
    /// Read the payload from a file.
    #[arg(long)]
    pub input_file: Option<PathBuf>,
    /// `Any.type_url` of the payload.
    #[arg(long, default_value = JSON_TYPE_URL)]
    pub type_url: String,
}

fn key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| "expected key=value".into())
}

impl Target {
    fn input(&self) -> anyhow::Result<prost_types::Any> {
        let value = match (&self.input, &self.input_file) {
            (Some(s), _) => s.clone().into_bytes(),
            (None, Some(p)) => std::fs::read(p)
                .with_context(|| format!("cannot read --input-file `{}`", p.display()))?,
            (None, None) => b"{}".to_vec(),
        };
        Ok(prost_types::Any {
            type_url: self.type_url.clone(),
            value,
        })
    }

    fn service(&self) -> Option<ServiceTypeRef> {
        Some(ServiceTypeRef {
            namespace: self.namespace.clone(),
            service_name: self.service.clone(),
        })
    }
}

pub fn main(args: CallArgs) -> anyhow::Result<()> {
    if args.token.is_some() && args.ca.is_none() {
        eprintln!(
            "switchyard: warning: --token without --ca sends the token in clear text; pass --ca to call over TLS"
        );
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let (ok, out) = runtime.block_on(call(args))?;
    // `| head` may close the pipe early: that ends the printing quietly and
    // leaves the exit status to the call's own outcome.
    crate::process::stdout::print_line(&serde_json::to_string_pretty(&out)?)?;
    if ok {
        Ok(())
    } else {
        std::process::exit(1)
    }
}

async fn call(args: CallArgs) -> anyhow::Result<(bool, Value)> {
    let tls = match &args.ca {
        None => None,
        Some(ca) => {
            let read = |path: &PathBuf, flag: &str| {
                std::fs::read(path)
                    .with_context(|| format!("cannot read --{flag} `{}`", path.display()))
            };
            Some(TlsConfig {
                cert_pem: args
                    .cert
                    .as_ref()
                    .map(|p| read(p, "cert"))
                    .transpose()?
                    .unwrap_or_default(),
                key_pem: args
                    .key
                    .as_ref()
                    .map(|p| read(p, "key"))
                    .transpose()?
                    .unwrap_or_default(),
                ca_pem: read(ca, "ca")?,
                server_name: args.server_name.clone(),
                require_client_cert: false,
            })
        }
    };
    let security = Security {
        tls,
        token: args.token.clone().map(Token::new),
    };
    let mut client = dial(&args.addr, &security, Duration::from_secs(5))?;
    let failed = |e: tonic::Status| {
        anyhow::anyhow!(
            "call to {} failed: {:?}: {}",
            args.addr,
            e.code(),
            e.message()
        )
    };
    let out = match &args.rpc {
        Rpc::Serve(t) => {
            let r = client
                .serve(with_headers(
                    pb::ServeRequest {
                        namespace: t.namespace.clone(),
                        service: t.service(),
                        method_name: t.method.clone(),
                        input: Some(t.input()?),
                        execution_context: Default::default(),
                    },
                    &args,
                ))
                .await
                .map_err(failed)?
                .into_inner();
            json!({"status": status(r.status.as_ref()), "output": output(r.output.as_ref()), "executor_id": r.executor_id})
        }
        Rpc::Dispatch { target, to, hints } => {
            let r = client
                .dispatch(with_headers(
                    pb::DispatchRequest {
                        namespace: target.namespace.clone(),
                        service: target.service(),
                        method_name: target.method.clone(),
                        input: Some(target.input()?),
                        target_collector_id: to.clone().unwrap_or_default(),
                        routing_hints: hints.iter().cloned().collect(),
                    },
                    &args,
                ))
                .await
                .map_err(failed)?
                .into_inner();
            json!({"status": status(r.status.as_ref()), "output": output(r.output.as_ref()), "handled_by_collector_id": r.handled_by_collector_id})
        }
        Rpc::Connect {
            address,
            namespaces,
            collector_id,
        } => {
            let metadata: HashMap<String, String> = collector_id
                .iter()
                .map(|id| (COLLECTOR_ID.to_string(), id.clone()))
                .collect();
            let r = client
                .connect(with_headers(
                    pb::ConnectRequest {
                        address: address.clone(),
                        namespaces: namespaces.clone(),
                        metadata,
                    },
                    &args,
                ))
                .await
                .map_err(failed)?
                .into_inner();
            json!({"status": status(r.status.as_ref()), "connection_id": r.connection_id, "shared_namespaces": r.shared_namespaces, "target_collector_id": r.target_collector_id})
        }
    };
    let ok = out["status"]["code"] == 200;
    Ok((ok, out))
}

/// The call's deadline and trace context as request headers.
fn with_headers<T>(message: T, args: &CallArgs) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    r.set_timeout(args.timeout);
    if let Some(tp) = args.traceparent.as_deref().and_then(|t| t.parse().ok()) {
        r.metadata_mut().insert("traceparent", tp);
    }
    r
}

fn status(s: Option<&pb::Status>) -> Value {
    match s {
        None => Value::Null,
        Some(s) => json!({"code": s.code, "message": s.message, "details": s.details}),
    }
}

/// The output's value as JSON when it is JSON, else as text when it is
/// UTF-8, else base64.
fn output(o: Option<&prost_types::Any>) -> Value {
    let Some(o) = o else { return Value::Null };
    if let Ok(v) = serde_json::from_slice::<Value>(&o.value) {
        return json!({"type_url": o.type_url, "json": v});
    }
    match std::str::from_utf8(&o.value) {
        Ok(text) => json!({"type_url": o.type_url, "text": text}),
        Err(_) => json!({
            "type_url": o.type_url,
            "base64": base64::engine::general_purpose::STANDARD.encode(&o.value),
        }),
    }
}
