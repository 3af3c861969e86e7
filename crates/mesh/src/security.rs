//! Optional TLS and shared bearer token, for node-to-node and client calls.
//! Both sides of a hop use the same settings: a mesh shares one CA and one
//! token. The token is never logged (its `Debug` is redacted).

use crate::error::MeshError;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};
use tonic::{Request, Status};

/// TLS material, PEM-encoded.
#[derive(Clone, Default)]
pub struct TlsConfig {
    /// This node's certificate chain: served, and presented as a client
    /// certificate to servers that ask for one. May be empty on a client
    /// that only calls servers which do not ask.
    pub cert_pem: Vec<u8>,
    /// This node's private key.
    pub key_pem: Vec<u8>,
    /// The CA that signed the peers' certificates (and, with
    /// `require_client_cert`, the clients').
    pub ca_pem: Vec<u8>,
    /// Name expected in peer certificates; default: the host of the address.
    pub server_name: Option<String>,
    /// Mutual TLS: refuse clients that present no certificate signed by the
    /// CA. Nodes of such a mesh present their own certificate when they call
    /// each other.
    pub require_client_cert: bool,
}

impl TlsConfig {
    /// This side's certificate chain and key, if it has them.
    fn identity(
        &self,
    ) -> Result<Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>, MeshError> {
        if self.cert_pem.is_empty() && self.key_pem.is_empty() {
            return Ok(None);
        }
        let bad = |what: &str, e: &dyn fmt::Display| MeshError::Tls(format!("{what}: {e}"));
        let chain = CertificateDer::pem_slice_iter(&self.cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad("reading the certificate chain", &e))?;
        if chain.is_empty() {
            return Err(MeshError::Tls(
                "the certificate PEM holds no certificate".into(),
            ));
        }
        let key =
            PrivateKeyDer::from_pem_slice(&self.key_pem).map_err(|e| bad("reading the key", &e))?;
        Ok(Some((chain, key)))
    }

    /// The CA as a root store.
    fn roots(&self) -> Result<rustls::RootCertStore, MeshError> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&self.ca_pem) {
            let cert = cert.map_err(|e| MeshError::Tls(format!("reading the CA: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| MeshError::Tls(format!("the CA certificate: {e}")))?;
        }
        if roots.is_empty() {
            return Err(MeshError::Tls("the CA PEM holds no certificate".into()));
        }
        Ok(roots)
    }
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig")
            .field("server_name", &self.server_name)
            .field("require_client_cert", &self.require_client_cert)
            .finish_non_exhaustive()
    }
}

/// A shared bearer token.
#[derive(Clone)]
pub struct Token(String);

impl Token {
    /// Wrap a token.
    pub fn new(token: impl Into<String>) -> Self {
        Self(token.into())
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// TLS and token settings; both optional.
#[derive(Debug, Clone, Default)]
pub struct Security {
    /// Serve and dial with TLS.
    pub tls: Option<TlsConfig>,
    /// Require and send `authorization: Bearer <token>`.
    pub token: Option<Token>,
}

impl Security {
    /// The server side of TLS, if TLS is on: this node's certificate chain
    /// and key, HTTP/2 offered by ALPN (gRPC clients insist on it), and with
    /// `require_client_cert`, clients' certificates checked against the CA.
    pub fn tls_acceptor(&self) -> Result<Option<TlsAcceptor>, MeshError> {
        let Some(tls) = &self.tls else {
            return Ok(None);
        };
        let bad = |what: &str, e: &dyn fmt::Display| MeshError::Tls(format!("{what}: {e}"));
        let Some((chain, key)) = tls.identity()? else {
            return Err(MeshError::Tls(
                "serving with TLS needs a certificate and a key".into(),
            ));
        };
        let builder = rustls::ServerConfig::builder_with_provider(crypto())
            .with_safe_default_protocol_versions()
            .map_err(|e| bad("protocol versions", &e))?;
        let builder = if tls.require_client_cert {
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(tls.roots()?), crypto())
                    .build()
                    .map_err(|e| bad("client certificate checks", &e))?;
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let mut config = builder
            .with_single_cert(chain, key)
            .map_err(|e| bad("certificate and key", &e))?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Some(TlsAcceptor::from(Arc::new(config))))
    }

    /// The client side of TLS, if TLS is on: the peers' CA, HTTP/2 asked
    /// for by ALPN, and this side's certificate for servers that ask for
    /// one. The name a peer's certificate must carry is
    /// [`Security::server_name`].
    pub fn tls_connector(&self) -> Result<Option<TlsConnector>, MeshError> {
        let Some(tls) = &self.tls else {
            return Ok(None);
        };
        let builder = rustls::ClientConfig::builder_with_provider(crypto())
            .with_safe_default_protocol_versions()
            .map_err(|e| MeshError::Tls(format!("protocol versions: {e}")))?
            .with_root_certificates(tls.roots()?);
        let mut config = match tls.identity()? {
            Some((chain, key)) => builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| MeshError::Tls(format!("client certificate and key: {e}")))?,
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Some(TlsConnector::from(Arc::new(config))))
    }

    /// The name a peer at `host` must present in its certificate: the
    /// configured `server_name`, else the host itself.
    pub fn server_name(&self, host: &str) -> Result<ServerName<'static>, MeshError> {
        let name = self
            .tls
            .as_ref()
            .and_then(|t| t.server_name.clone())
            .unwrap_or_else(|| host.to_string());
        ServerName::try_from(name.clone())
            .map_err(|e| MeshError::Tls(format!("server name `{name}`: {e}")))
    }

    /// An endpoint for `address` (`host:port`, or a full `http(s)://` URI).
    pub fn endpoint(
        &self,
        address: &str,
        connect_timeout: Duration,
    ) -> Result<Endpoint, MeshError> {
        let bad = |reason: String| MeshError::Address {
            address: address.to_string(),
            reason,
        };
        if address.trim().is_empty() {
            return Err(bad("empty".into()));
        }
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let uri = if address.contains("://") {
            address.to_string()
        } else {
            format!("{scheme}://{address}")
        };
        let mut endpoint = Endpoint::from_shared(uri)
            .map_err(|e| bad(e.to_string()))?
            .connect_timeout(connect_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(5));
        if let Some(tls) = &self.tls {
            let host = endpoint.uri().host().unwrap_or("localhost").to_string();
            let mut config = ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(&tls.ca_pem))
                .domain_name(tls.server_name.clone().unwrap_or(host));
            if tls.identity()?.is_some() {
                config = config.identity(Identity::from_pem(&tls.cert_pem, &tls.key_pem));
            }
            endpoint = endpoint
                .tls_config(config)
                .map_err(|e| MeshError::Tls(e.to_string()))?;
        }
        Ok(endpoint)
    }

    /// The interceptor that adds the token to outgoing calls.
    pub fn client_auth(&self) -> ClientAuth {
        ClientAuth(self.token.as_ref().and_then(|t| {
            // A token that is not a valid header value is caught by the
            // server check (it will never match); here it is just not sent.
            MetadataValue::try_from(format!("Bearer {}", t.0)).ok()
        }))
    }

    /// The `authorization` header value outgoing calls carry, if any (for
    /// clients that build their own requests, like [`crate::UnaryClient`]).
    /// Marked sensitive, so HTTP/2 never indexes it.
    pub fn authorization(&self) -> Option<http::HeaderValue> {
        self.token.as_ref().and_then(|t| {
            let mut v = http::HeaderValue::try_from(format!("Bearer {}", t.0)).ok()?;
            v.set_sensitive(true);
            Some(v)
        })
    }

    /// The interceptor that checks the token of incoming calls.
    pub fn server_auth(&self) -> ServerAuth {
        ServerAuth(self.token.as_ref().map(|t| format!("Bearer {}", t.0)))
    }
}

/// The cryptography both sides of TLS use.
fn crypto() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Adds `authorization: Bearer <token>` to every call.
#[derive(Clone)]
pub struct ClientAuth(Option<MetadataValue<Ascii>>);

impl tonic::service::Interceptor for ClientAuth {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(v) = &self.0 {
            request.metadata_mut().insert("authorization", v.clone());
        }
        Ok(request)
    }
}

/// Refuses calls without the expected token (`UNAUTHENTICATED`).
#[derive(Clone)]
pub struct ServerAuth(Option<String>);

impl ServerAuth {
    /// Whether a request with these headers may be served.
    pub fn check(&self, headers: &http::HeaderMap) -> Result<(), Status> {
        let Some(expected) = &self.0 else {
            return Ok(());
        };
        let given = headers
            .get(http::header::AUTHORIZATION)
            .map(|v| v.as_bytes())
            .unwrap_or_default();
        if constant_time_eq(given, expected.as_bytes()) {
            Ok(())
        } else {
            Err(Status::unauthenticated(
                "missing or wrong bearer token (expected `authorization: Bearer <token>`)",
            ))
        }
    }
}

impl tonic::service::Interceptor for ServerAuth {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        self.check(request.metadata().as_ref())?;
        Ok(request)
    }
}

/// Whether `given` equals `expected`, in time that depends only on their
/// lengths: every byte is compared, with no early exit, so timing does not
/// reveal how long a prefix of a guessed secret is right. (A length mismatch
/// answers at once; a secret's length is not what this protects.)
///
/// Use it for every comparison of a secret (the bearer token here, and the
/// admin API's token in the binary).
pub fn constant_time_eq(given: &[u8], expected: &[u8]) -> bool {
    if given.len() != expected.len() {
        return false;
    }
    let mut diff = 0u8;
    for (x, y) in given.iter().zip(expected) {
        diff |= x ^ y;
    }
    // `black_box` keeps the optimizer from turning the loop back into a
    // comparison that stops at the first difference.
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn constant_time_eq_is_plain_equality_on_its_results() {
        assert!(constant_time_eq(b"Bearer tok", b"Bearer tok"));
        assert!(constant_time_eq(b"", b""));
        assert!(!constant_time_eq(b"Bearer tok", b"Bearer toK"), "last byte");
        assert!(
            !constant_time_eq(b"xearer tok", b"Bearer tok"),
            "first byte"
        );
        assert!(!constant_time_eq(b"Bearer to", b"Bearer tok"), "a prefix");
        assert!(!constant_time_eq(b"Bearer tokk", b"Bearer tok"), "longer");
        assert!(!constant_time_eq(b"", b"Bearer tok"), "empty");
    }
}
