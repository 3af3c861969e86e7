//! Loopback benchmark: the same unary call made directly (Serve on node B)
//! and through a hop (Dispatch on node A, forwarded to B as Serve), each by
//! `callers` concurrent callers for `seconds`, in one run.
//!
//! ```text
//! cargo run --release -p switchyard-mesh --example bench -- [callers] [seconds] [layout] [phases] [client] [rounds]
//! ```
//!
//! `client`: how the callers call — `tonic` (default: the generated tonic
//! client over a `Channel`) or `lean` (the mesh's own [`UnaryClient`], the
//! one nodes forward with). Both phases use the same kind; it changes only
//! the callers' share of the CPU, not what the nodes do.
//!
//! `phases`: `both` (default), or only `direct` or `hop` — one phase alone is
//! what an instruction-count profile (`valgrind --tool=callgrind`) wants.
//!
//! `rounds` (default 1): with `both`, each phase's seconds are cut into this
//! many slices, run alternately (direct, hop, direct, hop, ...) and reported
//! together. On a machine whose speed drifts within minutes (a VM), the two
//! phases then see the same conditions, so their ratio measures the hop and
//! not the drift.
//!
//! `layout` says which threads run the callers and the two nodes (the
//! machine this was written for has two cores):
//! - `halves` (default): the callers on a one-worker runtime and both nodes
//!   on another one-worker runtime, so each side has about one core. The
//!   nodes still talk over loopback TCP and HTTP/2 as separate processes
//!   would; they only share the thread that polls them.
//! - `split`: the callers on a one-worker runtime, the nodes on a runtime
//!   with two workers: three busy threads on two cores.
//! - `apart`: the callers and each node on a one-worker runtime of its own,
//!   as three processes run with `--worker-threads 1` would be.
//! - `shared`: the callers are tasks on the nodes' two-worker runtime (the
//!   layout of the first measurements).
//!
//! In every layout but `shared` the callers' thread is told apart, so the
//! nodes' CPU time is reported on its own.
//!
//! Both phases use the same callers, payload, connections and layout. Besides
//! calls/s and latency, each phase reports the CPU time the process used per
//! call (user + system, from `/proc`) and the read/write syscalls per call,
//! in total and for the nodes' threads alone: unlike calls/s, these barely
//! move when other work shares the machine, so they compare runs made under
//! different loads.

use std::sync::Arc;
use std::time::{Duration, Instant};
use switchyard_mesh::pb::{DispatchRequest, ServeRequest, ServiceTypeRef};
use switchyard_mesh::Running;
use switchyard_mesh::{any, dial, CallHeaders, Client, Dispatcher, Security, UnaryClient};
use tokio::net::TcpListener;
use tokio::runtime::{Handle, Runtime};

/// HTTP/2 connections the callers spread over.
const CONNECTIONS: usize = 4;
/// Name of the callers' threads (to tell their CPU time apart).
const CALLER_THREAD: &str = "bench-callers";

#[derive(Clone, Copy, PartialEq)]
enum Layout {
    Halves,
    Split,
    Shared,
    Apart,
}

fn main() -> Result<(), BoxError> {
    let mut args = std::env::args().skip(1);
    let callers: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(64);
    let seconds: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(5);
    let layout = match args.next().as_deref() {
        None | Some("halves") => Layout::Halves,
        Some("split") => Layout::Split,
        Some("shared") => Layout::Shared,
        Some("apart") => Layout::Apart,
        Some(other) => {
            return Err(format!("unknown layout {other:?}: halves, split, shared or apart").into())
        }
    };
    let (run_direct, run_hop) = match args.next().as_deref() {
        None | Some("both") => (true, true),
        Some("direct") => (true, false),
        Some("hop") => (false, true),
        Some(other) => return Err(format!("unknown phases {other:?}: both, direct or hop").into()),
    };
    let lean = match args.next().as_deref() {
        None | Some("tonic") => false,
        Some("lean") => true,
        Some(other) => return Err(format!("unknown client {other:?}: tonic or lean").into()),
    };
    let rounds: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(1);
    if rounds == 0 || rounds > seconds.max(1) * 10 {
        return Err("rounds must be between 1 and ten per second".into());
    }
    let threads = Threads::new(layout)?;
    // The bench's own steps only wait on the others; they run on the
    // callers' runtime.
    threads.callers.block_on(async {
        let (b, addr_b, rb) = threads.node_b.spawn(start("b")).await??;
        let (a, addr_a, ra) = threads.node_a.spawn(start("a")).await??;
        b.register_service("bench", "Echo", "Echo", |input| async move { Ok(input) });
        let connect = {
            let (a, addr_b) = (a.clone(), addr_b.clone());
            async move { a.connect_to(&addr_b, &["bench"]).await }
        };
        threads.node_a.spawn(connect).await??;
        let callers_handle = &threads.callers;

        let name = match layout {
            Layout::Halves => "halves",
            Layout::Split => "split",
            Layout::Shared => "shared",
            Layout::Apart => "apart",
        };
        let kind = if lean { "lean" } else { "tonic" };
        println!(
            "callers={callers} seconds={seconds} connections={CONNECTIONS} layout={name} client={kind} rounds={rounds}"
        );
        // Each slice is a whole run (fresh connections, warmed up, then
        // timed); a phase's report adds up its slices.
        let slice = Duration::from_secs(seconds) / rounds as u32;
        let (mut direct_slices, mut hop_slices) = (vec![], vec![]);
        for _ in 0..rounds {
            if run_direct {
                direct_slices.push(
                    callers_handle
                        .spawn(run(addr_b.clone(), callers, slice, Call::Serve, lean))
                        .await??,
                );
            }
            if run_hop {
                hop_slices.push(
                    callers_handle
                        .spawn(run(addr_a.clone(), callers, slice, Call::Dispatch, lean))
                        .await??,
                );
            }
        }
        let mut direct = None;
        if run_direct {
            let report = Report::merge(direct_slices);
            report.print("direct Serve (client -> B)");
            direct = Some(report);
        }
        if run_hop {
            let hop = Report::merge(hop_slices);
            hop.print("Dispatch hop (client -> A -> B)");
            if let Some(direct) = direct {
                println!(
                    "hop p50 / direct p50 = {:.2}x   hop / direct CPU per call = {:.2}x (nodes only: {:.2}x)",
                    hop.p50.as_secs_f64() / direct.p50.as_secs_f64(),
                    hop.cpu_per_call() / direct.cpu_per_call(),
                    hop.node_cpu_per_call() / direct.node_cpu_per_call(),
                );
            }
        }
        ra.shutdown().await?;
        rb.shutdown().await?;
        Ok::<_, BoxError>(())
    })?;
    drop(threads);
    Ok(())
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A node serving on an ephemeral loopback port, started on the runtime
/// that runs this future (its listener and tasks belong to that runtime).
async fn start(id: &'static str) -> Result<(Dispatcher, String, Running), BoxError> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?.to_string();
    let node = Dispatcher::new(id, addr.clone(), ["bench"]);
    let running = node.spawn(listener);
    Ok((node, addr, running))
}

/// The runtimes of one layout, and which runs what.
struct Threads {
    node_a: Handle,
    node_b: Handle,
    callers: Handle,
    /// Owned here so they live as long as the run.
    _runtimes: Vec<Runtime>,
}

impl Threads {
    fn new(layout: Layout) -> Result<Self, BoxError> {
        let runtime = |workers: usize, name: &str| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(workers)
                .thread_name(name)
                .enable_all()
                .build()
        };
        Ok(match layout {
            Layout::Shared => {
                let nodes = runtime(2, "bench-nodes")?;
                let h = nodes.handle().clone();
                Self::of(h.clone(), h.clone(), h, vec![nodes])
            }
            Layout::Halves | Layout::Split => {
                let workers = if layout == Layout::Halves { 1 } else { 2 };
                let nodes = runtime(workers, "bench-nodes")?;
                let callers = runtime(1, CALLER_THREAD)?;
                let h = nodes.handle().clone();
                Self::of(h.clone(), h, callers.handle().clone(), vec![nodes, callers])
            }
            Layout::Apart => {
                let a = runtime(1, "bench-node-a")?;
                let b = runtime(1, "bench-node-b")?;
                let callers = runtime(1, CALLER_THREAD)?;
                let (ha, hb, hc) = (a.handle(), b.handle(), callers.handle());
                Self::of(ha.clone(), hb.clone(), hc.clone(), vec![a, b, callers])
            }
        })
    }

    fn of(node_a: Handle, node_b: Handle, callers: Handle, runtimes: Vec<Runtime>) -> Self {
        Self {
            node_a,
            node_b,
            callers,
            _runtimes: runtimes,
        }
    }
}

#[derive(Clone, Copy)]
enum Call {
    Serve,
    Dispatch,
}

/// One timed run: every call's latency and what the process used.
struct Slice {
    latencies: Vec<Duration>,
    errors: usize,
    elapsed: Duration,
    used: Usage,
}

struct Report {
    calls: usize,
    errors: usize,
    elapsed: Duration,
    p50: Duration,
    p99: Duration,
    /// CPU time of the whole process during the phase.
    cpu: Duration,
    /// CPU time of every thread but the callers' (in `shared` layout, the
    /// whole process).
    node_cpu: Duration,
    /// Read and write syscalls of the whole process during the phase.
    syscalls: u64,
    /// The same, of the nodes' threads.
    node_syscalls: u64,
}

impl Report {
    /// The slices of one phase as one report: latencies pooled, time and
    /// usage summed.
    fn merge(slices: Vec<Slice>) -> Report {
        let mut all = vec![];
        let (mut errors, mut elapsed, mut used) = (0, Duration::ZERO, Usage::default());
        for s in slices {
            all.extend(s.latencies);
            errors += s.errors;
            elapsed += s.elapsed;
            used = used.plus(s.used);
        }
        all.sort_unstable();
        let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)];
        Report {
            calls: all.len(),
            errors,
            elapsed,
            p50: pct(0.50),
            p99: pct(0.99),
            cpu: used.cpu,
            node_cpu: used.node_cpu,
            syscalls: used.syscalls,
            node_syscalls: used.node_syscalls,
        }
    }

    fn cpu_per_call(&self) -> f64 {
        self.cpu.as_secs_f64() * 1e6 / self.calls as f64
    }

    fn node_cpu_per_call(&self) -> f64 {
        self.node_cpu.as_secs_f64() * 1e6 / self.calls as f64
    }

    fn print(&self, name: &str) {
        println!(
            "{name:<34} {:>7.0} calls/s  p50 {:>7.1} µs  p99 {:>7.1} µs  cpu {:>5.1} µs/call (nodes {:>5.1})  syscalls {:.2}/call (nodes {:.2})  ({} calls, {} errors)",
            self.calls as f64 / self.elapsed.as_secs_f64(),
            self.p50.as_secs_f64() * 1e6,
            self.p99.as_secs_f64() * 1e6,
            self.cpu_per_call(),
            self.node_cpu_per_call(),
            self.syscalls as f64 / self.calls as f64,
            self.node_syscalls as f64 / self.calls as f64,
            self.calls,
            self.errors
        );
    }
}

/// What the process has used so far: CPU time (user + system) and syscalls
/// that read or write (`/proc/<pid>/io`: `syscr` + `syscw`), of the whole
/// process and of its threads other than the callers'. Linux only; zero
/// elsewhere.
#[derive(Clone, Copy, Default)]
struct Usage {
    cpu: Duration,
    node_cpu: Duration,
    syscalls: u64,
    node_syscalls: u64,
}

impl Usage {
    /// What was used between `before` and `self`.
    fn since(self, before: Usage) -> Usage {
        Usage {
            cpu: self.cpu.saturating_sub(before.cpu),
            node_cpu: self.node_cpu.saturating_sub(before.node_cpu),
            syscalls: self.syscalls.saturating_sub(before.syscalls),
            node_syscalls: self.node_syscalls.saturating_sub(before.node_syscalls),
        }
    }

    fn plus(self, other: Usage) -> Usage {
        Usage {
            cpu: self.cpu + other.cpu,
            node_cpu: self.node_cpu + other.node_cpu,
            syscalls: self.syscalls + other.syscalls,
            node_syscalls: self.node_syscalls + other.node_syscalls,
        }
    }
}

fn usage() -> Usage {
    // `/proc` reports clock ticks; 100 per second on every Linux this runs on.
    const TICK: Duration = Duration::from_millis(10);
    let ticks = |stat: &str| -> u64 {
        // Fields after the `(comm)`: state is the 1st, utime the 12th, stime the 13th.
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let f: Vec<&str> = rest.split_whitespace().collect();
        let n = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        n(11) + n(12)
    };
    let syscalls = |io: &str| -> u64 {
        io.lines()
            .filter_map(|l| l.split_once(": "))
            .filter(|(k, _)| *k == "syscr" || *k == "syscw")
            .filter_map(|(_, v)| v.trim().parse::<u64>().ok())
            .sum()
    };
    let read = |path: std::path::PathBuf| std::fs::read_to_string(path).unwrap_or_default();
    let total = ticks(&read("/proc/self/stat".into()));
    let total_sys = syscalls(&read("/proc/self/io".into()));
    let (mut callers, mut callers_sys) = (0, 0);
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for task in tasks.flatten() {
            if read(task.path().join("comm")).trim_end() == CALLER_THREAD {
                callers += ticks(&read(task.path().join("stat")));
                callers_sys += syscalls(&read(task.path().join("io")));
            }
        }
    }
    Usage {
        cpu: TICK * total as u32,
        node_cpu: TICK * total.saturating_sub(callers) as u32,
        syscalls: total_sys,
        node_syscalls: total_sys.saturating_sub(callers_sys),
    }
}

async fn run(
    addr: String,
    callers: usize,
    length: Duration,
    call: Call,
    lean: bool,
) -> Result<Slice, BoxError> {
    let clients: Vec<Caller> = (0..CONNECTIONS)
        .map(|_| -> Result<Caller, BoxError> {
            Ok(if lean {
                Caller::Lean(Arc::new(UnaryClient::new(
                    &addr,
                    None,
                    Duration::from_secs(2),
                    4 * 1024 * 1024,
                )?))
            } else {
                Caller::Tonic(dial(&addr, &Security::default(), Duration::from_secs(2))?)
            })
        })
        .collect::<Result<_, _>>()?;
    // Warm up every connection.
    for c in &clients {
        one(&mut c.clone(), call).await;
    }
    let before = usage();
    let started = Instant::now();
    let end = started + length;
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
    Ok(Slice {
        latencies: all,
        errors,
        elapsed,
        used: usage().since(before),
    })
}

fn service() -> Option<ServiceTypeRef> {
    Some(ServiceTypeRef {
        namespace: "bench".into(),
        service_name: "Echo".into(),
    })
}

/// A caller's client.
#[derive(Clone)]
enum Caller {
    Tonic(Client),
    Lean(Arc<UnaryClient>),
}

/// One call; true when it answered 200.
async fn one(client: &mut Caller, call: Call) -> bool {
    let client = match client {
        Caller::Tonic(c) => c,
        Caller::Lean(c) => return one_lean(c, call).await,
    };
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

/// One call with the lean client, of the same request as [`one`].
async fn one_lean(client: &UnaryClient, call: Call) -> bool {
    let input = Some(any::json(r#"{"user":42,"action":"ping"}"#));
    let headers = CallHeaders::default();
    let code = match call {
        Call::Serve => client
            .serve(
                &ServeRequest {
                    namespace: "bench".into(),
                    service: service(),
                    method_name: "Echo".into(),
                    input,
                    execution_context: Default::default(),
                },
                &headers,
            )
            .await
            .ok()
            .and_then(|r| r.status.map(|s| s.code)),
        Call::Dispatch => client
            .dispatch(
                &DispatchRequest {
                    namespace: "bench".into(),
                    service: service(),
                    method_name: "Echo".into(),
                    input,
                    ..Default::default()
                },
                &headers,
            )
            .await
            .ok()
            .and_then(|r| r.status.map(|s| s.code)),
    };
    code == Some(200)
}
