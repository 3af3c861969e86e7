//! `sample`: keep one record in `rate`; records matching `always_keep` are
//! never sampled out.

use crate::condition::Condition;
use crate::error::TransformError;
use crate::path::record;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use switchyard_core::{Event, Transform, Verdict};

/// Keeps 1 in `rate`.
pub struct Sample {
    rate: u64,
    always_keep: Option<Condition>,
    seen: AtomicU64,
}

impl Sample {
    /// Keep one in `rate` (1 keeps all).
    pub fn new(rate: u64, always_keep: Option<&str>) -> Result<Self, TransformError> {
        if rate == 0 {
            return Err(TransformError::config("rate", "must be at least 1"));
        }
        let always_keep = always_keep
            .map(Condition::parse)
            .transpose()
            .map_err(|e| TransformError::config("always_keep", e.0))?;
        Ok(Self {
            rate,
            always_keep,
            seen: AtomicU64::new(0),
        })
    }
}

impl Transform for Sample {
    fn apply(&self, event: &mut Event) -> Verdict {
        if let (Some(c), Some(rec)) = (&self.always_keep, record(event)) {
            if c.holds(rec) {
                return Verdict::Keep;
            }
        }
        if self.seen.fetch_add(1, Relaxed).is_multiple_of(self.rate) {
            Verdict::Keep
        } else {
            Verdict::Filter
        }
    }
}
