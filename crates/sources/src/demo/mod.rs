//! The demo source: made-up but plausible events at a chosen rate, so a
//! pipeline can be tried, or measured, without anything real feeding it.
//!
//! - **Two shapes.** [`DemoKind::Logs`] writes application log records
//!   (levels, services, HTTP paths, latencies, trace ids);
//!   [`DemoKind::Llm`] writes HTTP exchanges shaped like the ones an LLM proxy
//!   captures, so the LLM payload transformer turns them into calls.
//! - **Repeatable.** Everything but the timestamps comes from one seeded
//!   generator: the same seed gives the same events, which makes a benchmark
//!   comparable run to run.
//! - **Paced by a schedule, not by sleeps.** Event `n` is due at
//!   `start + n / rate`; a slow round is caught up by the next ones, so the
//!   long-run rate holds even when single sleeps overshoot. With rate 0 the
//!   only brake is the intake queue's backpressure.
//!
//! Demo events carry no acknowledgement: there is no position to keep.

mod llm;
mod logs;
pub mod source;

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use switchyard_core::{Event, Payload};
use switchyard_engine::IntakeSender;
use tokio::sync::watch;
use tokio::time::Instant;

/// What the demo source writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DemoKind {
    /// Application log records.
    Logs,
    /// LLM proxy HTTP exchanges.
    Llm,
}

impl std::str::FromStr for DemoKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "logs" => Ok(Self::Logs),
            "llm" => Ok(Self::Llm),
            other => Err(format!(
                "demo: kind `{other}` is unknown (expected `logs` or `llm`)"
            )),
        }
    }
}

/// Settings of the demo source.
#[derive(Debug, Clone)]
pub struct DemoConfig {
    /// Shape of the events.
    pub kind: DemoKind,
    /// Events per second; 0 = as fast as the pipeline takes them.
    pub rate: u64,
    /// Stop after this many events; `None` = until stopped.
    pub count: Option<u64>,
    /// Seed of the generator.
    pub seed: u64,
}

/// What the demo source has done.
#[derive(Debug, Default)]
pub struct DemoCounters {
    /// Events handed to the intake queue.
    pub events: AtomicU64,
}

/// Largest chunk handed to the intake queue at once.
const MAX_CHUNK: u64 = 1000;

/// Chunks per second aimed at when paced: small enough that the events of
/// one second are spread out, large enough that a high rate is not one
/// wake-up per event.
const CHUNKS_PER_SECOND: u64 = 100;

/// Write events into `intake` until `count` is reached, `stop` turns true, or
/// the queue closes.
pub async fn run(
    config: DemoConfig,
    intake: IntakeSender,
    counters: Arc<DemoCounters>,
    mut stop: watch::Receiver<bool>,
) {
    let mut rng = fastrand::Rng::with_seed(config.seed);
    let chunk = match config.rate {
        0 => MAX_CHUNK,
        rate => (rate / CHUNKS_PER_SECOND).clamp(1, MAX_CHUNK),
    };
    let start = Instant::now();
    let mut sent: u64 = 0;
    loop {
        let left = config.count.map_or(chunk, |c| c.saturating_sub(sent));
        if left == 0 || *stop.borrow() {
            break;
        }
        if config.rate > 0 {
            // Nanoseconds in u128: `sent * 1e9` overflows u64 after ~18e9 events.
            let due = start
                + Duration::from_nanos((sent as u128 * 1_000_000_000 / config.rate as u128) as u64);
            // A change can only be the stop (or its sender gone): either ends.
            tokio::select! {
                _ = tokio::time::sleep_until(due) => {}
                _ = stop.changed() => break,
            }
        }
        let n = chunk.min(left);
        let events: Vec<Event> = (0..n)
            .map(|i| Event::new(generate(config.kind, &mut rng, sent + i)))
            .collect();
        tokio::select! {
            r = intake.send(events) => if r.is_err() { break },
            _ = stop.changed() => break,
        }
        sent += n;
        counters.events.fetch_add(n, Relaxed);
    }
}

/// Event number `n` of the given kind.
fn generate(kind: DemoKind, rng: &mut fastrand::Rng, n: u64) -> Payload {
    match kind {
        DemoKind::Logs => Payload::Log(logs::record(rng)),
        DemoKind::Llm => Payload::Http(llm::exchange(rng, n)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_events() {
        for kind in [DemoKind::Logs, DemoKind::Llm] {
            let make = |seed| {
                let mut rng = fastrand::Rng::with_seed(seed);
                (0..50)
                    .map(|n| match generate(kind, &mut rng, n) {
                        Payload::Log(mut r) => {
                            r.timestamp = time::OffsetDateTime::UNIX_EPOCH;
                            format!("{r:?}")
                        }
                        Payload::Http(mut x) => {
                            x.timestamp = None;
                            format!("{x:?}")
                        }
                        Payload::Json(j) => j.get().to_owned(),
                    })
                    .collect::<Vec<_>>()
            };
            assert_eq!(make(7), make(7));
            assert_ne!(make(7), make(8));
        }
    }

    #[test]
    fn unknown_kinds_are_named_in_the_error() {
        let err = "metrics".parse::<DemoKind>().unwrap_err();
        assert!(err.contains("`metrics`"), "{err}");
    }
}
