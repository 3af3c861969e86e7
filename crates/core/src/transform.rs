//! Transforms: cheap, synchronous, no I/O. A transform edits an event in place
//! and says whether to keep it; the engine records filtered events' fate, so a
//! transform never has to think about acknowledgements.

use crate::Event;

/// Keep or filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Pass the event on.
    Keep,
    /// Remove it on purpose (counted as filtered).
    Filter,
}

/// A pluggable event transform.
pub trait Transform: Send + Sync + 'static {
    /// Edit `event` and decide its verdict.
    fn apply(&self, event: &mut Event) -> Verdict;
}
