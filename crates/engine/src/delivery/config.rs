//! The delivery stack's settings, with the defaults of the requirement
//! document (`max_retries: 3`, `retry_backoff: 1s`, `circuit_breaker`
//! `{5, 3, 30s, 10}`, `flow_control` `{100ms, 0.1}`). Durations are written
//! as humantime strings (`500ms`, `30s`, `5m`) in configuration files.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How batches are delivered to one sink.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeliveryConfig {
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// Ceiling of the first retry's delay; doubles each retry (full jitter).
    #[serde(with = "humantime_serde")]
    pub retry_backoff: Duration,
    /// Give up retrying once a batch has been tried for this long (time spent
    /// waiting for an open breaker does not count). `None`: no limit.
    #[serde(with = "humantime_serde::option")]
    pub max_elapsed: Option<Duration>,
    /// Deadline of one attempt. `None`: the sink's own timeouts only.
    #[serde(with = "humantime_serde::option")]
    pub timeout: Option<Duration>,
    /// Requests or events per second; `None`: unlimited.
    pub rate_limit: Option<RateLimit>,
    /// Batches in flight at once.
    pub concurrency: Concurrency,
    /// The adaptive concurrency's target.
    pub flow_control: FlowControl,
    /// The per-sink circuit breaker.
    pub circuit_breaker: BreakerConfig,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            max_retries: 3,
            retry_backoff: Duration::from_secs(1),
            max_elapsed: None,
            timeout: None,
            rate_limit: None,
            concurrency: Concurrency::Fixed(4),
            flow_control: FlowControl::default(),
            circuit_breaker: BreakerConfig::default(),
        }
    }
}

/// What a rate limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RateUnit {
    /// Events per second (a batch of 100 takes 100 tokens).
    Events,
    /// Requests (batches) per second.
    Requests,
}

/// A rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// How many per second (at least 1).
    pub per_second: u32,
    /// Of what.
    pub unit: RateUnit,
}

/// How many batches may be in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Concurrency {
    /// Exactly this many (at least 1): the seed's `worker_count`.
    Fixed(usize),
    /// Adjusted by AIMD between 1 and `flow_control.max_concurrency`.
    Adaptive,
}

/// Settings of the adaptive concurrency (the seed's `flow_control`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FlowControl {
    /// A batch delivered within this time is a sign the sink can take more.
    #[serde(with = "humantime_serde")]
    pub target_latency: Duration,
    /// The fraction the limit shrinks by when a batch is slower than the target.
    pub adjustment_factor: f64,
    /// Upper bound of the adaptive limit.
    pub max_concurrency: usize,
    /// Floor of the adaptive limit (the seed's `worker_pool.min_workers`).
    pub min_concurrency: usize,
    /// Where the adaptive limit starts (the seed's `worker_count` when flow
    /// control is on). `None`: at `min_concurrency`.
    pub initial_concurrency: Option<usize>,
    /// After this long with no batch in flight, the adaptive limit falls
    /// back to `min_concurrency` (the seed's `worker_pool.idle_timeout`):
    /// what was learnt of the sink's capacity is stale. `None`: never.
    #[serde(with = "humantime_serde::option")]
    pub idle_timeout: Option<Duration>,
}

impl Default for FlowControl {
    fn default() -> Self {
        Self {
            target_latency: Duration::from_millis(100),
            adjustment_factor: 0.1,
            max_concurrency: 64,
            min_concurrency: 1,
            initial_concurrency: None,
            idle_timeout: None,
        }
    }
}

/// Settings of the per-sink circuit breaker (the seed's `circuit_breaker`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BreakerConfig {
    /// Off: every attempt goes to the sink.
    pub enabled: bool,
    /// Consecutive failed attempts that open the breaker.
    pub failure_threshold: u32,
    /// Successful trial calls in half-open that close it again.
    pub success_threshold: u32,
    /// How long it stays open before trial calls are let through.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Trial calls let through at once while half-open.
    pub half_open_max_calls: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            failure_threshold: 5,
            success_threshold: 3,
            timeout: Duration::from_secs(30),
            half_open_max_calls: 10,
        }
    }
}

impl DeliveryConfig {
    /// Check every value; the error names the key at fault.
    pub fn validate(&self) -> Result<(), String> {
        let b = &self.circuit_breaker;
        let f = &self.flow_control;
        let start = f.initial_concurrency.unwrap_or(f.min_concurrency);
        let checks: [(bool, &str, &str); 11] = [
            (
                matches!(self.concurrency, Concurrency::Fixed(0)),
                "concurrency",
                "must be at least 1 (or `adaptive`)",
            ),
            (
                self.rate_limit.is_some_and(|r| r.per_second == 0),
                "rate_limit.per_second",
                "must be at least 1",
            ),
            (
                self.timeout.is_some_and(|t| t.is_zero()),
                "timeout",
                "must be longer than 0",
            ),
            (
                !(f.adjustment_factor > 0.0 && f.adjustment_factor < 1.0),
                "flow_control.adjustment_factor",
                "must be between 0 and 1 (exclusive)",
            ),
            (
                f.target_latency.is_zero(),
                "flow_control.target_latency",
                "must be longer than 0",
            ),
            (
                f.max_concurrency == 0,
                "flow_control.max_concurrency",
                "must be at least 1",
            ),
            (
                f.min_concurrency == 0 || f.min_concurrency > f.max_concurrency,
                "flow_control.min_concurrency",
                "must be at least 1 and at most `max_concurrency`",
            ),
            (
                start < f.min_concurrency || start > f.max_concurrency,
                "flow_control.initial_concurrency",
                "must be between `min_concurrency` and `max_concurrency`",
            ),
            (
                f.idle_timeout.is_some_and(|t| t.is_zero()),
                "flow_control.idle_timeout",
                "must be longer than 0",
            ),
            (
                b.enabled && (b.failure_threshold == 0 || b.success_threshold == 0),
                "circuit_breaker.failure_threshold / success_threshold",
                "must be at least 1",
            ),
            (
                b.enabled && b.half_open_max_calls == 0,
                "circuit_breaker.half_open_max_calls",
                "must be at least 1",
            ),
        ];
        match checks.iter().find(|c| c.0) {
            Some((_, key, why)) => Err(format!("delivery `{key}` {why}")),
            None => Ok(()),
        }
    }

    /// The most batches the stack can hold at once: the dispatch loop takes
    /// no more from intake than this, so the intake bound pushes back.
    pub fn max_in_flight(&self) -> usize {
        match self.concurrency {
            Concurrency::Fixed(n) => n.max(1),
            Concurrency::Adaptive => self.flow_control.max_concurrency.max(1),
        }
    }
}

/// Durations as humantime strings in serde (`"1s"`, `"5m"`).
pub(crate) mod humantime_serde {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_duration(*d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map_err(|e| {
            serde::de::Error::custom(format!("`{text}`: {e} (examples: 500ms, 5s, 1m)"))
        })
    }

    pub mod option {
        use super::*;

        pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
            match d {
                Some(d) => super::serialize(d, s),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
            match Option::<String>::deserialize(d)? {
                None => Ok(None),
                Some(text) => humantime::parse_duration(&text).map(Some).map_err(|e| {
                    serde::de::Error::custom(format!("`{text}`: {e} (examples: 500ms, 5s, 1m)"))
                }),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_keys_deserialize_with_defaults_for_the_rest() {
        let cfg: DeliveryConfig = serde_json::from_str(
            r#"{"max_retries": 5, "retry_backoff": "2s", "concurrency": "adaptive",
                "flow_control": {"target_latency": "50ms"},
                "circuit_breaker": {"failure_threshold": 2, "timeout": "10s"},
                "rate_limit": {"per_second": 100, "unit": "events"}}"#,
        )
        .unwrap();
        assert_eq!(cfg.max_retries, 5);
        assert_eq!(cfg.retry_backoff, Duration::from_secs(2));
        assert_eq!(cfg.concurrency, Concurrency::Adaptive);
        assert_eq!(cfg.flow_control.target_latency, Duration::from_millis(50));
        assert_eq!(cfg.flow_control.adjustment_factor, 0.1);
        assert_eq!(cfg.circuit_breaker.failure_threshold, 2);
        assert_eq!(cfg.circuit_breaker.success_threshold, 3);
        assert_eq!(cfg.circuit_breaker.half_open_max_calls, 10);
        assert!(cfg.validate().is_ok());
        let fixed: DeliveryConfig =
            serde_json::from_str(r#"{"concurrency": {"fixed": 8}}"#).unwrap();
        assert_eq!(fixed.max_in_flight(), 8);
    }

    #[test]
    fn bad_values_name_their_key() {
        let mut cfg = DeliveryConfig::default();
        cfg.flow_control.adjustment_factor = 1.5;
        let err = cfg.validate().unwrap_err();
        assert!(err.contains("flow_control.adjustment_factor"), "{err}");
        let err = serde_json::from_str::<DeliveryConfig>(r#"{"retry_backoff": "soon"}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("soon"), "{err}");
        assert!(serde_json::from_str::<DeliveryConfig>(r#"{"max_retires": 1}"#).is_err());
    }
}
