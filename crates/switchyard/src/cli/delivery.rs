//! The dispatcher's delivery flags: rate limit, concurrency, timeout, circuit
//! breaker and dead-letter queue. Defaults are those of the requirement
//! document; `switchyard dispatcher --help` lists them.

use crate::cli::duration;
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;
use switchyard_engine::delivery::{
    BreakerConfig, Concurrency, DeliveryConfig, FlowControl, RateLimit, RateUnit,
};
use switchyard_engine::DlqConfig;

#[derive(Args, Debug)]
pub struct DeliveryArgs {
    /// Batches delivered to the service at the same time: a number, or
    /// `adaptive` (AIMD on latency, between 1 and --max-concurrency).
    #[arg(long, env = "DISPATCHER_CONCURRENCY", default_value = "4", value_parser = concurrency)]
    pub concurrency: Concurrency,
    /// Adaptive concurrency: a batch delivered within this time lets the limit grow.
    #[arg(long, env = "DISPATCHER_TARGET_LATENCY", default_value = "100ms", value_parser = duration)]
    pub target_latency: Duration,
    /// Adaptive concurrency: the fraction the limit shrinks by after a slow batch (0..1).
    #[arg(long, env = "DISPATCHER_ADJUSTMENT_FACTOR", default_value = "0.1")]
    pub adjustment_factor: f64,
    /// Adaptive concurrency: the highest limit.
    #[arg(long, env = "DISPATCHER_MAX_CONCURRENCY", default_value = "64")]
    pub max_concurrency: usize,
    /// Deadline of one delivery attempt (a timeout is retried). Unset: the
    /// service's own timeouts only.
    #[arg(long, env = "DISPATCHER_DELIVERY_TIMEOUT", value_parser = duration)]
    pub delivery_timeout: Option<Duration>,
    /// Stop retrying a batch after trying it for this long (time waiting for
    /// an open circuit breaker does not count). Unset: --retry-attempts only.
    #[arg(long, env = "DISPATCHER_RETRY_MAX_ELAPSED", value_parser = duration)]
    pub retry_max_elapsed: Option<Duration>,
    /// At most this many events (or requests, see --rate-limit-unit) per second.
    #[arg(long, env = "DISPATCHER_RATE_LIMIT")]
    pub rate_limit: Option<u32>,
    /// What --rate-limit counts: `events` or `requests`.
    #[arg(long, env = "DISPATCHER_RATE_LIMIT_UNIT", default_value = "events", value_parser = rate_unit)]
    pub rate_limit_unit: RateUnit,
    /// Consecutive failed attempts that open the circuit breaker.
    #[arg(
        long,
        env = "DISPATCHER_BREAKER_FAILURE_THRESHOLD",
        default_value = "5"
    )]
    pub breaker_failure_threshold: u32,
    /// Successful trial calls that close a half-open breaker.
    #[arg(
        long,
        env = "DISPATCHER_BREAKER_SUCCESS_THRESHOLD",
        default_value = "3"
    )]
    pub breaker_success_threshold: u32,
    /// How long an open breaker refuses calls before trial calls.
    #[arg(long, env = "DISPATCHER_BREAKER_TIMEOUT", default_value = "30s", value_parser = duration)]
    pub breaker_timeout: Duration,
    /// Trial calls at once while half-open.
    #[arg(
        long,
        env = "DISPATCHER_BREAKER_HALF_OPEN_MAX_CALLS",
        default_value = "10"
    )]
    pub breaker_half_open_max_calls: u32,
    /// Turn the circuit breaker off.
    #[arg(long, env = "DISPATCHER_NO_BREAKER")]
    pub no_breaker: bool,
    /// Directory of the dead-letter queue (created with its first record).
    #[arg(long, env = "DISPATCHER_DLQ_DIR", default_value = "switchyard-dlq")]
    pub dlq_dir: PathBuf,
    /// Most records in the dead-letter queue; beyond, failed events are dropped.
    #[arg(long, env = "DISPATCHER_DLQ_MAX_SIZE", default_value = "1000")]
    pub dlq_max_size: usize,
    /// Dead-letter records whose first failure is older are purged.
    #[arg(long, env = "DISPATCHER_DLQ_RETENTION", default_value = "24h", value_parser = duration)]
    pub dlq_retention: Duration,
    /// Re-send dead-letter records to the service every --dlq-retry-interval.
    #[arg(long, env = "DISPATCHER_DLQ_AUTO_RETRY", default_value_t = true, action = clap::ArgAction::Set)]
    pub dlq_auto_retry: bool,
    /// Time between automatic re-sends of dead-letter records.
    #[arg(long, env = "DISPATCHER_DLQ_RETRY_INTERVAL", default_value = "5m", value_parser = duration)]
    pub dlq_retry_interval: Duration,
    /// No dead-letter queue: events that fail for good are dropped (logged, counted).
    #[arg(long, env = "DISPATCHER_NO_DLQ")]
    pub no_dlq: bool,
    /// Longest a stop (SIGTERM, SIGINT) drains. Then delivery is abandoned:
    /// undelivered events stay in the disk buffer (--buffer-type disk), else
    /// go to the dead-letter queue with the reason `shutdown`, else are lost
    /// (counted). A second signal stops at once.
    #[arg(long, env = "DISPATCHER_SHUTDOWN_TIMEOUT", default_value = "30s", value_parser = duration)]
    pub shutdown_timeout: Duration,
}

/// A configuration error, with the flag a user typed instead of the key.
fn flag_names(error: &str) -> String {
    const FLAGS: [(&str, &str); 10] = [
        ("delivery `concurrency`", "--concurrency"),
        ("delivery `rate_limit.per_second`", "--rate-limit"),
        ("delivery `timeout`", "--delivery-timeout"),
        (
            "delivery `flow_control.adjustment_factor`",
            "--adjustment-factor",
        ),
        ("delivery `flow_control.target_latency`", "--target-latency"),
        (
            "delivery `flow_control.max_concurrency`",
            "--max-concurrency",
        ),
        (
            "delivery `circuit_breaker.failure_threshold / success_threshold`",
            "--breaker-failure-threshold / --breaker-success-threshold",
        ),
        (
            "delivery `circuit_breaker.half_open_max_calls`",
            "--breaker-half-open-max-calls",
        ),
        ("dlq `max_size`", "--dlq-max-size"),
        ("dlq `retention_period`", "--dlq-retention"),
    ];
    let mut text = error.replace("dlq `retry_interval`", "--dlq-retry-interval");
    for (key, flag) in FLAGS {
        text = text.replace(key, flag);
    }
    text
}

fn concurrency(s: &str) -> Result<Concurrency, String> {
    match s {
        "adaptive" => Ok(Concurrency::Adaptive),
        n => match n.parse::<usize>() {
            Ok(n) if n > 0 => Ok(Concurrency::Fixed(n)),
            _ => Err("expected a whole number greater than 0, or `adaptive`".into()),
        },
    }
}

fn rate_unit(s: &str) -> Result<RateUnit, String> {
    match s {
        "events" => Ok(RateUnit::Events),
        "requests" => Ok(RateUnit::Requests),
        _ => Err("expected `events` or `requests`".into()),
    }
}

impl DeliveryArgs {
    /// The delivery stack's settings, checked.
    pub fn delivery(
        &self,
        max_retries: u32,
        retry_backoff: Duration,
    ) -> anyhow::Result<DeliveryConfig> {
        let config = DeliveryConfig {
            max_retries,
            retry_backoff,
            max_elapsed: self.retry_max_elapsed,
            timeout: self.delivery_timeout,
            rate_limit: self.rate_limit.map(|per_second| RateLimit {
                per_second,
                unit: self.rate_limit_unit,
            }),
            concurrency: self.concurrency,
            flow_control: FlowControl {
                target_latency: self.target_latency,
                adjustment_factor: self.adjustment_factor,
                max_concurrency: self.max_concurrency,
                ..FlowControl::default()
            },
            circuit_breaker: BreakerConfig {
                enabled: !self.no_breaker,
                failure_threshold: self.breaker_failure_threshold,
                success_threshold: self.breaker_success_threshold,
                timeout: self.breaker_timeout,
                half_open_max_calls: self.breaker_half_open_max_calls,
            },
        };
        config
            .validate()
            .map_err(|e| anyhow::anyhow!("{}", flag_names(&e)))?;
        Ok(config)
    }

    /// The dead-letter queue's settings, or `None` with --no-dlq.
    pub fn dlq(&self) -> anyhow::Result<Option<DlqConfig>> {
        if self.no_dlq {
            return Ok(None);
        }
        let config = DlqConfig {
            enabled: true,
            dir: self.dlq_dir.clone(),
            max_size: self.dlq_max_size,
            retention_period: self.dlq_retention,
            auto_retry: self.dlq_auto_retry,
            retry_interval: self.dlq_retry_interval,
        };
        config
            .validate()
            .map_err(|e| anyhow::anyhow!("{}", flag_names(&e)))?;
        Ok(Some(config))
    }
}
