//! Two nodes on loopback: `collector-1` serves `users`, `collector-2` serves
//! `orders`; a client asks collector-1 for both and sees who handled each.
//!
//! ```text
//! cargo run -p switchyard-mesh --example two_nodes
//! ```

use std::time::Duration;
use switchyard_mesh::pb::{DispatchRequest, ServiceTypeRef};
use switchyard_mesh::{any, dial, Dispatcher, Security};
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let l1 = TcpListener::bind("127.0.0.1:0").await?;
    let l2 = TcpListener::bind("127.0.0.1:0").await?;
    let (addr1, addr2) = (l1.local_addr()?.to_string(), l2.local_addr()?.to_string());

    let one = Dispatcher::new("collector-1", addr1.clone(), ["users", "orders"]);
    one.register_service("users", "UserService", "GetUser", |input| async move {
        Ok(any::json(&format!(
            r#"{{"user":"ada","asked":{}}}"#,
            any::text(&input)?
        )))
    });
    let two = Dispatcher::new("collector-2", addr2.clone(), ["orders", "inventory"]);
    two.register_service("orders", "OrderService", "CreateOrder", |_| async {
        Ok(any::json(r#"{"order":"created on collector-2"}"#))
    });
    let (run1, run2) = (one.spawn(l1), two.spawn(l2));

    let link = one.connect_to(&addr2, &["users", "orders"]).await?;
    println!("connected: shared namespaces {:?}", link.shared_namespaces);

    let mut client = dial(&addr1, &Security::default(), Duration::from_secs(2))?;
    for (namespace, service, method) in [
        ("users", "UserService", "GetUser"),
        ("orders", "OrderService", "CreateOrder"),
    ] {
        let response = client
            .dispatch(DispatchRequest {
                namespace: namespace.into(),
                service: Some(ServiceTypeRef {
                    namespace: namespace.into(),
                    service_name: service.into(),
                }),
                method_name: method.into(),
                input: Some(any::json(r#"{"id":42}"#)),
                ..Default::default()
            })
            .await?
            .into_inner();
        let status = response.status.unwrap_or_default();
        let output = response
            .output
            .map(|o| String::from_utf8_lossy(&o.value).into_owned())
            .unwrap_or_default();
        println!(
            "{namespace}/{service}.{method}: {} {} handled by {} -> {output}",
            status.code, status.message, response.handled_by_collector_id
        );
    }

    run1.shutdown().await?;
    run2.shutdown().await?;
    Ok(())
}
