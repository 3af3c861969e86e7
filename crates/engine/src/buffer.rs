//! A bounded buffer of events: the queue between sources and the engine, and
//! the per-sink buffer of a pipeline.
//!
//! Bounded twice, in *events* and in *bytes* (by [`Event::size_hint`]), so one
//! source sending 1000-event chunks and another sending single events share
//! one honest bound, and a burst of large events cannot exhaust memory.
//!
//! What a sender meets when the buffer is full is the buffer's [`WhenFull`]:
//! - `block` (default): the sender waits for room — backpressure reaches the
//!   source (an HTTP client gets `503` after its wait, a file tail stops
//!   reading, a Redis consumer stops reading). Nothing is lost.
//! - `drop_newest`: the part of the incoming chunk that does not fit is
//!   discarded; what is already buffered is kept.
//! - `drop_oldest`: the incoming chunk is kept whole and the oldest buffered
//!   events are discarded to make room.
//!
//! Discarded events are resolved [`Fate::Dropped`] (their sources learn it) and
//! counted by reason. Watermarks report pressure with hysteresis: the buffer is
//! "under pressure" from the moment its utilization reaches the high watermark
//! until it falls to the low one; each entry into that state is counted
//! (`backpressure_triggered`).
//!
//! Written by hand on a mutex and two `Notify`s because no kept channel offers
//! a byte bound, all-or-nothing chunks and eviction from the receiving end.

use crate::disk_buffer::{AppendError, Appender};
use prometheus_client::metrics::histogram::Histogram;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use switchyard_core::{Event, Fate};
use tokio::sync::Notify;
use tokio::time::Instant;

/// What a sender meets when the buffer has no room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    /// Wait for room (backpressure). Nothing is lost.
    #[default]
    Block,
    /// Discard what does not fit of the incoming chunk.
    DropNewest,
    /// Discard the oldest buffered events to make room.
    DropOldest,
}

impl std::str::FromStr for WhenFull {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "block" => Ok(Self::Block),
            "drop_newest" => Ok(Self::DropNewest),
            "drop_oldest" => Ok(Self::DropOldest),
            other => Err(format!(
                "`{other}` is not one of block, drop_newest, drop_oldest"
            )),
        }
    }
}

/// A buffer's bounds and policy.
#[derive(Debug, Clone)]
pub struct BufferConfig {
    /// Most events held.
    pub max_events: usize,
    /// Most bytes held (by [`Event::size_hint`]).
    pub max_bytes: usize,
    /// Policy when full.
    pub when_full: WhenFull,
    /// Utilization (0–1) at which the buffer is under pressure.
    pub high_watermark: f64,
    /// Utilization at which the pressure ends.
    pub low_watermark: f64,
}

impl BufferConfig {
    /// `max_events` events, 256 MiB, blocking, watermarks 0.8 / 0.6.
    pub fn events(max_events: usize) -> Self {
        Self {
            max_events,
            ..Self::default()
        }
    }

    /// The first inconsistency, naming the key at fault.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_events == 0 {
            return Err("max_events: must be greater than 0".into());
        }
        if self.max_bytes == 0 {
            return Err("max_bytes: must be greater than 0".into());
        }
        for (key, v) in [
            ("high_watermark", self.high_watermark),
            ("low_watermark", self.low_watermark),
        ] {
            if !(v > 0.0 && v <= 1.0) {
                return Err(format!("{key}: {v} is not within (0, 1]"));
            }
        }
        if self.low_watermark >= self.high_watermark {
            return Err(format!(
                "low_watermark: {} must be below high_watermark ({})",
                self.low_watermark, self.high_watermark
            ));
        }
        Ok(())
    }
}

impl Default for BufferConfig {
    fn default() -> Self {
        Self {
            max_events: 10_000,
            max_bytes: 256 << 20,
            when_full: WhenFull::Block,
            high_watermark: 0.8,
            low_watermark: 0.6,
        }
    }
}

/// Live figures of one buffer, readable without its lock.
#[derive(Debug, Default)]
pub struct BufferStats {
    /// Events held now.
    pub events: AtomicU64,
    /// Bytes held now.
    pub bytes: AtomicU64,
    /// Bound in events.
    pub max_events: AtomicU64,
    /// Bound in bytes.
    pub max_bytes: AtomicU64,
    /// Events discarded by `drop_newest`.
    pub dropped_newest: AtomicU64,
    /// Events discarded by `drop_oldest`.
    pub dropped_oldest: AtomicU64,
    /// Entries into the under-pressure state.
    pub backpressure_triggered: AtomicU64,
    /// Whether the buffer is under pressure now.
    pub under_pressure: AtomicBool,
    /// Events that entered the buffer.
    pub accepted: AtomicU64,
}

impl BufferStats {
    /// Fill ratio (0–1): the larger of the event and byte ratios.
    pub fn utilization(&self) -> f64 {
        ratio(
            self.events.load(Relaxed),
            self.max_events.load(Relaxed),
            self.bytes.load(Relaxed),
            self.max_bytes.load(Relaxed),
        )
    }

    /// Events discarded by either drop policy.
    pub fn dropped(&self) -> u64 {
        self.dropped_newest.load(Relaxed) + self.dropped_oldest.load(Relaxed)
    }
}

fn ratio(events: u64, max_events: u64, bytes: u64, max_bytes: u64) -> f64 {
    let e = events as f64 / max_events.max(1) as f64;
    let b = bytes as f64 / max_bytes.max(1) as f64;
    e.max(b)
}

/// Why a chunk was not enqueued; the events are handed back.
#[derive(Debug)]
pub enum SendError {
    /// No room within the wait.
    Full(Vec<Event>),
    /// The receiving end has stopped.
    Closed(Vec<Event>),
}

struct Chunk {
    events: Vec<Event>,
    bytes: usize,
    since: Instant,
}

struct State {
    queue: VecDeque<Chunk>,
    events: usize,
    bytes: usize,
    senders: usize,
    closed: bool,
}

struct Shared {
    state: Mutex<State>,
    /// Wakes the receiver: a chunk arrived or the last sender left.
    ready: Notify,
    /// Wakes waiting senders: room was made or the buffer closed.
    room: Notify,
    config: BufferConfig,
    stats: Arc<BufferStats>,
    wait: Option<Histogram>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent counters (every
        // update is a single statement), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Publish the fill level and move the pressure state with hysteresis.
    fn publish(&self, st: &State) {
        let s = &self.stats;
        s.events.store(st.events as u64, Relaxed);
        s.bytes.store(st.bytes as u64, Relaxed);
        let u = ratio(
            st.events as u64,
            self.config.max_events as u64,
            st.bytes as u64,
            self.config.max_bytes as u64,
        );
        let under = s.under_pressure.load(Relaxed);
        if !under && u >= self.config.high_watermark {
            s.under_pressure.store(true, Relaxed);
            s.backpressure_triggered.fetch_add(1, Relaxed);
        } else if under && u <= self.config.low_watermark {
            s.under_pressure.store(false, Relaxed);
        }
    }

    fn fits(&self, st: &State, n: usize, bytes: usize) -> bool {
        let fits =
            st.events + n <= self.config.max_events && st.bytes + bytes <= self.config.max_bytes;
        // A chunk larger than the whole buffer enters an empty buffer instead
        // of waiting forever.
        fits || st.events == 0
    }

    fn push(&self, st: &mut State, events: Vec<Event>, bytes: usize) {
        st.events += events.len();
        st.bytes += bytes;
        self.stats.accepted.fetch_add(events.len() as u64, Relaxed);
        st.queue.push_back(Chunk {
            events,
            bytes,
            since: Instant::now(),
        });
    }
}

fn bytes_of(events: &[Event]) -> usize {
    events.iter().map(Event::size_hint).sum()
}

fn discard(events: impl IntoIterator<Item = Event>) {
    for mut e in events {
        e.resolve(Fate::Dropped);
    }
}

/// A buffer of `capacity` events that blocks when full: the engine's intake.
pub fn intake(capacity: usize) -> (IntakeSender, IntakeReceiver) {
    buffer(BufferConfig::events(capacity.max(1)), None)
}

/// A buffer with `config`; `wait` observes how long each chunk stayed in it.
pub fn buffer(config: BufferConfig, wait: Option<Histogram>) -> (IntakeSender, IntakeReceiver) {
    let stats = Arc::new(BufferStats::default());
    stats.max_events.store(config.max_events as u64, Relaxed);
    stats.max_bytes.store(config.max_bytes as u64, Relaxed);
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            queue: VecDeque::new(),
            events: 0,
            bytes: 0,
            senders: 1,
            closed: false,
        }),
        ready: Notify::new(),
        room: Notify::new(),
        config,
        stats,
        wait,
    });
    (
        IntakeSender {
            shared: shared.clone(),
            disk: None,
            pipelined: false,
        },
        IntakeReceiver { shared },
    )
}

/// The sources' end. Cloneable; the buffer ends once every sender is gone.
///
/// With a disk buffer in front ([`crate::disk_buffer`]) the sources' senders
/// append to disk and the disk buffer's reader is the queue's only direct
/// sender: a disk sender does not count as a sender of the queue.
pub struct IntakeSender {
    shared: Arc<Shared>,
    disk: Option<Appender>,
    /// With a disk buffer: `send` returns once the chunk is queued for the
    /// writer, not after its sync (see [`IntakeSender::pipelined`]).
    pipelined: bool,
}

impl Clone for IntakeSender {
    fn clone(&self) -> Self {
        if self.disk.is_none() {
            self.shared.lock().senders += 1;
        }
        Self {
            shared: self.shared.clone(),
            disk: self.disk.clone(),
            pipelined: self.pipelined,
        }
    }
}

impl Drop for IntakeSender {
    fn drop(&mut self) {
        if self.disk.is_some() {
            return;
        }
        let last = {
            let mut st = self.shared.lock();
            st.senders -= 1;
            st.senders == 0
        };
        if last {
            self.shared.ready.notify_one();
        }
    }
}

impl IntakeSender {
    /// Enqueue `events` by the buffer's policy; with `block`, wait for room
    /// as long as needed.
    pub async fn send(&self, events: Vec<Event>) -> Result<(), SendError> {
        self.enqueue(events, None).await
    }

    /// Like [`send`](Self::send), but with `block` give up after `wait`: then
    /// none of `events` is enqueued.
    pub async fn send_timeout(&self, events: Vec<Event>, wait: Duration) -> Result<(), SendError> {
        self.enqueue(events, Some(Instant::now() + wait)).await
    }

    /// A sender for the same queue whose chunks go through a disk buffer.
    /// `self` is consumed so the queue's only direct sender is the buffer's
    /// reader.
    pub(crate) fn with_disk(self, appender: Appender) -> IntakeSender {
        IntakeSender {
            shared: self.shared.clone(),
            disk: Some(appender),
            pipelined: false,
        }
    }

    /// For a sender in front of a disk buffer: `send` returns as soon as the
    /// chunk is queued for the disk writer, and the events' tokens are
    /// resolved only after the sync that covers them. For one task that
    /// appends chunk after chunk (a pipeline's router), so that its chunks
    /// share group commits instead of waiting for one sync each; whoever
    /// needs durability waits for the tokens. No effect on a memory buffer.
    pub fn pipelined(mut self) -> Self {
        self.pipelined = true;
        self
    }

    async fn enqueue(
        &self,
        events: Vec<Event>,
        deadline: Option<Instant>,
    ) -> Result<(), SendError> {
        if events.is_empty() {
            return Ok(());
        }
        if let Some(disk) = &self.disk {
            // A disk failure is reported as `Closed`: the source is told
            // nothing was accepted, and the error is logged with its cause.
            let wait = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            let appended = if self.pipelined {
                disk.append_pipelined(events, wait).await
            } else {
                disk.append(events, wait).await
            };
            return appended.map_err(|e| match e {
                AppendError::Full(events) => SendError::Full(events),
                AppendError::Failed(events) => SendError::Closed(events),
            });
        }
        let shared = &*self.shared;
        let bytes = bytes_of(&events);
        match shared.config.when_full {
            WhenFull::Block => {}
            WhenFull::DropNewest => return self.drop_newest(events),
            WhenFull::DropOldest => return self.drop_oldest(events, bytes),
        }
        loop {
            let room = shared.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            {
                let mut st = shared.lock();
                if st.closed {
                    return Err(SendError::Closed(events));
                }
                if shared.fits(&st, events.len(), bytes) {
                    shared.push(&mut st, events, bytes);
                    shared.publish(&st);
                    drop(st);
                    shared.ready.notify_one();
                    return Ok(());
                }
                // Waiting for room is the pressure this buffer reports.
                if !shared.stats.under_pressure.swap(true, Relaxed) {
                    shared.stats.backpressure_triggered.fetch_add(1, Relaxed);
                }
            }
            match deadline {
                None => room.await,
                Some(d) => {
                    if tokio::time::timeout_at(d, room).await.is_err() {
                        return Err(SendError::Full(events));
                    }
                }
            }
        }
    }

    fn drop_newest(&self, mut events: Vec<Event>) -> Result<(), SendError> {
        let shared = &*self.shared;
        let mut st = shared.lock();
        if st.closed {
            return Err(SendError::Closed(events));
        }
        // Keep the longest prefix that fits both bounds.
        let mut keep = 0;
        let mut kept_bytes = 0;
        for e in &events {
            let b = e.size_hint();
            let n = keep + 1;
            if st.events + n > shared.config.max_events
                || st.bytes + kept_bytes + b > shared.config.max_bytes
            {
                break;
            }
            keep = n;
            kept_bytes += b;
        }
        let rest = events.split_off(keep);
        if !events.is_empty() {
            shared.push(&mut st, events, kept_bytes);
        }
        shared.publish(&st);
        drop(st);
        shared.ready.notify_one();
        if !rest.is_empty() {
            shared
                .stats
                .dropped_newest
                .fetch_add(rest.len() as u64, Relaxed);
            discard(rest);
        }
        Ok(())
    }

    fn drop_oldest(&self, events: Vec<Event>, bytes: usize) -> Result<(), SendError> {
        let shared = &*self.shared;
        let mut st = shared.lock();
        if st.closed {
            return Err(SendError::Closed(events));
        }
        shared.push(&mut st, events, bytes);
        let mut evicted = Vec::new();
        let (max_e, max_b) = (shared.config.max_events, shared.config.max_bytes);
        let State {
            queue,
            events: held,
            bytes: held_bytes,
            ..
        } = &mut *st;
        while *held > max_e || *held_bytes > max_b {
            let Some(front) = queue.front_mut() else {
                break;
            };
            // Evict whole chunks while that is not too much, else part of one.
            let over_e = held.saturating_sub(max_e);
            let take = if over_e >= front.events.len() || *held_bytes - front.bytes >= max_b {
                front.events.len()
            } else {
                let mut k = over_e.max(1);
                let mut freed: usize = front.events[..k].iter().map(Event::size_hint).sum();
                while *held_bytes - freed > max_b && k < front.events.len() {
                    freed += front.events[k].size_hint();
                    k += 1;
                }
                k
            };
            let gone: Vec<Event> = front.events.drain(..take).collect();
            let gone_bytes = if front.events.is_empty() {
                front.bytes
            } else {
                bytes_of(&gone).min(front.bytes)
            };
            front.bytes -= gone_bytes;
            if front.events.is_empty() {
                queue.pop_front();
            }
            *held -= gone.len();
            *held_bytes -= gone_bytes;
            evicted.extend(gone);
        }
        shared.publish(&st);
        drop(st);
        shared.ready.notify_one();
        if !evicted.is_empty() {
            shared
                .stats
                .dropped_oldest
                .fetch_add(evicted.len() as u64, Relaxed);
            discard(evicted);
        }
        Ok(())
    }

    /// Events that could be enqueued now without waiting.
    pub fn room(&self) -> usize {
        let st = self.shared.lock();
        self.shared.config.max_events.saturating_sub(st.events)
    }

    /// The bound, in events.
    pub fn capacity(&self) -> usize {
        self.shared.config.max_events
    }

    /// The buffer's live figures.
    pub fn stats(&self) -> Arc<BufferStats> {
        self.shared.stats.clone()
    }
}

/// The engine's end.
pub struct IntakeReceiver {
    shared: Arc<Shared>,
}

impl IntakeReceiver {
    /// The next chunk; `None` once every sender is gone (or the buffer was
    /// closed) and the buffer is empty. Taking a chunk frees its room.
    pub async fn recv(&mut self) -> Option<Vec<Event>> {
        let shared = &*self.shared;
        loop {
            let ready = shared.ready.notified();
            tokio::pin!(ready);
            ready.as_mut().enable();
            {
                let mut st = shared.lock();
                if let Some(chunk) = st.queue.pop_front() {
                    st.events -= chunk.events.len();
                    st.bytes -= chunk.bytes;
                    shared.publish(&st);
                    drop(st);
                    shared.room.notify_waiters();
                    if let Some(h) = &shared.wait {
                        h.observe(chunk.since.elapsed().as_secs_f64());
                    }
                    return Some(chunk.events);
                }
                if st.senders == 0 || st.closed {
                    return None;
                }
            }
            ready.await;
        }
    }

    /// Refuse new chunks; those already queued are still received.
    pub fn close(&mut self) {
        self.shared.lock().closed = true;
        self.shared.room.notify_waiters();
        self.shared.ready.notify_one();
    }

    /// The buffer's live figures.
    pub fn stats(&self) -> Arc<BufferStats> {
        self.shared.stats.clone()
    }
}

impl Drop for IntakeReceiver {
    fn drop(&mut self) {
        self.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_core::{AckBatch, LogRecord};

    fn chunk(n: usize) -> Vec<Event> {
        (0..n).map(|_| LogRecord::new("x").into()).collect()
    }

    fn msgs(events: &[Event]) -> Vec<String> {
        events
            .iter()
            .map(|e| match &e.payload {
                switchyard_core::Payload::Log(r) => r.message.clone().unwrap(),
                _ => unreachable!(),
            })
            .collect()
    }

    fn named(from: usize, n: usize) -> Vec<Event> {
        (from..from + n)
            .map(|i| LogRecord::new(i.to_string()).into())
            .collect()
    }

    fn config(max_events: usize, when_full: WhenFull) -> BufferConfig {
        BufferConfig {
            max_events,
            when_full,
            ..BufferConfig::default()
        }
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

    #[tokio::test(start_paused = true)]
    async fn bounded_in_bytes_too() {
        let big = "y".repeat(1000);
        let (tx, mut rx) = buffer(
            BufferConfig {
                max_bytes: 2500,
                ..config(100, WhenFull::Block)
            },
            None,
        );
        let one = || vec![Event::from(LogRecord::new(big.clone()))];
        tx.send(one()).await.unwrap();
        tx.send(one()).await.unwrap();
        assert!(matches!(
            tx.send_timeout(one(), Duration::from_millis(10)).await,
            Err(SendError::Full(_))
        ));
        rx.recv().await.unwrap();
        tx.send_timeout(one(), Duration::from_millis(10))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_blocked_sender_resumes_when_room_is_made() {
        let (tx, mut rx) = intake(2);
        tx.send(chunk(2)).await.unwrap();
        let waiting = tokio::spawn({
            let tx = tx.clone();
            async move { tx.send(chunk(2)).await.is_ok() }
        });
        tokio::task::yield_now().await;
        assert_eq!(rx.recv().await.unwrap().len(), 2);
        assert!(waiting.await.unwrap());
        assert_eq!(rx.recv().await.unwrap().len(), 2);
        // Full twice: once before the wait, once after the second chunk.
        assert_eq!(tx.stats().backpressure_triggered.load(Relaxed), 2);
    }

    #[tokio::test]
    async fn ends_when_the_last_sender_is_gone_after_draining() {
        let (tx, mut rx) = intake(10);
        let tx2 = tx.clone();
        tx.send(chunk(1)).await.unwrap();
        drop(tx);
        drop(tx2);
        assert_eq!(rx.recv().await.unwrap().len(), 1);
        assert!(rx.recv().await.is_none());
    }

    #[tokio::test]
    async fn close_refuses_new_chunks_and_wakes_blocked_senders() {
        let (tx, mut rx) = intake(1);
        tx.send(chunk(1)).await.unwrap();
        let blocked = tokio::spawn({
            let tx = tx.clone();
            async move { tx.send(chunk(1)).await }
        });
        tokio::task::yield_now().await;
        rx.close();
        assert!(matches!(blocked.await.unwrap(), Err(SendError::Closed(_))));
        assert_eq!(rx.recv().await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn drop_newest_keeps_what_was_there_and_counts_the_rest() {
        let (tx, mut rx) = buffer(config(5, WhenFull::DropNewest), None);
        tx.send(named(0, 3)).await.unwrap();
        tx.send(named(3, 4)).await.unwrap();
        assert_eq!(tx.stats().dropped_newest.load(Relaxed), 2);
        assert_eq!(msgs(&rx.recv().await.unwrap()), ["0", "1", "2"]);
        assert_eq!(msgs(&rx.recv().await.unwrap()), ["3", "4"]);
    }

    #[tokio::test]
    async fn drop_oldest_keeps_the_newest_and_counts_the_evicted() {
        let (tx, mut rx) = buffer(config(5, WhenFull::DropOldest), None);
        tx.send(named(0, 3)).await.unwrap();
        tx.send(named(3, 4)).await.unwrap();
        assert_eq!(tx.stats().dropped_oldest.load(Relaxed), 2);
        assert_eq!(msgs(&rx.recv().await.unwrap()), ["2"]);
        assert_eq!(msgs(&rx.recv().await.unwrap()), ["3", "4", "5", "6"]);
        // A chunk larger than the buffer keeps only its newest events.
        tx.send(named(10, 7)).await.unwrap();
        assert_eq!(
            msgs(&rx.recv().await.unwrap()),
            ["12", "13", "14", "15", "16"]
        );
        assert_eq!(tx.stats().dropped_oldest.load(Relaxed), 4);
    }

    #[tokio::test]
    async fn discarded_events_are_reported_dropped_to_their_source() {
        let (tx, _rx) = buffer(config(1, WhenFull::DropNewest), None);
        let (batch, outcome) = AckBatch::new();
        let events: Vec<Event> = chunk(3)
            .into_iter()
            .map(|e| e.with_ack(batch.token()))
            .collect();
        drop(batch);
        tx.send(events).await.unwrap();
        drop(tx);
        drop(_rx);
        let o = outcome.await.unwrap();
        assert_eq!(o.dropped, 2);
    }

    #[tokio::test]
    async fn watermarks_have_hysteresis() {
        let (tx, mut rx) = buffer(config(10, WhenFull::DropNewest), None);
        let s = tx.stats();
        tx.send(chunk(7)).await.unwrap();
        assert!(!s.under_pressure.load(Relaxed));
        tx.send(chunk(1)).await.unwrap(); // 0.8
        assert!(s.under_pressure.load(Relaxed));
        rx.recv().await.unwrap(); // 7 taken, 1 left: 0.1
        assert!(!s.under_pressure.load(Relaxed));
        tx.send(chunk(6)).await.unwrap(); // 0.7: between the marks
        assert!(!s.under_pressure.load(Relaxed));
        tx.send(chunk(1)).await.unwrap(); // 0.8 again
        assert!(s.under_pressure.load(Relaxed));
        assert_eq!(s.backpressure_triggered.load(Relaxed), 2);
        assert!((s.utilization() - 0.8).abs() < 1e-9);
    }

    #[test]
    fn config_errors_name_the_key() {
        let bad = BufferConfig {
            low_watermark: 0.9,
            ..BufferConfig::default()
        };
        assert_eq!(
            bad.validate().unwrap_err(),
            "low_watermark: 0.9 must be below high_watermark (0.8)"
        );
        assert_eq!(
            "sometimes".parse::<WhenFull>().unwrap_err(),
            "`sometimes` is not one of block, drop_newest, drop_oldest"
        );
    }
}
