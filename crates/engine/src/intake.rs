//! The intake queue: bounded in *events*, not messages, so one source sending
//! 1000-event chunks and another sending single events share one honest bound.
//! A sender waits for room (backpressure) or gives up after a deadline.
//!
//! With a disk buffer the sources' senders append to disk instead
//! ([`crate::disk_buffer`]); the buffer's reader feeds this queue.

use crate::disk_buffer::{AppendError, Appender};
use std::sync::Arc;
use std::time::Duration;
use switchyard_core::Event;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

type Chunk = (Vec<Event>, OwnedSemaphorePermit);

/// A queue of `capacity` events.
pub fn intake(capacity: usize) -> (IntakeSender, IntakeReceiver) {
    let capacity = capacity.clamp(1, Semaphore::MAX_PERMITS);
    let (tx, rx) = mpsc::unbounded_channel();
    let room = Arc::new(Semaphore::new(capacity));
    (
        IntakeSender {
            route: Route::Memory(tx),
            room: room.clone(),
            capacity,
        },
        IntakeReceiver { rx, room },
    )
}

/// The sources' end. Cloneable.
#[derive(Clone)]
pub struct IntakeSender {
    route: Route,
    /// The queue's room and bound, also reported by a disk-route sender.
    room: Arc<Semaphore>,
    capacity: usize,
}

/// Where a sender's chunks go.
#[derive(Clone)]
enum Route {
    /// Straight into the queue.
    Memory(mpsc::UnboundedSender<Chunk>),
    /// Onto disk first; the disk buffer's reader feeds the queue.
    Disk(Appender),
}

/// Why a chunk was not enqueued; the events are handed back.
#[derive(Debug)]
pub enum SendError {
    /// No room within the wait.
    Full(Vec<Event>),
    /// The engine has stopped.
    Closed(Vec<Event>),
}

impl IntakeSender {
    /// Enqueue all of `events` at once, waiting for room as long as needed.
    pub async fn send(&self, events: Vec<Event>) -> Result<(), SendError> {
        self.enqueue(events, None).await
    }

    /// Enqueue all of `events` at once, or none of them if there is no room
    /// within `wait`.
    pub async fn send_timeout(&self, events: Vec<Event>, wait: Duration) -> Result<(), SendError> {
        self.enqueue(events, Some(wait)).await
    }

    /// A sender for the same queue whose chunks go through a disk buffer.
    /// `self` is consumed so the queue's only direct sender is the buffer's
    /// reader.
    pub(crate) fn with_disk(self, appender: Appender) -> IntakeSender {
        IntakeSender {
            route: Route::Disk(appender),
            room: self.room,
            capacity: self.capacity,
        }
    }

    async fn enqueue(&self, events: Vec<Event>, wait: Option<Duration>) -> Result<(), SendError> {
        if events.is_empty() {
            return Ok(());
        }
        let tx = match &self.route {
            Route::Memory(tx) => tx,
            // A disk failure is reported as `Closed`: the source is told
            // nothing was accepted, and the error is logged with its cause.
            Route::Disk(disk) => {
                return disk.append(events, wait).await.map_err(|e| match e {
                    AppendError::Full(events) => SendError::Full(events),
                    AppendError::Failed(events) => SendError::Closed(events),
                })
            }
        };
        // A chunk larger than the whole queue waits for an empty queue instead
        // of waiting forever.
        let n = events.len().min(self.capacity) as u32;
        let acquire = self.room.clone().acquire_many_owned(n);
        let permit = match wait {
            None => acquire.await,
            Some(w) => match tokio::time::timeout(w, acquire).await {
                Ok(p) => p,
                Err(_) => return Err(SendError::Full(events)),
            },
        };
        let Ok(permit) = permit else {
            return Err(SendError::Closed(events));
        };
        tx.send((events, permit))
            .map_err(|e| SendError::Closed(e.0 .0))
    }

    /// Events that could be enqueued now without waiting.
    pub fn room(&self) -> usize {
        self.room.available_permits()
    }

    /// The bound, in events.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

/// The engine's end.
pub struct IntakeReceiver {
    rx: mpsc::UnboundedReceiver<Chunk>,
    room: Arc<Semaphore>,
}

impl IntakeReceiver {
    /// The next chunk; `None` once every sender is gone and the queue is empty.
    /// Taking a chunk frees its room.
    pub async fn recv(&mut self) -> Option<Vec<Event>> {
        self.rx.recv().await.map(|(events, _permit)| events)
    }

    /// Refuse new chunks; those already queued are still received.
    pub fn close(&mut self) {
        self.room.close();
        self.rx.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_core::LogRecord;

    fn chunk(n: usize) -> Vec<Event> {
        (0..n).map(|_| LogRecord::new("x").into()).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn bounded_in_events_and_all_or_nothing() {
        let (tx, mut rx) = intake(10);
        tx.send(chunk(8)).await.unwrap();
        match tx.send_timeout(chunk(3), Duration::from_millis(50)).await {
            Err(SendError::Full(back)) => assert_eq!(back.len(), 3),
            other => panic!("expected Full, got {other:?}"),
        }
        assert_eq!(rx.recv().await.unwrap().len(), 8);
        tx.send_timeout(chunk(3), Duration::from_millis(50))
            .await
            .unwrap();
        assert_eq!(rx.recv().await.unwrap().len(), 3);
    }

    #[tokio::test]
    async fn oversized_chunk_enters_an_empty_queue() {
        let (tx, mut rx) = intake(4);
        tx.send(chunk(9)).await.unwrap();
        assert_eq!(rx.recv().await.unwrap().len(), 9);
    }
}
