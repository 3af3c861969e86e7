//! Batch assembly: a batch is due when it holds `batch_size` events or when
//! `flush_interval` has passed since its first event.

use std::time::Duration;
use switchyard_core::Event;
use tokio::time::Instant;

/// Accumulates events into batches.
pub struct Batcher {
    size: usize,
    interval: Duration,
    events: Vec<Event>,
    deadline: Option<Instant>,
}

impl Batcher {
    /// A batcher flushing at `size` events (at least 1) or `interval`.
    pub fn new(size: usize, interval: Duration) -> Self {
        let size = size.max(1);
        Self {
            size,
            interval,
            events: Vec::with_capacity(size),
            deadline: None,
        }
    }

    /// Add an event; returns a full batch when this one completes it.
    pub fn push(&mut self, event: Event) -> Option<Vec<Event>> {
        if self.events.is_empty() {
            self.deadline = Some(Instant::now() + self.interval);
        }
        self.events.push(event);
        (self.events.len() >= self.size).then(|| self.take())
    }

    /// When the current batch is due, if it has events.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Take whatever is there (possibly nothing).
    pub fn take(&mut self) -> Vec<Event> {
        self.deadline = None;
        std::mem::replace(&mut self.events, Vec::with_capacity(self.size))
    }
}
