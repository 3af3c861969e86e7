//! In-process fan-out bus. `publish` never waits: each subscriber has its own
//! bounded buffer, and an event that does not fit is dropped for that
//! subscriber only and counted.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use switchyard_core::{BusStats, Event, EventBus, Subscription};
use tokio::sync::mpsc;

struct Subscriber {
    tx: mpsc::Sender<Event>,
    dropped: Arc<AtomicU64>,
}

/// The in-memory bus.
pub struct MemoryBus {
    buffer: usize,
    subscribers: RwLock<Vec<Subscriber>>,
    published: AtomicU64,
    dropped: AtomicU64,
}

impl MemoryBus {
    /// A bus whose subscribers each buffer up to `buffer` events (at least 1).
    pub fn new(buffer: usize) -> Self {
        Self {
            buffer: buffer.max(1),
            subscribers: RwLock::new(Vec::new()),
            published: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        }
    }

    /// What the bus lost, by reason (the `reason` label of
    /// `dispatcher_component_discarded_events_total`): copies that found a
    /// subscriber's buffer full.
    pub fn discards(&self) -> Vec<(&'static str, u64)> {
        vec![("bus_queue_full", self.dropped.load(Ordering::Relaxed))]
    }

    fn count_drop(&self, sub: &Subscriber) {
        sub.dropped.fetch_add(1, Ordering::Relaxed);
        self.dropped.fetch_add(1, Ordering::Relaxed);
    }
}

impl EventBus for MemoryBus {
    fn publish(&self, event: Event) {
        self.published.fetch_add(1, Ordering::Relaxed);
        // A poisoned lock still holds a valid list: a panic elsewhere must not
        // stop publishing.
        let subs = self.subscribers.read().unwrap_or_else(|p| p.into_inner());
        let Some((last, rest)) = subs.split_last() else {
            return;
        };
        for sub in rest {
            if sub.tx.try_send(event.clone()).is_err() {
                self.count_drop(sub);
            }
        }
        // The last subscriber takes the original: no clone with one subscriber.
        if last.tx.try_send(event).is_err() {
            self.count_drop(last);
        }
    }

    fn subscribe(&self) -> Subscription {
        let (tx, rx) = mpsc::channel(self.buffer);
        let dropped = Arc::new(AtomicU64::new(0));
        let mut subs = self.subscribers.write().unwrap_or_else(|p| p.into_inner());
        subs.push(Subscriber {
            tx,
            dropped: dropped.clone(),
        });
        Subscription::new(rx, dropped)
    }

    fn stop(&self) {
        // Dropping the senders closes each channel after its buffered events.
        self.subscribers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    fn stats(&self) -> BusStats {
        BusStats {
            published: self.published.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_core::LogRecord;

    fn ev(n: usize) -> Event {
        LogRecord::new(format!("e{n}")).into()
    }

    fn msg(e: &Event) -> String {
        match &e.payload {
            switchyard_core::Payload::Log(r) => r.message.clone().unwrap_or_default(),
            _ => unreachable!("tests publish log records only"),
        }
    }

    #[tokio::test]
    async fn fan_out_to_every_subscriber_after_it_subscribed() {
        let bus = MemoryBus::new(10);
        bus.publish(ev(0)); // before anyone listens: nobody gets it
        let mut a = bus.subscribe();
        let mut b = bus.subscribe();
        bus.publish(ev(1));
        bus.publish(ev(2));
        bus.stop();
        for sub in [&mut a, &mut b] {
            assert_eq!(msg(&sub.recv().await.unwrap()), "e1");
            assert_eq!(msg(&sub.recv().await.unwrap()), "e2");
            assert!(sub.recv().await.is_none());
        }
        assert_eq!(
            bus.stats(),
            BusStats {
                published: 3,
                dropped: 0
            }
        );
    }

    #[tokio::test]
    async fn stuck_subscriber_does_not_block_publish_and_drops_are_per_subscriber() {
        let bus = MemoryBus::new(2);
        let stuck = bus.subscribe(); // never read
        let mut live = bus.subscribe();
        let mut got = 0;
        for i in 0..5 {
            bus.publish(ev(i)); // returns at once although `stuck` is full
            got += usize::from(live.recv().await.is_some());
        }
        assert_eq!(got, 5);
        assert_eq!(stuck.dropped(), 3);
        assert_eq!(live.dropped(), 0);
        assert_eq!(
            bus.stats(),
            BusStats {
                published: 5,
                dropped: 3
            }
        );
        assert_eq!(bus.discards(), [("bus_queue_full", 3)]);
    }

    #[tokio::test]
    async fn stop_lets_subscribers_drain_then_closes() {
        let bus = MemoryBus::new(100);
        let mut sub = bus.subscribe();
        for i in 0..50 {
            bus.publish(ev(i));
        }
        bus.stop();
        bus.publish(ev(99)); // after stop: no subscribers remain
        let mut n = 0;
        while sub.recv().await.is_some() {
            n += 1;
        }
        assert_eq!(n, 50);
    }
}
