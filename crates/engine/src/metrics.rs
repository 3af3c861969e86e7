//! Prometheus metrics of a pipeline, under the `dispatcher_` names of the
//! requirement document, labelled by `component` (the source's or sink's
//! name).
//!
//! Most figures already live in atomics owned by the components (buffer
//! stats, engine counters, router stats); a [`Collector`] reads them at scrape
//! time, so the hot path pays nothing extra and a scrape is always current.
//! Durations are histograms observed where they happen. The rate gauge
//! `dispatcher_entries_per_second` is refreshed by [`Metrics::sample_rates`],
//! which the caller runs once a second.
//!
//! Every event a component loses or cuts on its own (a full UDP queue, a
//! message over the size limit, a gap in a Redis LIST, …) is one family,
//! `dispatcher_component_discarded_events_total{component, component_kind,
//! reason}`: the components count in their own atomics, and report them with
//! [`Metrics::add_discards`] (read at scrape time too). A full sink buffer's
//! drops keep their older family, `dispatcher_entries_dropped_total`.

use crate::topology::{SinkHandle, SourceHandle, SourceStats};
use crate::{BufferStats, Counters};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Instant;

type Labels = Vec<(&'static str, String)>;
type Histograms = Family<Labels, Histogram, fn() -> Histogram>;

fn seconds() -> Histogram {
    // 100 µs … ~52 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 20))
}

fn component(name: &str) -> Labels {
    vec![("component", name.to_string())]
}

/// Where a component sits in the pipeline: the `component_kind` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ComponentKind {
    /// Takes events in.
    Source,
    /// Delivers events.
    Sink,
}

impl ComponentKind {
    fn label(self) -> String {
        match self {
            ComponentKind::Source => "source",
            ComponentKind::Sink => "sink",
        }
        .to_string()
    }
}

/// The family of every loss, without the `dispatcher_` prefix and `_total`.
pub const DISCARDED_EVENTS: &str = "component_discarded_events";

const DISCARDED_HELP: &str =
    "Events a component discarded or cut short instead of passing them on whole, by reason";

fn discarded(component: &str, kind: ComponentKind, reason: &str) -> Labels {
    vec![
        ("component", component.to_string()),
        ("component_kind", kind.label()),
        ("reason", reason.to_string()),
    ]
}

/// Reads a component's loss counters: `(reason, count)` pairs.
pub type DiscardsFn = Arc<dyn Fn() -> Vec<(&'static str, u64)> + Send + Sync>;

/// Extra series a component adds at scrape time (breakers, DLQ, sources).
pub type Extra = Arc<dyn Fn(&mut Vec<Series>) + Send + Sync>;

/// One series an [`Extra`] reports.
pub struct Series {
    /// Name without the `dispatcher_` prefix (counters without `_total`).
    pub name: &'static str,
    /// Help text.
    pub help: &'static str,
    /// Counter or gauge.
    pub kind: SeriesKind,
    /// Labels.
    pub labels: Labels,
}

/// A series' type and value.
pub enum SeriesKind {
    /// Monotonic count.
    Counter(u64),
    /// Current value.
    Gauge(f64),
}

/// The pipeline's metrics.
pub struct Metrics {
    registry: Registry,
    processing: Histograms,
    queue_wait: Histograms,
    delivery: Histograms,
    worker_task: Histograms,
    state: Arc<State>,
}

#[derive(Default)]
struct State {
    sources: Mutex<Vec<(String, Arc<SourceStats>)>>,
    sinks: Mutex<Vec<SinkState>>,
    extras: Mutex<Vec<Extra>>,
}

struct SinkState {
    name: String,
    buffer: Arc<BufferStats>,
    counters: Arc<Counters>,
    delivery: Arc<crate::DeliveryStats>,
    disk: Option<crate::topology::DiskStatsFn>,
    rate: f64,
    last: (Instant, u64),
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PipelineState")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Empty metrics; histograms are registered, components are added later.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("dispatcher");
        let mut histograms = |name: &str, help: &str| {
            let family = Histograms::new_with_constructor(seconds as fn() -> Histogram);
            registry.register(name, help, family.clone());
            family
        };
        let processing = histograms(
            "processing_duration_seconds",
            "Time a chunk of a source's events spends in the transforms",
        );
        let queue_wait = histograms(
            "queue_wait_duration_seconds",
            "Time events wait in a sink's buffer",
        );
        let delivery = histograms(
            "sink_delivery_duration_seconds",
            "Time of one delivery attempt to a sink",
        );
        let worker_task = histograms(
            "worker_task_duration_seconds",
            "Time a worker spends on one batch, retries included",
        );
        let state = Arc::new(State::default());
        registry.register_collector(Box::new(PipelineCollector(state.clone())));
        Self {
            registry,
            processing,
            queue_wait,
            delivery,
            worker_task,
            state,
        }
    }

    /// The processing-time histogram of source `name`.
    pub fn processing(&self, name: &str) -> Histogram {
        self.processing.get_or_create_owned(&component(name))
    }

    /// The queue-wait histogram of sink `name`.
    pub fn queue_wait(&self, name: &str) -> Histogram {
        self.queue_wait.get_or_create_owned(&component(name))
    }

    /// The delivery-attempt histogram of sink `name`.
    pub fn delivery(&self, name: &str) -> Histogram {
        self.delivery.get_or_create_owned(&component(name))
    }

    /// The per-batch worker histogram of sink `name`.
    pub fn worker_task(&self, name: &str) -> Histogram {
        self.worker_task.get_or_create_owned(&component(name))
    }

    /// Report a running source.
    pub fn add_source(&self, source: &SourceHandle) {
        lock(&self.state.sources).push((source.name.clone(), source.stats.clone()));
    }

    /// Report a running sink.
    pub fn add_sink(&self, sink: &SinkHandle) {
        lock(&self.state.sinks).push(SinkState {
            name: sink.name.clone(),
            buffer: sink.buffer.clone(),
            counters: sink.counters.clone(),
            delivery: sink.delivery.clone(),
            disk: sink.disk.clone(),
            rate: 0.0,
            last: (Instant::now(), sink.counters.snapshot().sent),
        });
    }

    /// Add series computed at scrape time.
    pub fn add_extra(&self, extra: Extra) {
        lock(&self.state.extras).push(extra);
    }

    /// Report what `component` discards, as
    /// `dispatcher_component_discarded_events_total{component, component_kind,
    /// reason}`: `read` returns the component's own counters by reason and
    /// runs at each scrape. Report every reason the component has, zeros
    /// included, so that a rate over the series works from the start.
    pub fn add_discards(&self, component: &str, kind: ComponentKind, read: DiscardsFn) {
        let component = component.to_string();
        self.add_extra(Arc::new(move |out: &mut Vec<Series>| {
            for (reason, n) in read() {
                out.push(Series {
                    name: DISCARDED_EVENTS,
                    help: DISCARDED_HELP,
                    kind: SeriesKind::Counter(n),
                    labels: discarded(&component, kind, reason),
                });
            }
        }));
    }

    /// Refresh `dispatcher_entries_per_second` (delivered events per second
    /// since the previous call). Call it about once a second.
    pub fn sample_rates(&self) {
        let now = Instant::now();
        for s in lock(&self.state.sinks).iter_mut() {
            let sent = s.counters.snapshot().sent;
            let secs = now.duration_since(s.last.0).as_secs_f64();
            if secs > 0.0 {
                s.rate = sent.saturating_sub(s.last.1) as f64 / secs;
            }
            s.last = (now, sent);
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[derive(Debug)]
struct PipelineCollector(Arc<State>);

impl PipelineCollector {
    fn series(&self) -> Vec<Series> {
        let mut out = Vec::new();
        let mut push = |name, help, kind, labels| {
            out.push(Series {
                name,
                help,
                kind,
                labels,
            })
        };
        use SeriesKind::{Counter as C, Gauge as G};
        for (name, stats) in lock(&self.0.sources).iter() {
            push(
                "entries_received",
                "Events taken from a source",
                C(stats.received.load(Relaxed)),
                component(name),
            );
            push(
                "entries_filtered",
                "Event copies a transform filtered out",
                C(stats.filtered.load(Relaxed)),
                component(name),
            );
            push(
                DISCARDED_EVENTS,
                DISCARDED_HELP,
                C(stats.dropped.load(Relaxed)),
                discarded(name, ComponentKind::Source, "sink_stopped"),
            );
        }
        for s in lock(&self.0.sinks).iter() {
            let c = s.counters.snapshot();
            let b = &s.buffer;
            let (busy, slots) = s.counters.workers();
            let l = || component(&s.name);
            push(
                "entries_processed",
                "Events a sink confirmed",
                C(c.sent),
                l(),
            );
            push(
                "entries_failed",
                "Events a sink failed to take for good (dead-lettered or dropped)",
                C(c.dropped + c.dead_lettered),
                l(),
            );
            let d = s.delivery.snapshot();
            push(
                "entries_dead_lettered",
                "Events written to the dead-letter queue",
                C(c.dead_lettered),
                l(),
            );
            push(
                "dlq_full_dropped",
                "Events dropped because the dead-letter queue was full",
                C(d.dlq_full_dropped),
                l(),
            );
            push(
                "circuit_breaker_state",
                "Circuit breaker of a sink: 0 closed, 1 open, 2 half-open",
                G(match d.breaker_state {
                    crate::delivery::BreakerState::Closed => 0.0,
                    crate::delivery::BreakerState::Open => 1.0,
                    crate::delivery::BreakerState::HalfOpen => 2.0,
                }),
                l(),
            );
            for (to, n) in [
                ("open", d.breaker_opened),
                ("half_open", d.breaker_half_opened),
                ("closed", d.breaker_closed),
            ] {
                let mut labels = l();
                labels.push(("to", to.to_string()));
                push(
                    "circuit_breaker_transitions",
                    "Circuit breaker transitions, by the state entered",
                    C(n),
                    labels,
                );
            }
            push(
                "circuit_breaker_rejected",
                "Calls an open breaker held at its gate",
                C(d.breaker_rejected),
                l(),
            );
            push(
                "retries",
                "Delivery attempts that were retries",
                C(d.retries),
                l(),
            );
            push(
                "delivery_timeouts",
                "Delivery attempts that timed out",
                C(d.timeouts),
                l(),
            );
            push(
                "rate_limited_waits",
                "Times a delivery waited for the rate limit",
                C(d.rate_limited_waits),
                l(),
            );
            for (reason, n) in [
                ("drop_newest", b.dropped_newest.load(Relaxed)),
                ("drop_oldest", b.dropped_oldest.load(Relaxed)),
            ] {
                let mut labels = l();
                labels.push(("reason", reason.to_string()));
                push(
                    "entries_dropped",
                    "Events a full buffer discarded by its when_full policy",
                    C(n),
                    labels,
                );
            }
            // The same sink losses in the family that holds every loss, so
            // one alert on it sees them all.
            for (reason, n) in [
                ("drop_newest", b.dropped_newest.load(Relaxed)),
                ("drop_oldest", b.dropped_oldest.load(Relaxed)),
                // `dropped` holds both: failed with no dead-letter queue,
                // and failed with the queue full.
                (
                    "delivery_failed",
                    c.dropped.saturating_sub(d.dlq_full_dropped),
                ),
                ("dlq_full", d.dlq_full_dropped),
            ] {
                push(
                    DISCARDED_EVENTS,
                    DISCARDED_HELP,
                    C(n),
                    discarded(&s.name, ComponentKind::Sink, reason),
                );
            }
            if let Some(disk) = &s.disk {
                push(
                    DISCARDED_EVENTS,
                    DISCARDED_HELP,
                    C(disk().corrupt_records),
                    discarded(&s.name, ComponentKind::Sink, "disk_corrupt"),
                );
            }
            push(
                "entries_per_second",
                "Events a sink confirmed per second, over the last sample",
                G(s.rate),
                l(),
            );
            push(
                "queue_size",
                "Events in a sink's buffer",
                G(b.events.load(Relaxed) as f64),
                l(),
            );
            push(
                "queue_bytes",
                "Bytes in a sink's buffer",
                G(b.bytes.load(Relaxed) as f64),
                l(),
            );
            push(
                "queue_utilization",
                "Fill ratio of a sink's buffer (0-1, the larger of events and bytes)",
                G(b.utilization()),
                l(),
            );
            push(
                "backpressure_triggered",
                "Times a sink's buffer reached its high watermark or made a sender wait",
                C(b.backpressure_triggered.load(Relaxed)),
                l(),
            );
            push(
                "backpressure_active",
                "1 while a sink's buffer is above its high watermark (until it falls to the low one)",
                G(if b.under_pressure.load(Relaxed) { 1.0 } else { 0.0 }),
                l(),
            );
            push(
                "workers_active",
                "Batches being delivered to a sink now",
                G(busy as f64),
                l(),
            );
            push(
                "workers_idle",
                "Delivery slots of a sink not in use",
                G(slots.saturating_sub(busy) as f64),
                l(),
            );
        }
        for extra in lock(&self.0.extras).iter() {
            extra(&mut out);
        }
        out
    }
}

impl Collector for PipelineCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut series = self.series();
        // One descriptor per name, its series together.
        series.sort_by_key(|s| s.name);
        let mut i = 0;
        while i < series.len() {
            let name = series[i].name;
            let end = series[i..]
                .iter()
                .position(|s| s.name != name)
                .map_or(series.len(), |p| i + p);
            // The registry adds the `dispatcher_` prefix.
            let kind = match series[i].kind {
                SeriesKind::Counter(_) => ConstCounter::new(0u64).metric_type(),
                SeriesKind::Gauge(_) => ConstGauge::new(0.0f64).metric_type(),
            };
            let mut family = encoder.encode_descriptor(name, series[i].help, None, kind)?;
            for s in &series[i..end] {
                let metric = family.encode_family(&s.labels)?;
                match s.kind {
                    SeriesKind::Counter(v) => ConstCounter::new(v).encode(metric)?,
                    SeriesKind::Gauge(v) => ConstGauge::new(v).encode(metric)?,
                }
            }
            i = end;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extras_and_histograms_render_under_the_document_names() {
        let m = Metrics::new();
        m.queue_wait("loki").observe(0.002);
        m.add_extra(Arc::new(|out: &mut Vec<Series>| {
            out.push(Series {
                name: "circuit_breaker_state",
                help: "0 closed, 1 open, 2 half-open",
                kind: SeriesKind::Gauge(1.0),
                labels: vec![("component", "loki".into())],
            })
        }));
        let text = m.render();
        assert!(
            text.contains("dispatcher_queue_wait_duration_seconds_count{component=\"loki\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("\ndispatcher_circuit_breaker_state{component=\"loki\"} 1"),
            "{text}"
        );
        assert!(text.contains("# TYPE dispatcher_circuit_breaker_state gauge"));
    }

    #[test]
    fn discards_are_read_from_the_components_own_counters_at_each_scrape() {
        use std::sync::atomic::AtomicU64;
        let m = Metrics::new();
        let lost = Arc::new(AtomicU64::new(0));
        let read = lost.clone();
        m.add_discards(
            "udp",
            ComponentKind::Source,
            Arc::new(move || vec![("udp_queue_full", read.load(Relaxed)), ("too_long", 0)]),
        );
        let line = |n: u64| {
            format!(
                "\ndispatcher_component_discarded_events_total{{component=\"udp\",component_kind=\"source\",reason=\"udp_queue_full\"}} {n}\n"
            )
        };
        assert!(m.render().contains(&line(0)), "{}", m.render());
        lost.fetch_add(3, Relaxed);
        let text = m.render();
        assert!(text.contains(&line(3)), "{text}");
        assert!(text.contains("reason=\"too_long\"} 0\n"), "{text}");
        assert!(text.contains("# TYPE dispatcher_component_discarded_events counter"));
    }
}
