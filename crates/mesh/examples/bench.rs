//! Loopback benchmark: the same unary call made directly (Serve on node B)
//! and through a hop (Dispatch on node A, forwarded to B as Serve), each by
//! `--callers` concurrent callers for `--seconds`, in one run.
//!
//! ```text
//! cargo run --release -p switchyard-mesh --example bench -- [callers] [seconds]
//! ```
//!
//! Both nodes and the callers share one process and its cores, as they would
//! share a small machine. Callers spread over 4 HTTP/2 connections.

use std::sync::Arc;
use std::time::{Duration, Instant};
use switchyard_mesh::pb::{DispatchRequest, ServeRequest, ServiceTypeRef};
use switchyard_mesh::{any, dial, Client, Dispatcher, Security};
use tokio::net::TcpListener;

const CONNECTIONS: usize = 4;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let callers: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(64);
    let seconds: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(5);

    let la = TcpListener::bind("127.0.0.1:0").await?;
    let lb = TcpListener::bind("127.0.0.1:0").await?;
    let (addr_a, addr_b) = (la.local_addr()?.to_string(), lb.local_addr()?.to_string());
    let a = Dispatcher::new("a", addr_a.clone(), ["bench"]);
    let b = Dispatcher::new("b", addr_b.clone(), ["bench"]);
    b.register_service("bench", "Echo", "Echo", |input| async move { Ok(input) });
    let (ra, rb) = (a.spawn(la), b.spawn(lb));
    a.connect_to(&addr_b, &["bench"]).await?;

    let direct = run(&addr_b, callers, seconds, Call::Serve).await?;
    let hop = run(&addr_a, callers, seconds, Call::Dispatch).await?;
    println!("callers={callers} seconds={seconds} connections={CONNECTIONS}");
    direct.print("direct Serve (client -> B)");
    hop.print("Dispatch hop (client -> A -> B)");
    println!(
        "hop p50 / direct p50 = {:.2}x",
        hop.p50.as_secs_f64() / direct.p50.as_secs_f64()
    );
    ra.shutdown().await?;
    rb.shutdown().await?;
    Ok(())
}

#[derive(Clone, Copy)]
enum Call {
    Serve,
    Dispatch,
}

struct Report {
    calls: usize,
    errors: usize,
    elapsed: Duration,
    p50: Duration,
    p99: Duration,
}

impl Report {
    fn print(&self, name: &str) {
        println!(
            "{name:<34} {:>9.0} calls/s  p50 {:>7.1} µs  p99 {:>7.1} µs  ({} calls, {} errors)",
            self.calls as f64 / self.elapsed.as_secs_f64(),
            self.p50.as_secs_f64() * 1e6,
            self.p99.as_secs_f64() * 1e6,
            self.calls,
            self.errors
        );
    }
}

async fn run(
    addr: &str,
    callers: usize,
    seconds: u64,
    call: Call,
) -> Result<Report, Box<dyn std::error::Error>> {
    let clients: Vec<Client> = (0..CONNECTIONS)
        .map(|_| dial(addr, &Security::default(), Duration::from_secs(2)))
        .collect::<Result<_, _>>()?;
    // Warm up every connection.
    for c in &clients {
        one(&mut c.clone(), call).await;
    }
    let started = Instant::now();
    let end = started + Duration::from_secs(seconds);
    let clients = Arc::new(clients);
    let mut tasks = vec![];
    for i in 0..callers {
        let mut client = clients[i % CONNECTIONS].clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(100_000);
            let mut errors = 0;
            while Instant::now() < end {
                let t = Instant::now();
                if !one(&mut client, call).await {
                    errors += 1;
                }
                latencies.push(t.elapsed());
            }
            (latencies, errors)
        }));
    }
    let mut all = vec![];
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await?;
        all.extend(l);
        errors += e;
    }
    let elapsed = started.elapsed();
    all.sort_unstable();
    let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)];
    Ok(Report {
        calls: all.len(),
        errors,
        elapsed,
        p50: pct(0.50),
        p99: pct(0.99),
    })
}

fn service() -> Option<ServiceTypeRef> {
    Some(ServiceTypeRef {
        namespace: "bench".into(),
        service_name: "Echo".into(),
    })
}

/// One call; true when it answered 200.
async fn one(client: &mut Client, call: Call) -> bool {
    let input = Some(any::json(r#"{"user":42,"action":"ping"}"#));
    let code = match call {
        Call::Serve => client
            .serve(ServeRequest {
                namespace: "bench".into(),
                service: service(),
                method_name: "Echo".into(),
                input,
                execution_context: Default::default(),
            })
            .await
            .ok()
            .and_then(|r| r.into_inner().status.map(|s| s.code)),
        Call::Dispatch => client
            .dispatch(DispatchRequest {
                namespace: "bench".into(),
                service: service(),
                method_name: "Echo".into(),
                input,
                ..Default::default()
            })
            .await
            .ok()
            .and_then(|r| r.into_inner().status.map(|s| s.code)),
    };
    code == Some(200)
}
