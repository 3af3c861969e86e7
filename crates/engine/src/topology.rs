//! A pipeline graph: named sources, transforms and sinks wired by `inputs`
//! (fan-out and fan-in), run as one router task per source and one dispatch
//! loop per sink.
//!
//! ```text
//! source ─▶ intake ─▶ router ─┬─▶ transform ─▶ … ─▶ sink buffer ─▶ dispatch ─▶ sink
//!                             └─▶ sink buffer ─▶ dispatch ─▶ sink
//! ```
//!
//! Transforms are synchronous and cheap, so they run inside the router of the
//! source whose event they see, not as tasks of their own: no extra queue, no
//! extra copy. A transform read by several sources is shared (`Arc`). An event
//! that reaches several consumers is copied with [`Event::fan_out`], so its
//! source learns one fate (the worst) once every copy is settled.
//!
//! Each sink has its own bounded buffer ([`crate::buffer`]): a slow sink fills
//! its own buffer first. When that buffer is full, its `when_full` decides:
//! `block` holds the router (and so the sources that feed this sink — the
//! other sinks of those sources wait too, which is what keeps `block`
//! lossless), the `drop_*` policies discard and count.
//!
//! A stop drains every sink; [`Pipeline::cutoff`] bounds it: once triggered,
//! the sink loops abandon what they have not delivered (see
//! [`crate::shutdown`]).

use crate::buffer::{buffer, BufferConfig, BufferStats, IntakeReceiver, IntakeSender};
use crate::counters::Counters;
use crate::delivery::DeliveryStats;
use crate::disk_buffer::{DiskBuffer, DiskBufferConfig, DiskBufferHandle, StatsSnapshot};
use crate::dispatch::{run_sink, SinkPolicy, Stop};
use crate::shutdown::Cutoff;
use prometheus_client::metrics::histogram::Histogram;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;
use switchyard_core::{Event, Fate, Sink, Transform, Verdict};
use tokio::task::JoinHandle;

/// A transform of the graph.
pub struct TransformNode {
    /// Unique name.
    pub name: String,
    /// Names of the sources or transforms it reads.
    pub inputs: Vec<String>,
    /// The step.
    pub transform: Arc<dyn Transform>,
}

/// A sink of the graph.
pub struct SinkNode {
    /// Unique name.
    pub name: String,
    /// Names of the sources or transforms it reads.
    pub inputs: Vec<String>,
    /// The sink.
    pub sink: Box<dyn Sink>,
    /// Its buffer.
    pub buffer: BufferConfig,
    /// Its batching, delivery stack and dead-letter queue.
    pub policy: SinkPolicy,
    /// A disk buffer in front of its memory buffer: an event is accepted
    /// for this sink only once it is on disk.
    pub disk: Option<DiskBufferConfig>,
}

/// The graph's shape, checked: every name unique, every input known, no
/// cycle, every sink fed.
#[derive(Debug, Default)]
pub struct Shape {
    /// Source names.
    pub sources: Vec<String>,
    /// Transform name → inputs.
    pub transforms: Vec<(String, Vec<String>)>,
    /// Sink name → inputs.
    pub sinks: Vec<(String, Vec<String>)>,
}

/// Where an event goes after a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Transform(usize),
    Sink(usize),
}

impl Shape {
    /// Every problem of the wiring, each naming the component and key at
    /// fault (`sinks.<name>.inputs`, …). Empty when the graph can run.
    pub fn check(&self) -> Vec<String> {
        let mut errors = Vec::new();
        let mut kinds: BTreeMap<&str, &str> = BTreeMap::new();
        let all = self
            .sources
            .iter()
            .map(|n| ("sources", n))
            .chain(self.transforms.iter().map(|(n, _)| ("transforms", n)))
            .chain(self.sinks.iter().map(|(n, _)| ("sinks", n)));
        for (kind, name) in all {
            if let Some(first) = kinds.insert(name, kind) {
                errors.push(format!(
                    "{kind}.{name}: the name `{name}` is already used by {first}.{name}"
                ));
            }
        }
        let readable = |name: &str| matches!(kinds.get(name), Some(&"sources" | &"transforms"));
        for (kind, list) in [("transforms", &self.transforms), ("sinks", &self.sinks)] {
            for (name, inputs) in list.iter() {
                if inputs.is_empty() {
                    errors.push(format!(
                        "{kind}.{name}.inputs: at least one input is required"
                    ));
                }
                for input in inputs {
                    if !readable(input) {
                        let why = match kinds.get(input.as_str()) {
                            Some(_) => "is a sink, which has no output",
                            None => "is not a source or transform",
                        };
                        errors.push(format!("{kind}.{name}.inputs: `{input}` {why}"));
                    }
                }
            }
        }
        if self.sources.is_empty() {
            errors.push("sources: at least one source is required".into());
        }
        if self.sinks.is_empty() {
            errors.push("sinks: at least one sink is required".into());
        }
        if errors.is_empty() {
            if let Some(name) = self.cycle() {
                errors.push(format!(
                    "transforms.{name}.inputs: the transforms form a cycle through `{name}`"
                ));
            }
        }
        errors
    }

    /// A transform on a cycle, if any (depth-first search over inputs).
    fn cycle(&self) -> Option<String> {
        let inputs: BTreeMap<&str, &Vec<String>> = self
            .transforms
            .iter()
            .map(|(n, i)| (n.as_str(), i))
            .collect();
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            Visiting,
            Done,
        }
        fn visit<'a>(
            n: &'a str,
            inputs: &BTreeMap<&'a str, &'a Vec<String>>,
            marks: &mut BTreeMap<&'a str, Mark>,
        ) -> Option<String> {
            match marks.get(n) {
                Some(Mark::Done) => return None,
                Some(Mark::Visiting) => return Some(n.to_string()),
                None => {}
            }
            marks.insert(n, Mark::Visiting);
            for i in inputs.get(n).into_iter().flat_map(|v| v.iter()) {
                if inputs.contains_key(i.as_str()) {
                    if let Some(c) = visit(i, inputs, marks) {
                        return Some(c);
                    }
                }
            }
            marks.insert(n, Mark::Done);
            None
        }
        let mut marks = BTreeMap::new();
        for n in inputs.keys() {
            if let Some(c) = visit(n, &inputs, &mut marks) {
                return Some(c);
            }
        }
        None
    }

    /// The sinks that events of node `from` can reach, in sink order. For a
    /// checked shape (no cycle).
    pub fn sinks_fed_by(&self, from: &str) -> Vec<&str> {
        let consumers = self.consumers();
        let mut reached = BTreeSet::new();
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.to_string()];
        while let Some(node) = todo.pop() {
            for target in consumers.get(&node).into_iter().flatten() {
                match *target {
                    Target::Sink(i) => {
                        reached.insert(i);
                    }
                    Target::Transform(i) => {
                        if seen.insert(i) {
                            todo.push(self.transforms[i].0.clone());
                        }
                    }
                }
            }
        }
        reached
            .into_iter()
            .map(|i| self.sinks[i].0.as_str())
            .collect()
    }

    /// Consumers of each node, by name.
    fn consumers(&self) -> BTreeMap<String, Vec<Target>> {
        let mut out: BTreeMap<String, Vec<Target>> = BTreeMap::new();
        for (i, (_, inputs)) in self.transforms.iter().enumerate() {
            for input in inputs.iter().collect::<BTreeSet<_>>() {
                out.entry(input.clone())
                    .or_default()
                    .push(Target::Transform(i));
            }
        }
        for (i, (_, inputs)) in self.sinks.iter().enumerate() {
            for input in inputs.iter().collect::<BTreeSet<_>>() {
                out.entry(input.clone()).or_default().push(Target::Sink(i));
            }
        }
        out
    }
}

/// Figures of one source's router.
#[derive(Debug, Default)]
pub struct SourceStats {
    /// Events taken from the source.
    pub received: AtomicU64,
    /// Event copies a transform filtered out or that reached no consumer.
    pub filtered: AtomicU64,
    /// Event copies dropped because their sink's loop had stopped (only
    /// after a panic).
    pub dropped: AtomicU64,
}

/// What a running sink exposes.
pub struct SinkHandle {
    /// Name.
    pub name: String,
    /// Its buffer's figures.
    pub buffer: Arc<BufferStats>,
    /// Its engine's ledger.
    pub counters: Arc<Counters>,
    /// Its delivery stack's figures (breaker, retries, dead letters).
    pub delivery: Arc<DeliveryStats>,
    /// Its disk buffer's figures, if it has one.
    pub disk: Option<DiskStatsFn>,
}

/// Reads a disk buffer's figures at any time.
pub type DiskStatsFn = Arc<dyn Fn() -> StatsSnapshot + Send + Sync>;

/// What a running source exposes.
pub struct SourceHandle {
    /// Name.
    pub name: String,
    /// Where the source writes; drop every clone to stop the pipeline.
    pub sender: IntakeSender,
    /// Its router's figures.
    pub stats: Arc<SourceStats>,
}

/// Optional histograms observed by the running graph, by component name.
#[derive(Default, Clone)]
pub struct Observers {
    /// Time each source chunk spent in the transforms.
    pub processing: BTreeMap<String, Histogram>,
    /// Time chunks waited in each sink's buffer.
    pub queue_wait: BTreeMap<String, Histogram>,
    /// Time of each delivery attempt, by sink.
    pub delivery: BTreeMap<String, Histogram>,
    /// Time of each batch, retries included, by sink.
    pub worker_task: BTreeMap<String, Histogram>,
}

/// A sink whose every attempt is timed.
struct Timed {
    inner: Box<dyn Sink>,
    attempts: Histogram,
}

#[async_trait::async_trait]
impl Sink for Timed {
    async fn send(&self, events: &[Event]) -> Result<(), switchyard_core::SinkError> {
        let started = Instant::now();
        let result = self.inner.send(events).await;
        self.attempts.observe(started.elapsed().as_secs_f64());
        result
    }

    async fn close(&self) -> Result<(), switchyard_core::SinkError> {
        self.inner.close().await
    }
}

/// A running pipeline.
pub struct Pipeline {
    /// One per source, in configuration order.
    pub sources: Vec<SourceHandle>,
    /// One per sink, in configuration order.
    pub sinks: Vec<SinkHandle>,
    routers: Vec<JoinHandle<()>>,
    engines: Vec<JoinHandle<()>>,
    disks: Vec<(String, DiskBufferHandle)>,
    cutoff: Cutoff,
    /// Events routers gave up on at the cutoff (see [`Pipeline::cutoff`]).
    lost_in_routers: Arc<AtomicU64>,
}

impl Pipeline {
    /// Start routers and sink loops. `source_queue` bounds each source's own
    /// intake. The shape must have passed [`Shape::check`].
    pub fn start(
        source_names: Vec<String>,
        source_queue: usize,
        transforms: Vec<TransformNode>,
        sinks: Vec<SinkNode>,
        observers: Observers,
    ) -> Result<Pipeline, Vec<String>> {
        let shape = Shape {
            sources: source_names.clone(),
            transforms: transforms
                .iter()
                .map(|t| (t.name.clone(), t.inputs.clone()))
                .collect(),
            sinks: sinks
                .iter()
                .map(|s| (s.name.clone(), s.inputs.clone()))
                .collect(),
        };
        let errors = shape.check();
        if !errors.is_empty() {
            return Err(errors);
        }
        let consumers = shape.consumers();
        let graph = Arc::new(Graph {
            transforms: transforms
                .iter()
                .map(|t| {
                    (
                        t.transform.clone(),
                        consumers.get(&t.name).cloned().unwrap_or_default(),
                    )
                })
                .collect(),
        });

        let cutoff = Cutoff::new();
        let lost_in_routers = Arc::new(AtomicU64::new(0));
        let mut disk_backed = Vec::new();
        let mut sink_handles = Vec::new();
        let mut sink_senders = Vec::new();
        let mut engines = Vec::new();
        let mut disks = Vec::new();
        for node in sinks {
            let on_disk = node.disk.is_some();
            disk_backed.push(on_disk);
            let mut disk_stats: Option<DiskStatsFn> = None;
            let wait = observers.queue_wait.get(&node.name).cloned();
            let (tx, rx) = buffer(node.buffer, wait);
            let stats = tx.stats();
            let tx = match node.disk {
                None => tx,
                Some(config) => {
                    let dir = config.dir.display().to_string();
                    let opened = DiskBuffer::open(config)
                        .map_err(|e| vec![format!("sinks.{}.buffer: {e}", node.name)])?;
                    let (disk_tx, handle) = opened.start(tx).map_err(|e| {
                        vec![format!(
                            "sinks.{}.buffer: cannot start the disk buffer in `{dir}`: {e}",
                            node.name
                        )]
                    })?;
                    disk_stats = Some(Arc::new(handle.stats_fn()));
                    disks.push((node.name.clone(), handle));
                    // Routers append chunk after chunk; acknowledging
                    // sources wait for the tokens, which the sync resolves.
                    disk_tx.pipelined()
                }
            };
            let counters = Arc::new(match observers.worker_task.get(&node.name) {
                Some(h) => Counters::with_worker_histogram(h.clone()),
                None => Counters::default(),
            });
            let sink: Box<dyn Sink> = match observers.delivery.get(&node.name) {
                Some(h) => Box::new(Timed {
                    inner: node.sink,
                    attempts: h.clone(),
                }),
                None => node.sink,
            };
            let delivery = Arc::new(DeliveryStats::default());
            sink_handles.push(SinkHandle {
                name: node.name,
                buffer: stats,
                counters: counters.clone(),
                delivery: delivery.clone(),
                disk: disk_stats,
            });
            sink_senders.push(tx);
            engines.push(tokio::spawn(run_sink(
                rx,
                Arc::from(sink),
                node.policy,
                counters,
                delivery,
                Stop {
                    cutoff: cutoff.clone(),
                    on_disk,
                },
            )));
        }

        let mut source_handles = Vec::new();
        let mut routers = Vec::new();
        for name in source_names {
            let (tx, rx) = crate::buffer::intake(source_queue);
            let stats = Arc::new(SourceStats::default());
            let router = Router {
                graph: graph.clone(),
                first: consumers.get(&name).cloned().unwrap_or_default(),
                sinks: sink_senders.clone(),
                on_disk: disk_backed.clone(),
                cutoff: cutoff.clone(),
                lost: lost_in_routers.clone(),
                stats: stats.clone(),
                processing: observers.processing.get(&name).cloned(),
            };
            routers.push(tokio::spawn(router.run(rx)));
            source_handles.push(SourceHandle {
                name,
                sender: tx,
                stats,
            });
        }
        // Routers hold the only sink senders now: once every router ends, the
        // sink loops drain and stop.
        drop(sink_senders);
        Ok(Pipeline {
            sources: source_handles,
            sinks: sink_handles,
            routers,
            engines,
            disks,
            cutoff,
            lost_in_routers,
        })
    }

    /// Events the routers gave up on at the cutoff: they were waiting for
    /// room in a full disk buffer, which a sink that is down never frees.
    pub fn lost_in_routers(&self) -> Arc<AtomicU64> {
        self.lost_in_routers.clone()
    }

    /// The stop's deadline: trigger it to make every sink give up delivering
    /// and abandon what it still holds (kept on its disk buffer, else
    /// dead-lettered with the reason `shutdown`, else counted as lost).
    pub fn cutoff(&self) -> Cutoff {
        self.cutoff.clone()
    }

    /// The sender of the source called `name`.
    pub fn sender(&self, name: &str) -> Option<IntakeSender> {
        self.sources
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.sender.clone())
    }

    /// Wait until every source sender is gone, then every sink has drained
    /// and closed. The pipeline's own copies of the senders are dropped here.
    /// Returns the final figures of each sink's disk buffer, by sink name.
    pub async fn finish(self) -> Vec<(String, StatsSnapshot)> {
        let Pipeline {
            sources,
            routers,
            engines,
            disks,
            ..
        } = self;
        drop(sources);
        for r in routers {
            let _ = r.await;
        }
        for e in engines {
            let _ = e.await;
        }
        // Wait for the last acknowledgements and persist each disk buffer's
        // pointer; what is still unacknowledged is delivered at the next start.
        let mut finals = Vec::new();
        for (name, d) in disks {
            finals.push((name, d.finish(std::time::Duration::from_secs(10)).await));
        }
        finals
    }
}

struct Graph {
    /// Each transform and its consumers.
    transforms: Vec<(Arc<dyn Transform>, Vec<Target>)>,
}

struct Router {
    graph: Arc<Graph>,
    first: Vec<Target>,
    sinks: Vec<IntakeSender>,
    /// Per sink: it has a disk buffer.
    on_disk: Vec<bool>,
    cutoff: Cutoff,
    lost: Arc<AtomicU64>,
    stats: Arc<SourceStats>,
    processing: Option<Histogram>,
}

impl Router {
    async fn run(self, mut rx: IntakeReceiver) {
        let mut out: Vec<Vec<Event>> = vec![Vec::new(); self.sinks.len()];
        while let Some(chunk) = rx.recv().await {
            self.stats.received.fetch_add(chunk.len() as u64, Relaxed);
            let started = Instant::now();
            for event in chunk {
                self.route(event, &self.first, &mut out);
            }
            if let Some(h) = &self.processing {
                h.observe(started.elapsed().as_secs_f64());
            }
            for (i, events) in out.iter_mut().enumerate() {
                if events.is_empty() {
                    continue;
                }
                let events = std::mem::take(events);
                let n = events.len() as u64;
                let sent = if self.on_disk[i] {
                    // An append waits for room in the disk buffer, which a
                    // sink that is down never gives back: at the cutoff the
                    // wait ends and the events (not on disk, so not
                    // acknowledged to their sources) are counted as lost.
                    tokio::select! {
                        biased;
                        sent = self.sinks[i].send(events) => Some(sent),
                        _ = self.cutoff.reached() => None,
                    }
                } else {
                    // The sink loop drains its memory buffer even after the
                    // cutoff, so this wait ends.
                    Some(self.sinks[i].send(events).await)
                };
                let Some(sent) = sent else {
                    self.lost.fetch_add(n, Relaxed);
                    tracing::error!(
                        events = n,
                        "shutdown deadline: events not written to a full disk buffer; lost (their sources were not told they were accepted)"
                    );
                    continue;
                };
                if let Err(e) = sent {
                    // Only when a sink loop is gone (a panic): the events are
                    // lost, and their sources learn it.
                    let events = match e {
                        crate::buffer::SendError::Full(v) | crate::buffer::SendError::Closed(v) => {
                            v
                        }
                    };
                    tracing::error!(
                        events = events.len(),
                        "a sink loop has stopped; events dropped"
                    );
                    self.stats.dropped.fetch_add(events.len() as u64, Relaxed);
                    for mut ev in events {
                        ev.resolve(Fate::Dropped);
                    }
                }
            }
        }
    }

    /// Pass `event` to each of `targets` (a copy each), depth first.
    fn route(&self, event: Event, targets: &[Target], out: &mut [Vec<Event>]) {
        match targets.len() {
            0 => {
                let mut event = event;
                self.stats.filtered.fetch_add(1, Relaxed);
                event.resolve(Fate::Filtered);
            }
            1 => self.visit(event, targets[0], out),
            n => {
                for (copy, &t) in event.fan_out(n).into_iter().zip(targets) {
                    self.visit(copy, t, out);
                }
            }
        }
    }

    fn visit(&self, mut event: Event, target: Target, out: &mut [Vec<Event>]) {
        match target {
            Target::Sink(i) => out[i].push(event),
            Target::Transform(i) => {
                let (transform, next) = &self.graph.transforms[i];
                if transform.apply(&mut event) == Verdict::Filter {
                    self.stats.filtered.fetch_add(1, Relaxed);
                    event.resolve(Fate::Filtered);
                    return;
                }
                self.route(event, next, out);
            }
        }
    }
}
