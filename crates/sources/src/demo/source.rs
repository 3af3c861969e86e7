//! `type: demo`: made-up events as a pipeline source — its typed settings
//! (the `switchyard dispatcher` flags `--demo`, `--demo-rate`,
//! `--demo-count`, `--demo-seed`) and its start under supervision.

use super::{run, DemoConfig, DemoCounters, DemoKind};
use crate::settings::default_queue_size;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use switchyard_engine::source::{
    RunningSource, Source, SourceConfig, SourceContext, SourceError, StatsFn,
};
use switchyard_engine::supervise::supervise;
use tokio::task::JoinHandle;

/// Settings of `type: demo`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DemoSourceConfig {
    /// `logs` (application log records) or `llm` (LLM proxy exchanges)
    /// (`--demo`).
    pub kind: DemoKind,
    /// Events per second; 0 = as fast as the pipeline takes them
    /// (`--demo-rate`).
    #[serde(default = "default_rate")]
    pub rate: u64,
    /// Stop generating after this many events (`--demo-count`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// Seed of the generator: the same seed gives the same events
    /// (`--demo-seed`).
    #[serde(default)]
    pub seed: u64,
    /// Bound of the source's queue, events.
    #[serde(default = "default_queue_size")]
    pub queue_size: usize,
}

fn default_rate() -> u64 {
    100
}

impl DemoSourceConfig {
    /// `kind` at the default rate, without end.
    pub fn new(kind: DemoKind) -> Self {
        Self {
            kind,
            rate: default_rate(),
            count: None,
            seed: 0,
            queue_size: default_queue_size(),
        }
    }
}

impl SourceConfig for DemoSourceConfig {
    fn build(self) -> Result<Box<dyn Source>, SourceError> {
        Ok(Box::new(self))
    }
}

#[async_trait::async_trait]
impl Source for DemoSourceConfig {
    fn queue_size(&self) -> usize {
        self.queue_size
    }

    /// A panic in the generator is logged, counted on the health board and
    /// followed by a restart that makes only what is left of `count`.
    async fn start(
        self: Box<Self>,
        cx: SourceContext,
    ) -> Result<Box<dyn RunningSource>, SourceError> {
        let config = DemoConfig {
            kind: self.kind,
            rate: self.rate,
            count: self.count,
            seed: self.seed,
        };
        let counters = Arc::new(DemoCounters::default());
        let (intake, made, stopping) = (cx.output, counters.clone(), cx.shutdown.clone());
        let attempt = move || {
            let mut config = config.clone();
            config.count = config
                .count
                .map(|n| n.saturating_sub(made.events.load(Relaxed)));
            let (intake, made, mut stop) = (intake.clone(), made.clone(), stopping.clone());
            async move {
                run(config, intake, made, stop.clone()).await;
                // Done with `count`: idle until asked to stop, so the
                // supervisor sees no early end.
                let _ = stop.wait_for(|s| *s).await;
                Ok(())
            }
        };
        let task = tokio::spawn(supervise(
            cx.health.register(&cx.name),
            cx.shutdown,
            attempt,
        ));
        Ok(Box::new(RunningDemo { task, counters }))
    }
}

/// The generator, generating.
struct RunningDemo {
    task: JoinHandle<()>,
    counters: Arc<DemoCounters>,
}

#[async_trait::async_trait]
impl RunningSource for RunningDemo {
    fn stats(&self) -> StatsFn {
        let c = self.counters.clone();
        Arc::new(move || json!({"events": c.events.load(Relaxed)}))
    }

    /// Returns once the generator let go of its output.
    async fn stop(self: Box<Self>) {
        let _ = self.task.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_is_required_and_named() {
        let c: DemoSourceConfig = serde_json::from_value(json!({"kind": "llm"})).unwrap();
        assert_eq!(
            (c.kind, c.rate, c.count, c.seed),
            (DemoKind::Llm, 100, None, 0)
        );
        let err =
            serde_json::from_value::<DemoSourceConfig>(json!({"kind": "metrics"})).unwrap_err();
        assert!(
            err.to_string().contains("unknown variant `metrics`"),
            "{err}"
        );
    }
}
