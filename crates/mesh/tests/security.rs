//! Optional TLS (server and client) and shared bearer token. Certificates are
//! generated at test time.

mod common;

use common::*;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use std::time::Duration;
use switchyard_mesh::{
    dial, CallHeaders, MeshConfig, MeshError, Security, TlsConfig, Token, UnaryClient,
};

/// A certificate and its private key, PEM-encoded.
type CertAndKey = (Vec<u8>, Vec<u8>);

/// A fresh CA (PEM) and, for each list of names, a certificate and key
/// signed by it.
fn pki(leaves: &[&[&str]]) -> (Vec<u8>, Vec<CertAndKey>) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_pem = ca_params.self_signed(&ca_key).unwrap().pem().into_bytes();
    let issuer = Issuer::new(ca_params, ca_key);
    let signed = leaves
        .iter()
        .map(|names| {
            let key = KeyPair::generate().unwrap();
            let names = names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
            let cert = CertificateParams::new(names)
                .unwrap()
                .signed_by(&key, &issuer)
                .unwrap();
            (cert.pem().into_bytes(), key.serialize_pem().into_bytes())
        })
        .collect();
    (ca_pem, signed)
}

/// A CA and one certificate for `localhost` / `127.0.0.1` signed by it.
fn tls_material() -> TlsConfig {
    let (ca_pem, mut leaves) = pki(&[&["localhost", "127.0.0.1"]]);
    let (cert_pem, key_pem) = leaves.remove(0);
    TlsConfig {
        cert_pem,
        key_pem,
        ca_pem,
        server_name: None,
        require_client_cert: false,
    }
}

fn with(security: Security) -> MeshConfig {
    let mut c = fast_config();
    c.security = security;
    c
}

#[tokio::test]
async fn tls_mesh_routes_and_plaintext_clients_are_refused() {
    let security = Security {
        tls: Some(tls_material()),
        token: None,
    };
    let a = TestNode::start_with("a", &["orders"], with(security.clone())).await;
    let b = TestNode::start_with("b", &["orders"], with(security.clone())).await;
    answer(&b.node, "orders", "Who", "Am", "b");
    a.node.connect_to(&b.addr, &["orders"]).await.unwrap();
    assert_eq!(b.node.peers()[0].id, "a");

    let mut tls_client = dial(&a.addr, &security, Duration::from_secs(2)).unwrap();
    let r = tls_client
        .dispatch(dispatch_req("orders", "Who", "Am"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code_msg(r.status).0, 200);
    assert_eq!(r.handled_by_collector_id, "b");

    // A client needs only the CA (as `switchyard mesh call --ca` does).
    let ca_only = Security {
        tls: security.tls.as_ref().map(|t| TlsConfig {
            cert_pem: vec![],
            key_pem: vec![],
            ca_pem: t.ca_pem.clone(),
            server_name: Some("localhost".into()),
            require_client_cert: false,
        }),
        token: None,
    };
    let r = dial(&a.addr, &ca_only, Duration::from_secs(2))
        .unwrap()
        .serve(serve_req("orders", "Who", "Am"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        code_msg(r.status),
        (404, "namespace 'orders' not found".into())
    );

    let plain = a
        .client()
        .dispatch(dispatch_req("orders", "Who", "Am"))
        .await;
    assert!(plain.is_err(), "a plaintext call to a TLS node must fail");

    // A client that trusts another CA refuses the node's certificate.
    let mut other = security.clone();
    if let Some(t) = other.tls.as_mut() {
        t.ca_pem = tls_material().ca_pem;
    }
    let mut untrusting = dial(&a.addr, &other, Duration::from_secs(2)).unwrap();
    assert!(untrusting
        .dispatch(dispatch_req("orders", "Who", "Am"))
        .await
        .is_err());
}

#[tokio::test]
async fn token_is_required_when_configured() {
    let security = Security {
        tls: None,
        token: Some(Token::new("s3cret")),
    };
    let a = TestNode::start_with("a", &["orders"], with(security.clone())).await;
    let b = TestNode::start_with("b", &["orders"], with(security.clone())).await;
    answer(&b.node, "orders", "Who", "Am", "b");
    a.node.connect_to(&b.addr, &["orders"]).await.unwrap();

    let mut with_token = dial(&a.addr, &security, Duration::from_secs(2)).unwrap();
    let r = with_token
        .dispatch(dispatch_req("orders", "Who", "Am"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.handled_by_collector_id, "b");

    let err = a
        .client()
        .dispatch(dispatch_req("orders", "Who", "Am"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    assert!(!err.message().contains("s3cret"), "never echo the token");

    let wrong = Security {
        tls: None,
        token: Some(Token::new("guess")),
    };
    let intruder = TestNode::start_with("x", &["orders"], with(wrong)).await;
    match intruder.node.connect_to(&a.addr, &["orders"]).await {
        Err(MeshError::Call { status, .. }) => {
            assert_eq!(status.code(), tonic::Code::Unauthenticated)
        }
        other => panic!("expected a rejected token, got {other:?}"),
    }
    assert!(a.node.peers().iter().all(|p| p.id != "x"));
    assert!(
        !format!("{:?}", security).contains("s3cret"),
        "Debug redacts"
    );
}

#[tokio::test]
async fn lean_client_speaks_tls_and_checks_the_certificate() {
    let security = Security {
        tls: Some(tls_material()),
        token: Some(Token::new("s3cret")),
    };
    let b = TestNode::start_with("b", &["orders"], with(security.clone())).await;
    answer(&b.node, "orders", "Who", "Am", "b");
    let lean = |security: &Security| {
        let client = UnaryClient::new(
            &b.addr,
            security.authorization(),
            Duration::from_secs(2),
            1024 * 1024,
        )
        .unwrap();
        let name = security.server_name(client.host()).unwrap();
        client
            .with_tls(security.tls_connector().unwrap().unwrap(), name)
            .unwrap()
    };

    let r = lean(&security)
        .serve(&serve_req("orders", "Who", "Am"), &CallHeaders::default())
        .await
        .unwrap();
    assert_eq!(code_msg(r.status).0, 200);
    assert_eq!(r.executor_id, "b");

    // Trusting another CA: the handshake fails, nothing is sent.
    let mut other = security.clone();
    if let Some(t) = other.tls.as_mut() {
        t.ca_pem = tls_material().ca_pem;
    }
    let err = lean(&other)
        .serve(&serve_req("orders", "Who", "Am"), &CallHeaders::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable);
    assert!(err.message().contains("TLS handshake"), "{err:?}");

    // Plaintext against the TLS node fails too.
    let plain = UnaryClient::new(
        &b.addr,
        security.authorization(),
        Duration::from_secs(2),
        1024,
    )
    .unwrap();
    assert!(plain
        .serve(&serve_req("orders", "Who", "Am"), &CallHeaders::default())
        .await
        .is_err());

    // A CA file without a certificate is a clear configuration error.
    let mut empty = security.clone();
    if let Some(t) = empty.tls.as_mut() {
        t.ca_pem = b"not a pem".to_vec();
    }
    match empty.tls_connector() {
        Err(MeshError::Tls(reason)) => assert!(reason.contains("no certificate"), "{reason}"),
        other => panic!("expected a TLS error, got {:?}", other.map(|c| c.is_some())),
    }
}

/// Mutual TLS material: the nodes' settings (certificate for `localhost` /
/// `127.0.0.1`, client certificates required) and a caller's own
/// certificate from the same CA.
fn mtls_material() -> (TlsConfig, TlsConfig) {
    let (ca_pem, mut leaves) = pki(&[&["localhost", "127.0.0.1"], &["operator"]]);
    let (caller_cert, caller_key) = leaves.remove(1);
    let node = TlsConfig {
        require_client_cert: true,
        ca_pem: ca_pem.clone(),
        ..tls_with(leaves.remove(0))
    };
    let caller = TlsConfig {
        ca_pem,
        server_name: Some("localhost".into()),
        ..tls_with((caller_cert, caller_key))
    };
    (node, caller)
}

/// Settings holding this certificate and key (the CA still to be set).
fn tls_with((cert_pem, key_pem): CertAndKey) -> TlsConfig {
    TlsConfig {
        cert_pem,
        key_pem,
        ..TlsConfig::default()
    }
}

/// With `require_client_cert`, nodes present their certificates to each
/// other (Connect, the dial-back, forwarded calls and probes all work), a
/// caller with a certificate from the CA is served, and callers with none,
/// or with one from another CA, are refused during the handshake.
#[tokio::test]
async fn mutual_tls_admits_only_certified_callers() {
    let (node_tls, caller_tls) = mtls_material();
    let nodes = Security {
        tls: Some(node_tls),
        token: None,
    };
    let a = TestNode::start_with("a", &["orders"], with(nodes.clone())).await;
    let b = TestNode::start_with("b", &["orders"], with(nodes.clone())).await;
    answer(&b.node, "orders", "Who", "Am", "b");
    a.node.connect_to(&b.addr, &["orders"]).await.unwrap();
    let linked = eventually(Duration::from_secs(5), || async {
        b.node.peers().iter().any(|p| p.id == "a" && p.healthy)
    })
    .await;
    assert!(
        linked,
        "b dialled back over mutual TLS: {:?}",
        b.node.peers()
    );

    let certified = Security {
        tls: Some(caller_tls.clone()),
        token: None,
    };
    for _ in 0..3 {
        let r = dial(&a.addr, &certified, Duration::from_secs(2))
            .unwrap()
            .dispatch(dispatch_req("orders", "Who", "Am"))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(code_msg(r.status).0, 200);
        assert_eq!(r.handled_by_collector_id, "b");
    }
    // The lean client presents its certificate too.
    let lean =
        UnaryClient::new(&a.addr, None, Duration::from_secs(2), 1 << 20).expect("valid address");
    let name = certified.server_name(lean.host()).unwrap();
    let lean = lean
        .with_tls(certified.tls_connector().unwrap().unwrap(), name)
        .unwrap();
    let r = lean
        .serve(&serve_req("orders", "Who", "Am"), &CallHeaders::default())
        .await
        .expect("served");
    assert_eq!(code_msg(r.status).0, 404, "a serves no orders itself");

    let no_cert = Security {
        tls: Some(TlsConfig {
            cert_pem: vec![],
            key_pem: vec![],
            ..caller_tls.clone()
        }),
        token: None,
    };
    let (_, stranger) = mtls_material();
    let other_ca = Security {
        tls: Some(TlsConfig {
            ca_pem: caller_tls.ca_pem.clone(),
            ..stranger
        }),
        token: None,
    };
    for (who, security) in [
        ("no certificate", no_cert),
        ("a certificate from another CA", other_ca),
    ] {
        let refused = dial(&a.addr, &security, Duration::from_secs(2))
            .unwrap()
            .dispatch(dispatch_req("orders", "Who", "Am"))
            .await;
        assert!(
            refused.is_err(),
            "a caller with {who} certificate was served"
        );
    }
}
