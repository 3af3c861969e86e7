//! The original dispatcher's behaviour, call for call, over real TCP on
//! loopback with separate nodes: what clients generated from the original
//! protobuf rely on (codes, exact messages, check order, routing).

mod common;

use common::*;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use switchyard_mesh::pb::collector_registry_client::CollectorRegistryClient;
use switchyard_mesh::pb::{self, ServiceTypeRef};
use switchyard_mesh::{
    any, AllowList, GrpcRegistryValidator, HandlerError, Security, COLLECTOR_ID,
};

fn connect_req(address: &str, namespaces: &[&str], id: &str) -> pb::ConnectRequest {
    pb::ConnectRequest {
        address: address.into(),
        namespaces: namespaces.iter().map(|s| s.to_string()).collect(),
        metadata: HashMap::from([(COLLECTOR_ID.to_string(), id.to_string())]),
    }
}

#[tokio::test]
async fn connect_basic() {
    let a = TestNode::start("a", &["users", "orders"]).await;
    let b = TestNode::start("b", &["orders", "products"]).await;
    let r = a
        .node
        .connect_to(&b.addr, &["users", "orders"])
        .await
        .unwrap();
    assert_eq!(code_msg(r.status.clone()).0, 200);
    assert_eq!(r.shared_namespaces, ["orders"]);
    assert_eq!(r.target_collector_id, "b");
    assert!(!r.connection_id.is_empty());
    let peers = a.node.peers();
    assert_eq!(peers.len(), 1);
    assert_eq!(peers[0].id, "b");
    assert_eq!(peers[0].shared_namespaces, ["orders"]);
}

#[tokio::test]
async fn connect_bidirectional() {
    let a = TestNode::start("a", &["users", "orders"]).await;
    let b = TestNode::start("b", &["orders"]).await;
    a.node
        .connect_to(&b.addr, &["users", "orders"])
        .await
        .unwrap();
    let on_b = b.node.peers();
    assert_eq!(on_b.len(), 1, "the receiver records the caller");
    assert_eq!(on_b[0].id, "a");
    assert_eq!(on_b[0].address, a.addr);
    assert_eq!(on_b[0].shared_namespaces, ["orders"]);
}

#[tokio::test]
async fn connect_multiple_collectors_get_distinct_connection_ids() {
    let a = TestNode::start("a", &["x"]).await;
    let b = TestNode::start("b", &["x"]).await;
    let c = TestNode::start("c", &["x"]).await;
    let rb = a.node.connect_to(&b.addr, &["x"]).await.unwrap();
    let rc = a.node.connect_to(&c.addr, &["x"]).await.unwrap();
    assert_ne!(rb.connection_id, rc.connection_id);
    let ids: Vec<String> = a.node.peers().into_iter().map(|p| p.id).collect();
    assert_eq!(ids, ["b", "c"]);
}

/// An original collector that sends no `collector_id` is recorded as
/// "unknown" (and an empty id counts as none).
#[tokio::test]
async fn connect_without_a_collector_id_records_the_caller_as_unknown() {
    let b = TestNode::start("b", &["orders"]).await;
    let mut client = b.client();
    for metadata in [
        HashMap::new(),
        HashMap::from([(COLLECTOR_ID.to_string(), String::new())]),
    ] {
        let r = client
            .connect(pb::ConnectRequest {
                address: "127.0.0.1:9".into(),
                namespaces: vec!["orders".into()],
                metadata,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(code_msg(r.status).0, 200);
        assert_eq!(r.target_collector_id, "b");
    }
    let peers = b.node.peers();
    assert_eq!(peers.len(), 1, "one entry for the id-less caller");
    assert_eq!(peers[0].id, "unknown");
    assert_eq!(peers[0].address, "127.0.0.1:9");
    assert_eq!(peers[0].shared_namespaces, ["orders"]);
}

#[tokio::test]
async fn connect_shared_namespaces_are_the_intersection_in_request_order() {
    let b = TestNode::start("b", &["orders", "products", "inventory"]).await;
    let mut client = b.client();
    let cases: [(&[&str], &[&str]); 4] = [
        (&["users", "orders", "products"], &["orders", "products"]),
        (&["products", "x", "orders"], &["products", "orders"]),
        (&["inventory"], &["inventory"]),
        (&["users", "billing"], &[]),
    ];
    for (i, (asked, shared)) in cases.into_iter().enumerate() {
        // Raw calls, as an original collector makes them; the address is
        // not a live node, which Connect does not need.
        let r = client
            .connect(connect_req("127.0.0.1:9", asked, &format!("raw-{i}")))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(code_msg(r.status).0, 200, "{asked:?}");
        assert_eq!(r.shared_namespaces, shared, "{asked:?}");
        assert_eq!(r.target_collector_id, "b");
    }
}

#[tokio::test]
async fn connect_invalid_address_is_400() {
    let b = TestNode::start("b", &["orders"]).await;
    let r = b
        .client()
        .connect(connect_req("", &["orders"], "a"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code_msg(r.status), (400, "address is required".into()));
}

#[tokio::test]
async fn serve_basic() {
    let b = TestNode::start("b", &["users"]).await;
    answer(
        &b.node,
        "users",
        "UserService",
        "GetUser",
        r#"{"name":"ada"}"#,
    );
    let r = b
        .client()
        .serve(serve_req("users", "UserService", "GetUser"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code_msg(r.status), (200, "OK".into()));
    assert_eq!(output_text(r.output), r#"{"name":"ada"}"#);
    assert_eq!(r.executor_id, "b");
}

#[tokio::test]
async fn serve_invalid_requests_exact_messages_in_order() {
    let b = TestNode::start("b", &["users"]).await;
    let mut client = b.client();
    let mut cases = vec![];
    let mut r = serve_req("", "", "");
    cases.push((r.clone(), "namespace is required"));
    r.namespace = "users".into();
    r.service = None;
    cases.push((r.clone(), "service is required"));
    r.service = Some(ServiceTypeRef::default());
    cases.push((r.clone(), "service is required"));
    r.service = svc("UserService");
    cases.push((r.clone(), "method_name is required"));
    for (req, message) in cases {
        let resp = client.serve(req).await.unwrap().into_inner();
        assert_eq!(code_msg(resp.status), (400, message.to_string()));
    }
}

#[tokio::test]
async fn serve_unknown_namespace_and_method_are_404() {
    let b = TestNode::start("b", &["users"]).await;
    answer(&b.node, "users", "UserService", "GetUser", "{}");
    let mut client = b.client();
    let r = client
        .serve(serve_req("nope", "UserService", "GetUser"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        code_msg(r.status),
        (404, "namespace 'nope' not found".into())
    );
    let r = client
        .serve(serve_req("users", "UserService", "Nope"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        code_msg(r.status),
        (
            404,
            "method 'UserService.Nope' not found in namespace 'users'".into()
        )
    );
}

#[tokio::test]
async fn serve_handler_error_is_500() {
    let b = TestNode::start("b", &["users"]).await;
    b.node
        .register_service("users", "UserService", "Fail", |_| async {
            Err(HandlerError::new("database is down"))
        });
    let r = b
        .client()
        .serve(serve_req("users", "UserService", "Fail"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        code_msg(r.status),
        (500, "handler error: database is down".into())
    );
    assert_eq!(r.executor_id, "b");
}

#[tokio::test]
async fn serve_multiple_services() {
    let b = TestNode::start("b", &["users"]).await;
    answer(&b.node, "users", "UserService", "GetUser", "get");
    answer(&b.node, "users", "UserService", "CreateUser", "create");
    answer(&b.node, "users", "AuthService", "Login", "login");
    let mut client = b.client();
    for (s, m, want) in [
        ("UserService", "GetUser", "get"),
        ("UserService", "CreateUser", "create"),
        ("AuthService", "Login", "login"),
    ] {
        let r = client
            .serve(serve_req("users", s, m))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(code_msg(r.status).0, 200);
        assert_eq!(output_text(r.output), want);
    }
}

async fn pair() -> (TestNode, TestNode) {
    let a = TestNode::start("a", &["users", "orders"]).await;
    let b = TestNode::start("b", &["orders", "inventory"]).await;
    a.node
        .connect_to(&b.addr, &["users", "orders"])
        .await
        .unwrap();
    (a, b)
}

#[tokio::test]
async fn dispatch_to_target() {
    let (a, b) = pair().await;
    answer(&b.node, "orders", "OrderService", "Create", "created on b");
    let mut req = dispatch_req("orders", "OrderService", "Create");
    req.target_collector_id = "b".into();
    let r = a.client().dispatch(req).await.unwrap().into_inner();
    assert_eq!(code_msg(r.status), (200, "OK".into()));
    assert_eq!(r.handled_by_collector_id, "b");
    assert_eq!(output_text(r.output), "created on b");
}

#[tokio::test]
async fn dispatch_auto_local_wins() {
    let (a, b) = pair().await;
    answer(&a.node, "orders", "OrderService", "Create", "a");
    answer(&b.node, "orders", "OrderService", "Create", "b");
    for _ in 0..4 {
        let r = a
            .client()
            .dispatch(dispatch_req("orders", "OrderService", "Create"))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.handled_by_collector_id, "a");
    }
}

#[tokio::test]
async fn dispatch_auto_remote() {
    let (a, b) = pair().await;
    answer(&b.node, "orders", "OrderService", "Create", "b");
    let r = a
        .client()
        .dispatch(dispatch_req("orders", "OrderService", "Create"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code_msg(r.status), (200, "OK".into()));
    assert_eq!(r.handled_by_collector_id, "b");
    // And the other way round: b routes to a over the same link.
    answer(&a.node, "orders", "OrderService", "List", "a");
    let r = b
        .client()
        .dispatch(dispatch_req("orders", "OrderService", "List"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.handled_by_collector_id, "a");
}

#[tokio::test]
async fn dispatch_invalid_requests_exact_messages() {
    let a = TestNode::start("a", &["users"]).await;
    let mut client = a.client();
    let mut r = dispatch_req("", "S", "M");
    let resp = client.dispatch(r.clone()).await.unwrap().into_inner();
    assert_eq!(code_msg(resp.status), (400, "namespace is required".into()));
    r.namespace = "users".into();
    r.service = None;
    let resp = client.dispatch(r.clone()).await.unwrap().into_inner();
    assert_eq!(code_msg(resp.status), (400, "service is required".into()));
    r.service = svc("S");
    r.method_name.clear();
    let resp = client.dispatch(r).await.unwrap().into_inner();
    assert_eq!(
        code_msg(resp.status),
        (400, "method_name is required".into())
    );
}

#[tokio::test]
async fn dispatch_unknown_target_is_404() {
    let (a, _b) = pair().await;
    let mut req = dispatch_req("orders", "OrderService", "Create");
    req.target_collector_id = "collector-west-2".into();
    let r = a.client().dispatch(req).await.unwrap().into_inner();
    assert_eq!(
        code_msg(r.status),
        (404, "no connection to collector 'collector-west-2'".into())
    );
}

#[tokio::test]
async fn dispatch_targeting_the_node_itself_is_404_as_in_the_original() {
    let (a, _b) = pair().await;
    answer(&a.node, "orders", "OrderService", "Create", "a");
    let mut req = dispatch_req("orders", "OrderService", "Create");
    req.target_collector_id = "a".into();
    let r = a.client().dispatch(req).await.unwrap().into_inner();
    assert_eq!(
        code_msg(r.status),
        (404, "no connection to collector 'a'".into())
    );
}

#[tokio::test]
async fn dispatch_with_no_collector_for_namespace_is_404() {
    let (a, b) = pair().await;
    answer(&b.node, "inventory", "Stock", "Count", "b");
    // `inventory` is not shared between a and b, so a must not route there.
    for ns in ["inventory", "nowhere"] {
        let r = a
            .client()
            .dispatch(dispatch_req(ns, "Stock", "Count"))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            code_msg(r.status),
            (404, format!("no collector found for namespace '{ns}'"))
        );
    }
}

#[tokio::test]
async fn registry_without_validator_serves() {
    let b = TestNode::start("b", &["users"]).await;
    answer(&b.node, "users", "UserService", "GetUser", "ok");
    let r = b
        .client()
        .serve(serve_req("users", "UserService", "GetUser"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code_msg(r.status).0, 200);
}

#[tokio::test]
async fn registry_validator_rejects_before_any_lookup() {
    let b = TestNode::start("b", &["users"]).await;
    answer(&b.node, "users", "UserService", "GetUser", "ok");
    answer(&b.node, "users", "UserService", "Secret", "ok");
    b.node
        .set_registry_validator(Some(Arc::new(AllowList::default().allow(
            "users",
            "UserService",
            "GetUser",
        ))));
    let mut client = b.client();
    let r = client
        .serve(serve_req("users", "UserService", "GetUser"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code_msg(r.status).0, 200);
    for (ns, m) in [("users", "Secret"), ("elsewhere", "GetUser")] {
        let r = client
            .serve(serve_req(ns, "UserService", m))
            .await
            .unwrap()
            .into_inner();
        let (code, message) = code_msg(r.status);
        assert_eq!(code, 404);
        assert!(
            message.starts_with("service not registered in registry: "),
            "{message}"
        );
    }
}

#[tokio::test]
async fn registry_validator_set_later_and_removed() {
    let b = TestNode::start("b", &["users"]).await;
    answer(&b.node, "users", "UserService", "GetUser", "ok");
    let mut client = b.client();
    let call = || serve_req("users", "UserService", "GetUser");
    assert_eq!(
        code_msg(client.serve(call()).await.unwrap().into_inner().status).0,
        200
    );
    b.node
        .set_registry_validator(Some(Arc::new(AllowList::default())));
    assert_eq!(
        code_msg(client.serve(call()).await.unwrap().into_inner().status).0,
        404
    );
    b.node.set_registry_validator(None);
    assert_eq!(
        code_msg(client.serve(call()).await.unwrap().into_inner().status).0,
        200
    );
}

#[tokio::test]
async fn registry_over_grpc_validate_method() {
    // r's CollectorRegistry answers from r's own handler table.
    let r = TestNode::start("r", &["users"]).await;
    answer(&r.node, "users", "UserService", "GetUser", "ok");
    let channel = Security::default()
        .endpoint(&r.addr, Duration::from_secs(2))
        .unwrap()
        .connect_lazy();
    let mut registry = CollectorRegistryClient::new(channel);
    let valid = registry
        .validate_method(pb::ValidateMethodRequest {
            namespace: "users".into(),
            service_name: "UserService".into(),
            method_name: "GetUser".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(valid.is_valid);
    assert_eq!(code_msg(valid.status).0, 200);
    let invalid = registry
        .validate_method(pb::ValidateMethodRequest {
            namespace: "users".into(),
            service_name: "UserService".into(),
            method_name: "Drop".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!invalid.is_valid);

    // b validates against r over gRPC.
    let b = TestNode::start("b", &["users"]).await;
    answer(&b.node, "users", "UserService", "GetUser", "ok");
    answer(&b.node, "users", "UserService", "Drop", "ok");
    let validator = GrpcRegistryValidator::new(&r.addr, &Security::default()).unwrap();
    b.node.set_registry_validator(Some(Arc::new(validator)));
    let mut client = b.client();
    let ok = client
        .serve(serve_req("users", "UserService", "GetUser"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code_msg(ok.status).0, 200);
    let rejected = client
        .serve(serve_req("users", "UserService", "Drop"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        code_msg(rejected.status),
        (
            404,
            "service not registered in registry: method 'UserService.Drop' is not registered in namespace 'users'".into()
        )
    );
}

#[tokio::test]
async fn any_payload_round_trips_unchanged() {
    let b = TestNode::start("b", &["users"]).await;
    b.node
        .register_service("users", "Echo", "Echo", |input| async move { Ok(input) });
    let input = prost_types::Any {
        type_url: "type.googleapis.com/some.Message".into(),
        value: vec![0, 159, 146, 150, 255],
    };
    let mut req = serve_req("users", "Echo", "Echo");
    req.input = Some(input.clone());
    let r = b.client().serve(req).await.unwrap().into_inner();
    assert_eq!(r.output, Some(input));
    let _ = any::json("{}");
}
