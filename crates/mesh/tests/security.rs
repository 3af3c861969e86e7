//! Optional TLS (server and client) and shared bearer token. Certificates are
//! generated at test time.

mod common;

use common::*;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use std::time::Duration;
use switchyard_mesh::{
    dial, CallHeaders, MeshConfig, MeshError, Security, TlsConfig, Token, UnaryClient,
};

/// A CA and one certificate for `localhost` / `127.0.0.1` signed by it.
fn tls_material() -> TlsConfig {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let node_key = KeyPair::generate().unwrap();
    let node_cert = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&node_key, &issuer)
        .unwrap();
    TlsConfig {
        cert_pem: node_cert.pem().into_bytes(),
        key_pem: node_key.serialize_pem().into_bytes(),
        ca_pem: ca_cert.pem().into_bytes(),
        server_name: None,
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
