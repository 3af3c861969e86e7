//! The node's event pipeline: what `publish` handlers send enters a source
//! called `publish` and goes to one sink, on the same engine as
//! `switchyard run` ([`switchyard_engine::topology`]). So a node's events
//! get what any pipeline's get: the sink's bounded buffer, the delivery
//! stack (rate limit, concurrency, circuit breaker, retries, timeout), the
//! dead-letter queue, and the `dispatcher_*` series on the node's `/metrics`.

use super::config::PublishPipeline;
use anyhow::Context;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use switchyard_core::SinkConfig;
use switchyard_engine::metrics::Metrics;
use switchyard_engine::topology::{Observers, Pipeline, SinkNode, SourceStats};
use switchyard_engine::{BufferConfig, Counters, CountersSnapshot, Dlq, SinkPolicy};
use tracing::info;

/// The name of the pipeline's one source, as in metrics.
pub const SOURCE: &str = "publish";

/// The running pipeline and what reports on it.
pub struct NodeEvents {
    /// The graph: `publish` → the sink.
    pub pipeline: Pipeline,
    /// Its `dispatcher_*` series.
    pub metrics: Arc<Metrics>,
}

impl NodeEvents {
    /// Build the sink of `config` and start the graph. `id` names the
    /// default file of the `file` sink (`<id>-events.jsonl`).
    pub fn start(id: &str, config: &PublishPipeline) -> anyhow::Result<Self> {
        let sink = build_sink(id, config)?;
        let dlq = open_dlq(config)?;
        let metrics = Arc::new(Metrics::new());
        let name = config.sink.clone();
        let mut observers = Observers::default();
        observers
            .processing
            .insert(SOURCE.into(), metrics.processing(SOURCE));
        observers
            .queue_wait
            .insert(name.clone(), metrics.queue_wait(&name));
        observers
            .delivery
            .insert(name.clone(), metrics.delivery(&name));
        observers
            .worker_task
            .insert(name.clone(), metrics.worker_task(&name));
        // `queue_capacity` bounds the events in memory, split as the
        // dispatcher's `--queue-capacity` is: an eighth in the source's own
        // queue (where a `publish` call waits for room), the rest in the
        // sink's buffer, the one that fills while the sink is slow.
        let source_queue = (config.queue_capacity / 8).max(1);
        let sink_buffer = config.queue_capacity.saturating_sub(source_queue).max(1);
        let node = SinkNode {
            name: name.clone(),
            inputs: vec![SOURCE.into()],
            sink,
            buffer: BufferConfig::events(sink_buffer),
            policy: SinkPolicy {
                batch_size: config.batch_size,
                flush_interval: config.flush_interval,
                delivery: config.delivery.clone(),
                sink_name: name,
                dlq: dlq.clone(),
            },
            disk: None,
        };
        let pipeline = Pipeline::start(
            vec![SOURCE.into()],
            source_queue,
            vec![],
            vec![node],
            observers,
        )
        .map_err(|errors| anyhow::anyhow!("key `pipeline`: {}", errors.join("; ")))?;
        metrics.add_source(&pipeline.sources[0]);
        metrics.add_sink(&pipeline.sinks[0]);
        if let Some(dlq) = dlq {
            metrics.add_extra(switchyard_engine::dlq::metrics::extra(dlq));
        }
        Ok(Self { pipeline, metrics })
    }

    /// The ledger of the whole pipeline: events taken in and filtered (by
    /// the source's router), and their fates at the sink.
    pub fn ledger(&self) -> Ledger {
        Ledger {
            source: self.pipeline.sources[0].stats.clone(),
            sink: self.pipeline.sinks[0].counters.clone(),
        }
    }
}

/// Reads the pipeline's figures at any time, even once it has finished.
#[derive(Clone)]
pub struct Ledger {
    source: Arc<SourceStats>,
    sink: Arc<Counters>,
}

impl Ledger {
    /// The figures now.
    pub fn snapshot(&self) -> CountersSnapshot {
        CountersSnapshot {
            received: self.source.received.load(Relaxed),
            filtered: self.source.filtered.load(Relaxed),
            ..self.sink.snapshot()
        }
    }

    /// The `switchyard_node_events_total` family, in OpenMetrics text.
    pub fn families(&self) -> String {
        let s = self.snapshot();
        format!(
            "# HELP switchyard_node_events Events of the node's pipeline, by fate.\n\
             # TYPE switchyard_node_events counter\n\
             switchyard_node_events_total{{fate=\"received\"}} {}\n\
             switchyard_node_events_total{{fate=\"sent\"}} {}\n\
             switchyard_node_events_total{{fate=\"filtered\"}} {}\n\
             switchyard_node_events_total{{fate=\"dropped\"}} {}\n\
             switchyard_node_events_total{{fate=\"dead_lettered\"}} {}\n",
            s.received, s.sent, s.filtered, s.dropped, s.dead_lettered
        )
    }
}

/// The sink of `pipeline.sink`, with its endpoint (for `file`, by default
/// `<id>-events.jsonl`) and `sync`.
fn build_sink(
    id: &str,
    config: &PublishPipeline,
) -> anyhow::Result<Box<dyn switchyard_core::Sink>> {
    let mut options = SinkConfig::new();
    let endpoint = config
        .endpoint
        .clone()
        .or_else(|| (config.sink == "file").then(|| format!("{id}-events.jsonl")));
    if let Some(e) = endpoint {
        options.offer("endpoint", e, "pipeline.endpoint");
    }
    options.offer("sync", config.sync.to_string(), "pipeline.sync");
    switchyard_sinks::builtin()
        .build(&config.sink, &options)
        .map_err(anyhow::Error::msg)
        .with_context(|| format!("key `pipeline.sink`: cannot start sink `{}`", config.sink))
}

/// The dead-letter queue of `pipeline.dlq`, unless it is disabled. Its
/// directory is made only with the first record.
fn open_dlq(config: &PublishPipeline) -> anyhow::Result<Option<Arc<Dlq>>> {
    if !config.dlq.enabled {
        return Ok(None);
    }
    let dir = config.dlq.dir.display().to_string();
    let dlq = Dlq::open(config.dlq.clone()).with_context(|| {
        format!("key `pipeline.dlq.dir`: cannot open the dead-letter queue in `{dir}`")
    })?;
    if !dlq.is_empty() {
        info!(records = dlq.len(), %dir, "dead-letter queue holds records");
    }
    Ok(Some(Arc::new(dlq)))
}
