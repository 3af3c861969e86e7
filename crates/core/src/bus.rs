//! The event bus trait. Publishing never waits: a subscriber that cannot keep
//! up loses events, and the loss is counted (per subscriber and in total).

use crate::Event;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;

/// Totals since the bus started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct BusStats {
    /// Events handed to `publish`.
    pub published: u64,
    /// Copies dropped because a subscriber's buffer was full.
    pub dropped: u64,
}

/// A publish/subscribe bus of events.
pub trait EventBus: Send + Sync + 'static {
    /// Hand an event to every current subscriber, without waiting.
    fn publish(&self, event: Event);
    /// Receive every event published from now on.
    fn subscribe(&self) -> Subscription;
    /// Stop: subscribers receive what they already have, then the end.
    fn stop(&self);
    /// Totals.
    fn stats(&self) -> BusStats;
}

/// One subscriber's end of a bus.
pub struct Subscription {
    rx: mpsc::Receiver<Event>,
    dropped: Arc<AtomicU64>,
}

impl Subscription {
    /// Wrap a receiver and the counter its publisher bumps on overflow.
    pub fn new(rx: mpsc::Receiver<Event>, dropped: Arc<AtomicU64>) -> Self {
        Self { rx, dropped }
    }

    /// The next event, or `None` once the bus stopped and the buffer is empty.
    pub async fn recv(&mut self) -> Option<Event> {
        self.rx.recv().await
    }

    /// An event if one is buffered now.
    pub fn try_recv(&mut self) -> Option<Event> {
        self.rx.try_recv().ok()
    }

    /// Events this subscriber lost to a full buffer.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}
