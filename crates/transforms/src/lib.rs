//! Transforms for log records.
//!
//! # Layout
//! - [`path`]: addressing `message`, `level`, `labels.X` and fields (`a.b`).
//! - [`condition`]: the condition language of `filter` and `sample`.
//! - [`filter`], [`enrich`], [`remap`], [`dedupe`], [`sample`]: one transform each.
//! - [`config`]: settings as written in configuration, and building a chain.
//!
//! Every transform passes events that are not log records unchanged.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod condition;
pub mod config;
pub mod dedupe;
pub mod enrich;
pub mod filter;
pub mod path;
pub mod remap;
pub mod sample;

pub use config::{build_chain, TransformConfig};

use switchyard_core::{Event, Transform, Verdict};

/// Transforms applied in order; the first that filters ends the chain.
pub struct Chain {
    steps: Vec<Box<dyn Transform>>,
}

impl Chain {
    /// A chain of `steps`.
    pub fn new(steps: Vec<Box<dyn Transform>>) -> Self {
        Self { steps }
    }

    /// Number of steps.
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    /// True when there are no steps.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }
}

impl Transform for Chain {
    fn apply(&self, event: &mut Event) -> Verdict {
        for step in &self.steps {
            if step.apply(event) == Verdict::Filter {
                return Verdict::Filter;
            }
        }
        Verdict::Keep
    }
}
