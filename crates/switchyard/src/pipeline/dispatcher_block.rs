//! The `dispatcher:` block of the log-pipeline requirement document, read as
//! the pipeline's defaults.
//!
//! That document configures one dispatcher (`queue_size`, `worker_count`,
//! `batch_size`, `backpressure`, `circuit_breaker`, `dlq`, `worker_pool`, …).
//! Here every one of those settings already exists per source or per sink, so
//! the block is not a second engine: each key is copied into every source or
//! sink (or into the pipeline's `dlq:`) that does not set it itself. A setting
//! written on a component always wins, key by key.
//!
//! The copy is made on the parsed document, before the components are read,
//! so a component's own checks see the values it will run with. The block is
//! checked first, on its own, so a bad value is reported at its line in the
//! block rather than at every sink it would have reached.

use serde::{Deserialize, Deserializer};
use serde_norway::{Mapping, Value};
use std::time::Duration;
use switchyard_engine::WhenFull;

/// The whole block. Every key is optional; unknown keys are refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DispatcherBlock {
    /// Every source's `queue_size`.
    pub queue_size: Option<usize>,
    /// Every sink's fixed `delivery.concurrency` (with `flow_control`
    /// enabled: where the adaptive limit starts).
    pub worker_count: Option<usize>,
    /// Every sink's `batch.max_events`.
    pub batch_size: Option<usize>,
    /// Every sink's `batch.timeout`.
    #[serde(default, deserialize_with = "duration")]
    pub batch_timeout: Option<Duration>,
    /// Every sink's `delivery.max_retries`.
    pub max_retries: Option<u32>,
    /// Every sink's `delivery.retry_backoff`.
    #[serde(default, deserialize_with = "duration")]
    pub retry_backoff: Option<Duration>,
    /// Every sink's buffer policy.
    pub backpressure: Option<Backpressure>,
    /// Adaptive concurrency.
    pub flow_control: Option<FlowControl>,
    /// Every sink's `delivery.circuit_breaker`.
    pub circuit_breaker: Option<CircuitBreaker>,
    /// The pipeline's `dlq:`.
    pub dlq: Option<Dlq>,
    /// Bounds of the adaptive concurrency, and every sink's buffer size.
    pub worker_pool: Option<WorkerPool>,
}

/// `dispatcher.backpressure`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Backpressure {
    /// Only `true` has a meaning: every queue here is bounded.
    pub enabled: Option<bool>,
    /// Every sink's `buffer.high_watermark`.
    pub high_watermark: Option<f64>,
    /// Every sink's `buffer.low_watermark`.
    pub low_watermark: Option<f64>,
    /// Every memory-buffered sink's `buffer.when_full`.
    pub strategy: Option<WhenFull>,
}

/// `dispatcher.flow_control`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowControl {
    /// `true`: every sink's `delivery.concurrency: adaptive`.
    pub enabled: Option<bool>,
    /// Every sink's `delivery.flow_control.target_latency`.
    #[serde(default, deserialize_with = "duration")]
    pub target_latency: Option<Duration>,
    /// Every sink's `delivery.flow_control.adjustment_factor`.
    pub adjustment_factor: Option<f64>,
}

/// `dispatcher.circuit_breaker`: every sink's `delivery.circuit_breaker`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CircuitBreaker {
    /// `enabled`.
    pub enabled: Option<bool>,
    /// `failure_threshold`.
    pub failure_threshold: Option<u32>,
    /// `success_threshold`.
    pub success_threshold: Option<u32>,
    /// `timeout`.
    #[serde(default, deserialize_with = "duration")]
    pub timeout: Option<Duration>,
    /// `half_open_max_calls`.
    pub half_open_max_calls: Option<u32>,
}

/// `dispatcher.dlq`: the pipeline's `dlq:`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dlq {
    /// `enabled`.
    pub enabled: Option<bool>,
    /// `max_size`.
    pub max_size: Option<usize>,
    /// `retention_period`.
    #[serde(default, deserialize_with = "duration")]
    pub retention_period: Option<Duration>,
    /// `auto_retry`.
    pub auto_retry: Option<bool>,
    /// `retry_interval`.
    #[serde(default, deserialize_with = "duration")]
    pub retry_interval: Option<Duration>,
}

/// `dispatcher.worker_pool`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerPool {
    /// Floor of the adaptive concurrency.
    pub min_workers: Option<usize>,
    /// Ceiling of the adaptive concurrency.
    pub max_workers: Option<usize>,
    /// Idle time after which the adaptive concurrency falls to its floor.
    #[serde(default, deserialize_with = "duration")]
    pub idle_timeout: Option<Duration>,
    /// Every sink's `buffer.max_events`: the work waiting for delivery.
    pub queue_size: Option<usize>,
    /// Only `true` has a meaning: the per-sink delivery metrics are always kept.
    pub enable_metrics: Option<bool>,
}

/// `5s`, `100ms`, `24h`.
fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    super::schema::duration(d).map(Some)
}

/// A problem of the block: the key path inside it, and what is wrong.
pub type Problem = (Vec<&'static str>, String);

impl DispatcherBlock {
    /// Whether flow control (adaptive concurrency) is on.
    fn adaptive(&self) -> bool {
        self.flow_control.as_ref().and_then(|f| f.enabled) == Some(true)
    }

    /// Every value the block cannot stand for, each at its key.
    pub fn problems(&self) -> Vec<Problem> {
        let mut out: Vec<Problem> = Vec::new();
        let mut at =
            |path: &[&'static str], message: &str| out.push((path.to_vec(), message.into()));
        let pool = self.worker_pool.as_ref();
        let positive: [(&[&'static str], Option<usize>); 6] = [
            (&["queue_size"], self.queue_size),
            (&["worker_count"], self.worker_count),
            (&["batch_size"], self.batch_size),
            (
                &["worker_pool", "queue_size"],
                pool.and_then(|p| p.queue_size),
            ),
            (
                &["worker_pool", "min_workers"],
                pool.and_then(|p| p.min_workers),
            ),
            (
                &["worker_pool", "max_workers"],
                pool.and_then(|p| p.max_workers),
            ),
        ];
        for (path, value) in positive {
            if value == Some(0) {
                at(path, "must be greater than 0");
            }
        }
        if let Some(b) = &self.backpressure {
            if b.enabled == Some(false) {
                at(
                    &["backpressure", "enabled"],
                    "cannot be turned off: every queue here is bounded, so a full one either waits \
                     (`strategy: block`) or discards (`strategy: drop_newest` or `drop_oldest`); \
                     remove `enabled` or set it to true",
                );
            }
            let (high, low) = (
                b.high_watermark.unwrap_or(0.8),
                b.low_watermark.unwrap_or(0.6),
            );
            for (key, v) in [("high_watermark", high), ("low_watermark", low)] {
                if !(v > 0.0 && v <= 1.0) {
                    at(
                        &["backpressure", key],
                        "must be a fraction of the queue, within (0, 1]",
                    );
                }
            }
            if low >= high {
                at(
                    &["backpressure", "low_watermark"],
                    &format!("{low} must be below high_watermark ({high})"),
                );
            }
        }
        if let Some(f) = &self.flow_control {
            if f.adjustment_factor.is_some_and(|a| !(a > 0.0 && a < 1.0)) {
                at(
                    &["flow_control", "adjustment_factor"],
                    "must be between 0 and 1 (exclusive)",
                );
            }
            if f.target_latency.is_some_and(|t| t.is_zero()) {
                at(&["flow_control", "target_latency"], "must be longer than 0");
            }
        }
        if let Some(b) = &self.circuit_breaker {
            if b.enabled != Some(false) {
                for (key, v) in [
                    ("failure_threshold", b.failure_threshold),
                    ("success_threshold", b.success_threshold),
                    ("half_open_max_calls", b.half_open_max_calls),
                ] {
                    if v == Some(0) {
                        at(&["circuit_breaker", key], "must be at least 1");
                    }
                }
            }
        }
        if let Some(d) = &self.dlq {
            if d.max_size == Some(0) {
                at(&["dlq", "max_size"], "must be at least 1");
            }
            for (key, v) in [
                ("retention_period", d.retention_period),
                ("retry_interval", d.retry_interval),
            ] {
                if v.is_some_and(|t| t.is_zero()) {
                    at(&["dlq", key], "must be longer than 0");
                }
            }
        }
        if let Some(p) = pool {
            out.extend(self.pool_problems(p));
        }
        out
    }

    /// The worker pool bounds the adaptive concurrency: without flow
    /// control they would be settings silently ignored.
    fn pool_problems(&self, p: &WorkerPool) -> Vec<Problem> {
        let mut out: Vec<Problem> = Vec::new();
        if p.enable_metrics == Some(false) {
            out.push((
                vec!["worker_pool", "enable_metrics"],
                "cannot be turned off: each sink's delivery metrics (`dispatcher_worker_task_duration_seconds` \
                 and the others of /metrics) are always kept; remove the key"
                    .into(),
            ));
        }
        if !self.adaptive() {
            for (key, set) in [
                ("min_workers", p.min_workers.is_some()),
                ("max_workers", p.max_workers.is_some()),
                ("idle_timeout", p.idle_timeout.is_some()),
            ] {
                if set {
                    out.push((
                        vec!["worker_pool", key],
                        "bounds the adaptive concurrency, which needs `flow_control.enabled: true`; \
                         without it `worker_count` is the fixed number of deliveries at once"
                            .into(),
                    ));
                }
            }
            return out;
        }
        let min = p.min_workers.unwrap_or(1).max(1);
        let max = p
            .max_workers
            .unwrap_or_else(|| self.worker_count.unwrap_or(64).max(min));
        if min > max {
            out.push((
                vec!["worker_pool", "min_workers"],
                format!("{min} must not exceed max_workers ({max})"),
            ));
        }
        if let Some(n) = self
            .worker_count
            .filter(|n| *n > 0 && (*n < min || *n > max))
        {
            out.push((
                vec!["worker_count"],
                format!("{n} is where the adaptive concurrency starts; it must be between min_workers ({min}) and max_workers ({max})"),
            ));
        }
        if p.idle_timeout.is_some_and(|t| t.is_zero()) {
            out.push((
                vec!["worker_pool", "idle_timeout"],
                "must be longer than 0".into(),
            ));
        }
        out
    }

    /// What every sink gets, as (key path inside the sink, value).
    fn sink_defaults(&self) -> Vec<(&'static [&'static str], Value)> {
        let mut out: Vec<(&'static [&'static str], Value)> = Vec::new();
        let mut put = |path: &'static [&'static str], v: Option<Value>| {
            if let Some(v) = v {
                out.push((path, v));
            }
        };
        put(&["batch", "max_events"], self.batch_size.map(number));
        put(&["batch", "timeout"], self.batch_timeout.map(text_duration));
        put(
            &["delivery", "max_retries"],
            self.max_retries.map(|n| number(n as usize)),
        );
        put(
            &["delivery", "retry_backoff"],
            self.retry_backoff.map(text_duration),
        );
        let pool = self.worker_pool.as_ref();
        if self.adaptive() {
            put(
                &["delivery", "concurrency"],
                Some(Value::String("adaptive".into())),
            );
            put(
                &["delivery", "flow_control", "initial_concurrency"],
                self.worker_count.map(number),
            );
            put(
                &["delivery", "flow_control", "min_concurrency"],
                pool.and_then(|p| p.min_workers).map(number),
            );
            let max = pool.and_then(|p| p.max_workers).or(self.worker_count);
            put(
                &["delivery", "flow_control", "max_concurrency"],
                max.map(number),
            );
            put(
                &["delivery", "flow_control", "idle_timeout"],
                pool.and_then(|p| p.idle_timeout).map(text_duration),
            );
        } else {
            put(&["delivery", "concurrency"], self.worker_count.map(number));
        }
        if let Some(f) = &self.flow_control {
            put(
                &["delivery", "flow_control", "target_latency"],
                f.target_latency.map(text_duration),
            );
            put(
                &["delivery", "flow_control", "adjustment_factor"],
                f.adjustment_factor.map(Value::from),
            );
        }
        if let Some(b) = &self.circuit_breaker {
            put(
                &["delivery", "circuit_breaker", "enabled"],
                b.enabled.map(Value::Bool),
            );
            put(
                &["delivery", "circuit_breaker", "failure_threshold"],
                b.failure_threshold.map(|n| number(n as usize)),
            );
            put(
                &["delivery", "circuit_breaker", "success_threshold"],
                b.success_threshold.map(|n| number(n as usize)),
            );
            put(
                &["delivery", "circuit_breaker", "timeout"],
                b.timeout.map(text_duration),
            );
            put(
                &["delivery", "circuit_breaker", "half_open_max_calls"],
                b.half_open_max_calls.map(|n| number(n as usize)),
            );
        }
        if let Some(b) = &self.backpressure {
            put(
                &["buffer", "high_watermark"],
                b.high_watermark.map(Value::from),
            );
            put(
                &["buffer", "low_watermark"],
                b.low_watermark.map(Value::from),
            );
            put(
                &["buffer", "when_full"],
                b.strategy.map(|s| Value::String(when_full(s).into())),
            );
        }
        put(
            &["buffer", "max_events"],
            pool.and_then(|p| p.queue_size).map(number),
        );
        out
    }

    /// Copy the block into every source, sink and the pipeline's `dlq:`,
    /// wherever the key is not written there already.
    pub fn apply(&self, root: &mut Mapping) {
        if let Some(n) = self.queue_size {
            for source in components(root, "sources") {
                set_default(source, &["queue_size"], number(n));
            }
        }
        let defaults = self.sink_defaults();
        for sink in components(root, "sinks") {
            // A disk buffer only blocks: a drop strategy is for memory buffers.
            let disk = sink
                .get("buffer")
                .and_then(|b| b.get("type"))
                .and_then(Value::as_str)
                == Some("disk");
            // `worker_count` inside `delivery` is the sink's own concurrency.
            let own_concurrency = sink
                .get("delivery")
                .is_some_and(|d| d.get("worker_count").is_some());
            for (path, value) in &defaults {
                let skip = (disk && path == &["buffer", "when_full"])
                    || (own_concurrency && path == &["delivery", "concurrency"]);
                if !skip {
                    set_default(sink, path, value.clone());
                }
            }
        }
        if let Some(d) = &self.dlq {
            let keys: [(&str, Option<Value>); 5] = [
                ("enabled", d.enabled.map(Value::Bool)),
                ("max_size", d.max_size.map(number)),
                ("retention_period", d.retention_period.map(text_duration)),
                ("auto_retry", d.auto_retry.map(Value::Bool)),
                ("retry_interval", d.retry_interval.map(text_duration)),
            ];
            for (key, value) in keys {
                if let Some(v) = value {
                    set_default(root, &["dlq", key], v);
                }
            }
        }
    }
}

fn number(n: usize) -> Value {
    Value::Number((n as u64).into())
}

fn text_duration(d: Duration) -> Value {
    Value::String(humantime::format_duration(d).to_string())
}

fn when_full(w: WhenFull) -> &'static str {
    match w {
        WhenFull::Block => "block",
        WhenFull::DropNewest => "drop_newest",
        WhenFull::DropOldest => "drop_oldest",
    }
}

/// The mappings of a section's components (others are left to their own
/// errors).
fn components<'a>(root: &'a mut Mapping, section: &str) -> impl Iterator<Item = &'a mut Mapping> {
    root.get_mut(section)
        .and_then(Value::as_mapping_mut)
        .into_iter()
        .flat_map(|m| m.values_mut())
        .filter_map(Value::as_mapping_mut)
}

/// Set `path` to `value` unless it is written already. A missing level is
/// made; a level that is not a mapping is left alone for its own error.
fn set_default(map: &mut Mapping, path: &[&str], value: Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut at = map;
    for key in parents {
        let slot = at
            .entry(Value::String((*key).into()))
            .or_insert_with(|| Value::Mapping(Mapping::new()));
        match slot.as_mapping_mut() {
            Some(m) => at = m,
            None => return,
        }
    }
    at.entry(Value::String((*last).into())).or_insert(value);
}

#[cfg(test)]
mod tests {
    use super::super::validate::{check, Checked};
    use std::time::Duration;
    use switchyard_engine::delivery::config::Concurrency;
    use switchyard_engine::WhenFull;

    /// The requirement document's five example blocks, as one.
    pub(crate) const SEED: &str = "\
dispatcher:
  queue_size: 10000
  worker_count: 4
  batch_size: 100
  batch_timeout: \"5s\"
  max_retries: 3
  retry_backoff: \"1s\"
  backpressure:
    enabled: true
    high_watermark: 0.8
    low_watermark: 0.6
    strategy: \"drop_oldest\"
  flow_control:
    enabled: true
    target_latency: \"100ms\"
    adjustment_factor: 0.1
  circuit_breaker:
    enabled: true
    failure_threshold: 5
    success_threshold: 3
    timeout: \"30s\"
    half_open_max_calls: 10
  dlq:
    enabled: true
    max_size: 1000
    retention_period: \"24h\"
    auto_retry: true
    retry_interval: \"5m\"
  worker_pool:
    min_workers: 2
    max_workers: 10
    idle_timeout: \"5m\"
    queue_size: 1000
    enable_metrics: true
";

    const COMPONENTS: &str = "\
dlq: {dir: here, max_size: 50}
sources:
  in: {type: tcp, address: '127.0.0.1:1'}
  mine: {type: udp, address: '127.0.0.1:2', queue_size: 7}
sinks:
  plain: {type: blackhole, inputs: [in]}
  own:
    type: blackhole
    inputs: [mine]
    batch: {max_events: 10}
    buffer: {type: disk, dir: d}
    delivery:
      worker_count: 2
      circuit_breaker: {timeout: 1s}
";

    fn checked(text: &str) -> Checked {
        match check(text, |_| None, &switchyard_sinks::builtin()) {
            Ok(c) => c,
            Err(e) => panic!("{e:?}"),
        }
    }

    fn errors(text: &str) -> Vec<String> {
        match check(text, |_| None, &switchyard_sinks::builtin()) {
            Ok(_) => Vec::new(),
            Err(e) => e.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn the_seed_block_sets_every_default_and_a_component_own_setting_wins() {
        let c = checked(&format!("{SEED}{COMPONENTS}"));
        let queue = |i: usize| c.sources[i].1.queue_size();
        assert_eq!((queue(0), queue(1)), (10_000, 7));

        let plain = &c.sinks[0].1;
        assert_eq!(plain.batch.max_events, 100);
        assert_eq!(plain.batch.timeout, Duration::from_secs(5));
        let d = &plain.delivery;
        assert_eq!(
            (d.max_retries, d.retry_backoff),
            (3, Duration::from_secs(1))
        );
        assert_eq!(d.concurrency, Concurrency::Adaptive);
        let f = &d.flow_control;
        assert_eq!(f.target_latency, Duration::from_millis(100));
        assert_eq!(f.adjustment_factor, 0.1);
        assert_eq!((f.min_concurrency, f.max_concurrency), (2, 10));
        assert_eq!(f.initial_concurrency, Some(4));
        assert_eq!(f.idle_timeout, Some(Duration::from_secs(300)));
        let b = &d.circuit_breaker;
        assert!(b.enabled);
        assert_eq!((b.failure_threshold, b.success_threshold), (5, 3));
        assert_eq!(
            (b.timeout, b.half_open_max_calls),
            (Duration::from_secs(30), 10)
        );
        assert_eq!(plain.buffer.when_full, WhenFull::DropOldest);
        assert_eq!(
            (plain.buffer.high_watermark, plain.buffer.low_watermark),
            (0.8, 0.6)
        );
        assert_eq!(plain.buffer.max_events, 1000);

        let own = &c.sinks[1].1;
        assert_eq!(own.batch.max_events, 10, "its own batch size");
        assert_eq!(
            own.batch.timeout,
            Duration::from_secs(5),
            "the block's timeout"
        );
        assert_eq!(
            own.delivery.concurrency,
            Concurrency::Fixed(2),
            "its worker_count"
        );
        assert_eq!(own.delivery.circuit_breaker.timeout, Duration::from_secs(1));
        assert_eq!(own.delivery.circuit_breaker.failure_threshold, 5);
        assert_eq!(
            own.buffer.when_full,
            WhenFull::Block,
            "a disk buffer only blocks"
        );

        let dlq = c.dlq.as_ref().expect("the block's dlq");
        assert_eq!(dlq.dir, std::path::PathBuf::from("here"));
        assert_eq!(dlq.max_size, 50, "the pipeline's own dlq key wins");
        assert_eq!(dlq.retention_period, Duration::from_secs(24 * 3600));
        assert_eq!(dlq.retry_interval, Duration::from_secs(300));
        assert!(dlq.enabled && dlq.auto_retry);
    }

    #[test]
    fn without_flow_control_worker_count_is_a_fixed_concurrency() {
        let c = checked(&format!("dispatcher: {{worker_count: 3}}\n{COMPONENTS}"));
        assert_eq!(c.sinks[0].1.delivery.concurrency, Concurrency::Fixed(3));
        assert_eq!(c.sinks[1].1.delivery.concurrency, Concurrency::Fixed(2));
        // Nothing else moved from the sinks' own defaults.
        assert_eq!(c.sinks[0].1.batch.max_events, 100);
        assert_eq!(c.sinks[0].1.buffer.when_full, WhenFull::Block);
    }

    #[test]
    fn each_bad_key_is_named_at_its_line_with_the_reason() {
        let table: &[(&str, &[&str])] = &[
            (
                "dispatcher:\n  worker_pool:\n    colour: red\n",
                &["line 3: dispatcher.worker_pool.colour: unknown key; expected one of `min_workers`, `max_workers`, `idle_timeout`, `queue_size`, `enable_metrics`"],
            ),
            (
                "dispatcher:\n  batch_size: 10\n  batch_timeout: soon\n",
                &["line 3: dispatcher.batch_timeout: `soon` is not a duration (expected number at 0)"],
            ),
            (
                "dispatcher:\n  backpressure:\n    strategy: sometimes\n",
                &["line 3: dispatcher.backpressure.strategy: unknown variant `sometimes`, expected one of `block`, `drop_newest`, `drop_oldest`"],
            ),
            (
                "dispatcher:\n  backpressure:\n    enabled: false\n    high_watermark: 0.5\n",
                &[
                    // `low_watermark` is not written: placed at its block.
                    "line 2: dispatcher.backpressure.low_watermark: 0.6 must be below high_watermark (0.5)",
                    "line 3: dispatcher.backpressure.enabled: cannot be turned off: every queue here is bounded, so a full one either waits (`strategy: block`) or discards (`strategy: drop_newest` or `drop_oldest`); remove `enabled` or set it to true",
                ],
            ),
            (
                "dispatcher:\n  worker_count: 4\n  worker_pool:\n    max_workers: 10\n",
                &["line 4: dispatcher.worker_pool.max_workers: bounds the adaptive concurrency, which needs `flow_control.enabled: true`; without it `worker_count` is the fixed number of deliveries at once"],
            ),
            (
                "dispatcher:\n  worker_count: 20\n  flow_control: {enabled: true}\n  worker_pool:\n    max_workers: 10\n    enable_metrics: false\n",
                &[
                    "line 2: dispatcher.worker_count: 20 is where the adaptive concurrency starts; it must be between min_workers (1) and max_workers (10)",
                    "line 6: dispatcher.worker_pool.enable_metrics: cannot be turned off: each sink's delivery metrics (`dispatcher_worker_task_duration_seconds` and the others of /metrics) are always kept; remove the key",
                ],
            ),
            (
                "dispatcher:\n  batch_size: 0\n  dlq: {max_size: 0}\n",
                &[
                    "line 2: dispatcher.batch_size: must be greater than 0",
                    "line 3: dispatcher.dlq.max_size: must be at least 1",
                ],
            ),
        ];
        let tail = "sources:\n  a: {type: tcp, address: '127.0.0.1:1'}\nsinks:\n  o: {type: blackhole, inputs: [a]}\n";
        for (block, want) in table {
            assert_eq!(&errors(&format!("{block}{tail}")), want, "{block}");
        }
    }
}
