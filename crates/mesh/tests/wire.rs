//! The wire contract pinned byte by byte: field numbers and wire types of
//! every message as the original protobuf has them, and the gRPC paths, so
//! that a change to the `.proto` cannot silently break original clients.

mod common;

use common::*;
use prost::Message;
use std::collections::HashMap;
use switchyard_mesh::pb;

/// `(field number, wire type)` pairs.
type Fields = Vec<(u64, u64)>;

/// `(field number, wire type)` of every top-level field in an encoding.
fn fields(bytes: &[u8]) -> Fields {
    fn varint(b: &[u8], i: &mut usize) -> u64 {
        let (mut v, mut shift) = (0u64, 0);
        loop {
            let byte = b[*i];
            *i += 1;
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return v;
            }
            shift += 7;
        }
    }
    let (mut out, mut i) = (vec![], 0);
    while i < bytes.len() {
        let key = varint(bytes, &mut i);
        let (field, wire) = (key >> 3, key & 7);
        match wire {
            0 => {
                varint(bytes, &mut i);
            }
            2 => {
                let len = varint(bytes, &mut i) as usize;
                i += len;
            }
            other => panic!("unexpected wire type {other}"),
        }
        out.push((field, wire));
    }
    out.dedup();
    out
}

const VARINT: u64 = 0;
const LEN: u64 = 2;

fn any() -> Option<prost_types::Any> {
    Some(prost_types::Any {
        type_url: "t".into(),
        value: vec![1],
    })
}

fn map() -> HashMap<String, String> {
    HashMap::from([("k".to_string(), "v".to_string())])
}

fn status() -> Option<pb::Status> {
    Some(pb::Status {
        code: 404,
        message: "m".into(),
        details: map(),
    })
}

#[test]
fn field_numbers_and_types_match_the_original() {
    let svc = Some(pb::ServiceTypeRef {
        namespace: "n".into(),
        service_name: "s".into(),
    });
    let cases: Vec<(&str, Vec<u8>, Fields)> = vec![
        (
            "ServiceTypeRef",
            svc.clone().unwrap().encode_to_vec(),
            vec![(1, LEN), (2, LEN)],
        ),
        (
            "Status",
            status().unwrap().encode_to_vec(),
            vec![(1, VARINT), (2, LEN), (3, LEN)],
        ),
        (
            "ServeRequest",
            pb::ServeRequest {
                namespace: "n".into(),
                service: svc.clone(),
                method_name: "m".into(),
                input: any(),
                execution_context: map(),
            }
            .encode_to_vec(),
            vec![(1, LEN), (2, LEN), (3, LEN), (4, LEN), (5, LEN)],
        ),
        (
            "ServeResponse",
            pb::ServeResponse {
                status: status(),
                output: any(),
                executor_id: "e".into(),
            }
            .encode_to_vec(),
            vec![(1, LEN), (2, LEN), (3, LEN)],
        ),
        (
            "ConnectRequest",
            pb::ConnectRequest {
                address: "a".into(),
                namespaces: vec!["x".into()],
                metadata: map(),
            }
            .encode_to_vec(),
            vec![(1, LEN), (2, LEN), (3, LEN)],
        ),
        (
            "ConnectResponse",
            pb::ConnectResponse {
                status: status(),
                connection_id: "c".into(),
                shared_namespaces: vec!["x".into()],
                target_collector_id: "t".into(),
            }
            .encode_to_vec(),
            vec![(1, LEN), (2, LEN), (3, LEN), (4, LEN)],
        ),
        (
            "DispatchRequest",
            pb::DispatchRequest {
                namespace: "n".into(),
                service: svc.clone(),
                method_name: "m".into(),
                input: any(),
                target_collector_id: "t".into(),
                routing_hints: map(),
            }
            .encode_to_vec(),
            vec![(1, LEN), (2, LEN), (3, LEN), (4, LEN), (5, LEN), (6, LEN)],
        ),
        (
            "DispatchResponse",
            pb::DispatchResponse {
                status: status(),
                output: any(),
                handled_by_collector_id: "h".into(),
            }
            .encode_to_vec(),
            vec![(1, LEN), (2, LEN), (3, LEN)],
        ),
        (
            "ValidateMethodRequest",
            pb::ValidateMethodRequest {
                namespace: "n".into(),
                service_name: "s".into(),
                method_name: "m".into(),
            }
            .encode_to_vec(),
            vec![(1, LEN), (2, LEN), (3, LEN)],
        ),
        (
            "ValidateMethodResponse",
            pb::ValidateMethodResponse {
                status: status(),
                is_valid: true,
                message: "m".into(),
            }
            .encode_to_vec(),
            vec![(1, LEN), (2, VARINT), (3, LEN)],
        ),
        (
            "Metadata",
            pb::Metadata {
                created_at: Some(prost_types::Timestamp::default()),
                updated_at: Some(prost_types::Timestamp::default()),
                labels: map(),
            }
            .encode_to_vec(),
            vec![(1, LEN), (2, LEN), (3, LEN)],
        ),
    ];
    for (name, bytes, want) in cases {
        assert_eq!(fields(&bytes), want, "{name}");
    }
    // HTTP-style codes go on the wire as plain varints.
    assert_eq!(&status().unwrap().encode_to_vec()[..3], &[0x08, 0x94, 0x03]);
    assert_eq!(pb::status::Code::DataLoss as i32, 14);
}

/// A raw unary call on the exact path, as any gRPC stack would make it.
async fn raw<Req, Resp>(addr: &str, path: &'static str, request: Req) -> Resp
where
    Req: Message + Send + Sync + 'static,
    Resp: Message + Default + Send + Sync + 'static,
{
    let channel = switchyard_mesh::Security::default()
        .endpoint(addr, std::time::Duration::from_secs(2))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let codec = tonic_prost::ProstCodec::<Req, Resp>::default();
    grpc.unary(
        tonic::Request::new(request),
        tonic::codegen::http::uri::PathAndQuery::from_static(path),
        codec,
    )
    .await
    .unwrap()
    .into_inner()
}

#[tokio::test]
async fn grpc_paths_are_the_originals() {
    let b = TestNode::start("b", &["users"]).await;
    answer(&b.node, "users", "UserService", "GetUser", "ok");
    let r: pb::ServeResponse = raw(
        &b.addr,
        "/collector.CollectiveDispatcher/Serve",
        serve_req("users", "UserService", "GetUser"),
    )
    .await;
    assert_eq!(code_msg(r.status).0, 200);
    let r: pb::DispatchResponse = raw(
        &b.addr,
        "/collector.CollectiveDispatcher/Dispatch",
        dispatch_req("users", "UserService", "GetUser"),
    )
    .await;
    assert_eq!(r.handled_by_collector_id, "b");
    let r: pb::ConnectResponse = raw(
        &b.addr,
        "/collector.CollectiveDispatcher/Connect",
        pb::ConnectRequest::default(),
    )
    .await;
    assert_eq!(code_msg(r.status), (400, "address is required".into()));
    let r: pb::ValidateMethodResponse = raw(
        &b.addr,
        "/collector.CollectorRegistry/ValidateMethod",
        pb::ValidateMethodRequest {
            namespace: "users".into(),
            service_name: "UserService".into(),
            method_name: "GetUser".into(),
        },
    )
    .await;
    assert!(r.is_valid);
}
