//! `filter`: keep only the records for which a condition holds. Events that
//! are not log records pass unchanged.

use crate::condition::Condition;
use crate::error::TransformError;
use crate::path::record;
use switchyard_core::{Event, Transform, Verdict};

/// Keeps records matching a condition.
pub struct Filter {
    condition: Condition,
}

impl Filter {
    /// Keep records for which `condition` holds.
    pub fn new(condition: &str) -> Result<Self, TransformError> {
        Ok(Self {
            condition: Condition::parse(condition)
                .map_err(|e| TransformError::config("condition", e.0))?,
        })
    }
}

impl Transform for Filter {
    fn apply(&self, event: &mut Event) -> Verdict {
        match record(event) {
            Some(rec) if !self.condition.holds(rec) => Verdict::Filter,
            _ => Verdict::Keep,
        }
    }
}
