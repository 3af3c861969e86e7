//! `--demo`: made-up events as a source of the dispatcher, for quick starts
//! and benchmarks.

use clap::Args;
use serde_json::{json, Value};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use switchyard_engine::supervise::{supervise, Health};
use switchyard_engine::IntakeSender;
use switchyard_sources::demo::{run, DemoConfig, DemoCounters, DemoKind};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Demo source options of `switchyard dispatcher`.
#[derive(Args, Debug, Clone)]
pub struct DemoArgs {
    /// Generate events: `logs` (application log records) or `llm` (LLM proxy
    /// exchanges, turned into calls by the LLM transformer).
    #[arg(long = "demo", value_name = "KIND", env = "DISPATCHER_DEMO")]
    pub kind: Option<DemoKind>,
    /// Demo events per second; 0 = as fast as the pipeline takes them.
    #[arg(long, env = "DISPATCHER_DEMO_RATE", default_value = "100")]
    pub demo_rate: u64,
    /// Stop generating after this many events (the dispatcher keeps running).
    #[arg(long, env = "DISPATCHER_DEMO_COUNT")]
    pub demo_count: Option<u64>,
    /// Seed of the demo generator: the same seed gives the same events.
    #[arg(long, env = "DISPATCHER_DEMO_SEED", default_value = "0")]
    pub demo_seed: u64,
}

/// The running demo source.
pub struct DemoSource {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    counters: Arc<DemoCounters>,
}

impl DemoSource {
    /// Start generating, if `--demo` was given.
    /// A panic in the generator is logged, counted on `health` and followed
    /// by a restart (see [`supervise`]).
    pub fn start(args: &DemoArgs, intake: &IntakeSender, health: &Health) -> Option<Self> {
        let kind = args.kind?;
        let (stop, stop_rx) = watch::channel(false);
        let counters = Arc::new(DemoCounters::default());
        let config = DemoConfig {
            kind,
            rate: args.demo_rate,
            count: args.demo_count,
            seed: args.demo_seed,
        };
        let (intake, made, stopping) = (intake.clone(), counters.clone(), stop_rx.clone());
        let attempt = move || {
            let mut config = config.clone();
            // After a failure, only what is left of `--demo-count`.
            config.count = config
                .count
                .map(|n| n.saturating_sub(made.events.load(Relaxed)));
            let (intake, made, mut stop) = (intake.clone(), made.clone(), stopping.clone());
            async move {
                run(config, intake, made, stop.clone()).await;
                // Done with `--demo-count`: idle until asked to stop, so the
                // supervisor sees no early end.
                let _ = stop.wait_for(|s| *s).await;
                Ok(())
            }
        };
        let task = tokio::spawn(supervise(health.register("demo"), stop_rx, attempt));
        Some(Self {
            stop,
            task,
            counters,
        })
    }

    /// The counters as JSON for `/stats`.
    pub fn stats_fn(&self) -> impl Fn() -> Value + Send + Sync + 'static {
        let c = self.counters.clone();
        move || json!({"events": c.events.load(Relaxed)})
    }

    /// Stop generating; returns once the source let go of the intake queue.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}
