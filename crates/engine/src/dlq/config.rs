//! The dead-letter queue's settings, with the requirement document's defaults
//! (`max_size: 1000`, `retention_period: 24h`, `auto_retry: true`,
//! `retry_interval: 5m`).

use crate::delivery::config::humantime_serde;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// Where and how failed events are kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DlqConfig {
    /// Off: failed events are dropped (logged and counted).
    pub enabled: bool,
    /// Directory of the segment files.
    pub dir: PathBuf,
    /// Most records kept; beyond it failed events are dropped ("dlq full").
    pub max_size: usize,
    /// Records whose first failure is older are purged.
    #[serde(with = "humantime_serde")]
    pub retention_period: Duration,
    /// Re-send the records through their sink every `retry_interval`.
    pub auto_retry: bool,
    /// Time between automatic re-sends.
    #[serde(with = "humantime_serde")]
    pub retry_interval: Duration,
}

impl Default for DlqConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            dir: PathBuf::from("switchyard-dlq"),
            max_size: 1000,
            retention_period: Duration::from_secs(24 * 3600),
            auto_retry: true,
            retry_interval: Duration::from_secs(300),
        }
    }
}

impl DlqConfig {
    /// Check every value; the error names the key at fault.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_size == 0 {
            return Err("dlq `max_size` must be at least 1".into());
        }
        if self.retention_period.is_zero() {
            return Err("dlq `retention_period` must be longer than 0".into());
        }
        if self.auto_retry && self.retry_interval.is_zero() {
            return Err("dlq `retry_interval` must be longer than 0".into());
        }
        Ok(())
    }
}
