//! Redis Streams as a source: read through a consumer group, push into the
//! engine's intake (waiting for room — nothing is dropped on the way), and
//! `XACK` each entry only once the engine has decided its fate.
//!
//! The order of reads, as the spec asks: first this consumer's own pending
//! entries (id `0` onwards — a restart with the same name resumes where it
//! stopped), then new entries (`>`); every claim interval, entries that other
//! (dead) consumers left idle longer than the claim time are taken over with
//! `XAUTOCLAIM`.
//!
//! Acknowledgement: each read becomes one [`IndexedAckBatch`], so the source
//! learns the fate of every entry on its own; a small task per read awaits
//! the fates and hands the ids to one acker task, which coalesces them into
//! few `XACK`s on its own connection (the reader's connection is busy with
//! blocking reads). Per entry:
//! - delivered, filtered, or kept in the engine's dead-letter queue:
//!   acknowledged;
//! - dropped (the engine gave up without a dead-letter queue): copied to
//!   `<stream>:dead` with the reason and acknowledged, atomically — kept,
//!   and never delivered again;
//! - unresolved (lost in flight): left pending, to be re-read on restart or
//!   claimed after the claim time — a duplicate at worst, never a loss.
//!
//! Settling per entry matters: acknowledging a read only when all of it was
//! delivered let one dropped entry keep up to COUNT delivered neighbours
//! pending, re-delivered at every claim scan, forever.
//!
//! Poison entries are copied to `<stream>:dead` with the reason and
//! acknowledged in one transaction, so they never wedge the group.

pub mod source;

use redis::aio::MultiplexedConnection;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use switchyard_bus::redis::decode;
use switchyard_bus::redis::entry::RawEntry;
use switchyard_bus::redis::link::is_server_reply;
use switchyard_bus::redis::{
    ConsumerStats, Group, Link, ReadConn, ReadLink, RedisTarget, StreamId,
};
use switchyard_core::{Event, Fate, Fates, IndexedAckBatch};
use switchyard_engine::IntakeSender;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, error, info, warn};

/// How often the group's length and pending count are refreshed for stats.
const LAG_INTERVAL: Duration = Duration::from_secs(2);
/// How long acknowledgements are retried after shutdown began.
const ACK_GIVE_UP: Duration = Duration::from_secs(10);
/// The reason a dropped entry's copy in `<stream>:dead` carries.
pub const DROPPED_REASON: &str = "dropped after delivery failed";

/// What the acker does with a set of entries.
enum Settle {
    /// `XACK` them.
    Ack(Vec<StreamId>),
    /// Copy them to `<stream>:dead`, then `XACK` them.
    Keep(Vec<StreamId>),
}

/// Entries this process holds in flight, so a claim scan never hands the
/// engine a second copy of an entry it is still delivering.
type InFlight = Arc<Mutex<Held>>;

/// The ids of each batch in flight, ascending. Kept per batch, not per id:
/// hashing each id in and out of a set cost ~560 instructions an event, and
/// a claim scan, which asks, runs only every few seconds.
#[derive(Default)]
struct Held {
    next: u64,
    batches: HashMap<u64, Arc<[StreamId]>>,
}

impl Held {
    /// Hold `ids`; returns the key to release them with. Reads and claim
    /// scans return entries in ascending order, so the copy is only a
    /// safeguard.
    fn hold(&mut self, mut ids: Arc<[StreamId]>) -> u64 {
        if !ids.is_sorted() {
            let mut sorted = ids.to_vec();
            sorted.sort_unstable();
            ids = sorted.into();
        }
        let key = self.next;
        self.next += 1;
        self.batches.insert(key, ids);
        key
    }

    fn release(&mut self, key: u64) {
        self.batches.remove(&key);
    }

    /// Every held id, ascending, for a claim scan to search. Taken once per
    /// scan: asking batch by batch for each claimed entry grows with their
    /// product, and a sink that is down under light traffic leaves thousands
    /// of one-entry batches in flight while the scan pages through as many
    /// pending entries.
    fn snapshot(&self) -> Vec<StreamId> {
        let mut ids: Vec<StreamId> = self
            .batches
            .values()
            .flat_map(|b| b.iter().copied())
            .collect();
        ids.sort_unstable();
        ids
    }
}

/// Run until `shutdown` becomes `true` or the engine stops. Returns after
/// every acknowledgement it could make was made; requires the engine to keep
/// running until then (it does: this drops its intake sender first).
pub async fn run(
    target: RedisTarget,
    group: Group,
    intake: IntakeSender,
    stats: Arc<ConsumerStats>,
    shutdown: watch::Receiver<bool>,
) -> Result<(), String> {
    let cfg = group.config().clone();
    let reader = Link::new(&target, "reader", Duration::from_secs(10))?;
    let entries = ReadLink::new(&target, "stream reader");
    let ack_link = Link::new(&target, "acker", Duration::from_secs(10))?;
    let (ack_tx, ack_rx) = mpsc::unbounded_channel();
    let acker = tokio::spawn(ack_loop(
        ack_link,
        group.clone(),
        ack_rx,
        stats.clone(),
        shutdown.clone(),
    ));
    info!(stream = %cfg.stream, group = %cfg.group, consumer = %cfg.consumer, redis = %target, "reading Redis stream");
    let mut pump = Pump {
        group,
        reader,
        entries,
        intake,
        stats,
        ack_tx,
        in_flight: InFlight::default(),
        shutdown,
    };
    pump.read_loop().await;
    let Pump { intake, ack_tx, .. } = pump;
    // The engine drains once every intake sender is gone; then the per-batch
    // tasks finish, the last ack sender drops and the acker ends.
    drop(intake);
    drop(ack_tx);
    acker.await.map_err(|e| format!("acker task failed: {e}"))
}

struct Pump {
    group: Group,
    /// Group management, claims, lag and dead letters.
    reader: Link,
    /// `XREADGROUP` alone: its replies are read without the redis crate's
    /// parser (see `switchyard_bus::redis::resp`).
    entries: ReadLink,
    intake: IntakeSender,
    stats: Arc<ConsumerStats>,
    ack_tx: mpsc::UnboundedSender<Settle>,
    in_flight: InFlight,
    shutdown: watch::Receiver<bool>,
}

/// Which read comes next.
enum Phase {
    /// Re-reading own pending entries after this id.
    Pending(StreamId),
    /// Reading new entries.
    New,
}

impl Pump {
    async fn read_loop(&mut self) {
        let mut phase = Phase::Pending(StreamId::ZERO);
        let mut group_ready = false;
        let claim_every = (self.group.config().claim_idle / 2).max(Duration::from_millis(200));
        let mut next_claim = Instant::now() + claim_every;
        let mut next_lag = Instant::now();
        let mut shutdown = self.shutdown.clone();
        let mut prefetch = Prefetch(None);
        loop {
            if *shutdown.borrow() {
                return;
            }
            let mut conn = tokio::select! {
                c = self.reader.get() => c,
                _ = shutdown.changed() => return,
            };
            if !group_ready {
                match self.group.ensure(&mut conn).await {
                    Ok(()) => group_ready = true,
                    Err(e) => {
                        self.failed("XGROUP CREATE", &e).await;
                        continue;
                    }
                }
            }
            if Instant::now() >= next_lag {
                next_lag = Instant::now() + LAG_INTERVAL;
                if let Ok((len, pending)) = self.group.lag(&mut conn).await {
                    self.stats
                        .length
                        .store(len, std::sync::atomic::Ordering::Relaxed);
                    self.stats
                        .pending
                        .store(pending, std::sync::atomic::Ordering::Relaxed);
                }
            }
            if Instant::now() >= next_claim {
                next_claim = Instant::now() + claim_every;
                if let Err(e) = self.claim_idle(&mut conn).await {
                    group_ready &= e.code() != Some("NOGROUP");
                    self.failed("XAUTOCLAIM", &e).await;
                    continue;
                }
            }
            let read = match phase {
                Phase::Pending(after) => {
                    let mut rc = tokio::select! {
                        c = self.entries.take() => c,
                        _ = shutdown.changed() => return,
                    };
                    let r = self.group.read_pending(&mut rc, after).await;
                    self.give_back(rc, &r);
                    r
                }
                Phase::New => {
                    let mut next = match prefetch.0.take() {
                        Some(read) => read,
                        None => {
                            let rc = tokio::select! {
                                c = self.entries.take() => c,
                                _ = shutdown.changed() => return,
                            };
                            spawn_read(&self.group, rc).await
                        }
                    };
                    let done = tokio::select! {
                        r = &mut next => r,
                        // Abandoning a read loses nothing: whatever it
                        // returned stays pending and is claimed later.
                        _ = shutdown.changed() => {
                            next.abort();
                            return;
                        }
                    };
                    match done {
                        Ok((rc, r)) => {
                            self.give_back(rc, &r);
                            r
                        }
                        Err(e) => {
                            let e = join_error(e);
                            self.entries.lost(&e);
                            Err(e)
                        }
                    }
                }
            };
            let entries = match read {
                Ok(entries) => entries,
                Err(e) => {
                    // A Redis that restarted empty has no group any more.
                    group_ready &= e.code() != Some("NOGROUP");
                    self.read_failed(&e).await;
                    continue;
                }
            };
            match phase {
                Phase::Pending(_) if entries.is_empty() => {
                    phase = Phase::New;
                    continue;
                }
                Phase::Pending(_) => {
                    phase = Phase::Pending(entries[entries.len() - 1].id);
                    ConsumerStats::add(&self.stats.redelivered, entries.len() as u64);
                }
                Phase::New => {
                    ConsumerStats::add(&self.stats.read, entries.len() as u64);
                    // A busy stream: ask for the next entries while these are
                    // decoded and queued.
                    if entries.len() >= self.group.config().count {
                        // The connection was just given back, so this
                        // does not wait.
                        let rc = self.entries.take().await;
                        prefetch.0 = Some(spawn_read(&self.group, rc).await);
                    }
                }
            }
            if !self.deliver(entries).await {
                return; // the engine stopped
            }
        }
    }

    /// One `XAUTOCLAIM` scan over the whole pending list.
    async fn claim_idle(&mut self, conn: &mut MultiplexedConnection) -> redis::RedisResult<()> {
        let mut cursor = StreamId::ZERO;
        // Batches released during the scan were delivered or set aside, so
        // skipping their entries is right; batches held during the scan
        // hold entries past the cursor, which later pages do not return.
        let held = self
            .in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .snapshot();
        loop {
            let claim = self.group.autoclaim(conn, cursor).await?;
            if !claim.deleted.is_empty() {
                warn!(
                    count = claim.deleted.len(),
                    "pending entries were trimmed from the stream before delivery"
                );
                ConsumerStats::add(&self.stats.lost, claim.deleted.len() as u64);
            }
            let fresh: Vec<RawEntry> = claim
                .entries
                .into_iter()
                .filter(|e| held.binary_search(&e.id).is_err())
                .collect();
            if !fresh.is_empty() {
                info!(count = fresh.len(), "claimed idle entries");
                ConsumerStats::add(&self.stats.claimed, fresh.len() as u64);
                if !self.deliver(fresh).await {
                    return Ok(());
                }
            }
            if claim.cursor == StreamId::ZERO {
                return Ok(());
            }
            cursor = claim.cursor;
        }
    }

    /// Decode, set poison aside, push the rest into the intake and arrange
    /// their acknowledgement. `false` once the engine is gone.
    async fn deliver(&mut self, entries: Vec<RawEntry>) -> bool {
        // Token `i` belongs to `ids[i]`; poison entries take no token, so the
        // batch may be larger than the events sent: an index without a token
        // is reported unresolved, and `ids` has no entry for it.
        let (batch, outcome) = IndexedAckBatch::new(entries.len());
        let mut events: Vec<Event> = Vec::with_capacity(entries.len());
        let mut ids = Vec::with_capacity(entries.len());
        for entry in entries {
            match decode::stream_entry(&entry) {
                Ok(event) => {
                    events.push(event.with_ack(batch.token(ids.len())));
                    ids.push(entry.id);
                }
                Err(reason) if entry.fields.is_none() => {
                    warn!(id = %entry.id, %reason, "pending entry lost before delivery");
                    ConsumerStats::add(&self.stats.lost, 1);
                    let _ = self.ack_tx.send(Settle::Ack(vec![entry.id]));
                }
                Err(reason) => self.poison(&entry, &reason).await,
            }
        }
        drop(batch);
        if events.is_empty() {
            return true;
        }
        let ids: Arc<[StreamId]> = ids.into();
        let key = self
            .in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .hold(ids.clone());
        tokio::spawn(await_outcome(
            ids,
            key,
            outcome,
            self.in_flight.clone(),
            self.ack_tx.clone(),
            self.stats.clone(),
        ));
        if self.intake.send(events).await.is_err() {
            warn!("engine stopped; Redis stream source ends");
            return false;
        }
        true
    }

    /// Keep a poison entry in `<stream>:dead` and acknowledge it. Retried
    /// until it succeeds or shutdown: skipping it would wedge nothing, but
    /// acknowledging it without keeping it would lose it.
    async fn poison(&mut self, entry: &RawEntry, reason: &str) {
        error!(id = %entry.id, %reason, dead = %self.group.config().dead_stream(), "poison entry set aside");
        ConsumerStats::add(&self.stats.poison, 1);
        loop {
            let mut conn = tokio::select! {
                c = self.reader.get() => c,
                _ = grace_after(self.shutdown.clone(), Duration::ZERO) => return,
            };
            match self.group.dead_letter(&mut conn, entry, reason).await {
                Ok(()) => return,
                Err(e) => {
                    self.failed("dead-letter", &e).await;
                    if *self.shutdown.borrow() {
                        return; // still pending: handled again after restart
                    }
                }
            }
        }
    }

    /// Keep the read connection after a read that left it in a known state.
    fn give_back<T>(&mut self, conn: ReadConn, result: &redis::RedisResult<T>) {
        match result {
            Ok(_) => self.entries.put(conn),
            Err(e) => {
                self.entries.settle(conn, e);
            }
        }
    }

    /// A read failed: the connection was already settled by `give_back`.
    async fn read_failed(&mut self, e: &redis::RedisError) {
        if is_server_reply(e) {
            error!(command = "XREADGROUP", error = %e, "Redis command failed; retrying");
            tokio::time::sleep(Duration::from_millis(500)).await;
        } else {
            ConsumerStats::add(&self.stats.reconnects, 1);
        }
    }

    async fn failed(&mut self, what: &str, e: &redis::RedisError) {
        if self.reader.broken(e) {
            ConsumerStats::add(&self.stats.reconnects, 1);
        } else {
            error!(command = what, error = %e, "Redis command failed; retrying");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// A read of new entries running on its own task, with the connection it
/// owns meanwhile.
type Read = JoinHandle<(ReadConn, redis::RedisResult<Vec<RawEntry>>)>;

/// The read issued ahead of time, stopped when the loop returns.
struct Prefetch(Option<Read>);

impl Drop for Prefetch {
    fn drop(&mut self) {
        if let Some(read) = self.0.take() {
            read.abort();
        }
    }
}

async fn spawn_read(group: &Group, mut conn: ReadConn) -> Read {
    // Sent here, not in the task: a task spawned from the pump waits in its
    // worker's LIFO slot until the pump yields, which is after decoding the
    // entries just read. Sent now, Redis prepares the next reply meanwhile.
    let sent = group.send_read_new(&mut conn).await;
    let group = group.clone();
    tokio::spawn(async move {
        let r = match sent {
            Ok(()) => group.receive_new(&mut conn).await,
            Err(e) => Err(e),
        };
        (conn, r)
    })
}

fn join_error(e: tokio::task::JoinError) -> redis::RedisError {
    redis::RedisError::from((redis::ErrorKind::IoError, "read task failed", e.to_string()))
}

/// Wait for one read's fates; settle each entry by its own fate.
async fn await_outcome(
    ids: Arc<[StreamId]>,
    key: u64,
    outcome: tokio::sync::oneshot::Receiver<Fates>,
    in_flight: InFlight,
    ack_tx: mpsc::UnboundedSender<Settle>,
    stats: Arc<ConsumerStats>,
) {
    let fates = outcome
        .await
        .unwrap_or_else(|_| Fates::unresolved(ids.len()));
    in_flight
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .release(key);
    let mut ack = Vec::with_capacity(ids.len());
    let mut keep = Vec::new();
    let mut unresolved = 0;
    // `fates` may be longer than `ids` (poison took indices without tokens);
    // zip stops at the last id.
    for (&id, fate) in ids.iter().zip(fates.fates) {
        match fate {
            Fate::Delivered | Fate::Filtered | Fate::DeadLettered => ack.push(id),
            Fate::Dropped => keep.push(id),
            Fate::Unresolved => unresolved += 1,
        }
    }
    let o = fates.outcome;
    ConsumerStats::add(&stats.delivered, o.delivered);
    ConsumerStats::add(&stats.filtered, o.filtered);
    ConsumerStats::add(&stats.dead_lettered, o.dead_lettered);
    ConsumerStats::add(&stats.dropped, keep.len() as u64);
    if unresolved > 0 {
        warn!(
            entries = unresolved,
            "events were lost in flight; leaving their entries pending for redelivery"
        );
        ConsumerStats::add(&stats.unresolved, unresolved);
        ConsumerStats::add(&stats.not_acked, unresolved);
    }
    if !keep.is_empty() {
        warn!(
            entries = keep.len(),
            "events were dropped after delivery failed; keeping their entries in the dead stream"
        );
        let _ = ack_tx.send(Settle::Keep(keep));
    }
    if !ack.is_empty() {
        let _ = ack_tx.send(Settle::Ack(ack));
    }
}

/// Coalesce acknowledgements into few `XACK`s on a dedicated connection;
/// keep dropped entries in the dead stream before acknowledging them.
async fn ack_loop(
    mut link: Link,
    group: Group,
    mut rx: mpsc::UnboundedReceiver<Settle>,
    stats: Arc<ConsumerStats>,
    shutdown: watch::Receiver<bool>,
) {
    let mut chunks = Vec::new();
    while rx.recv_many(&mut chunks, 64).await > 0 {
        let mut ack = Vec::new();
        let mut keep = Vec::new();
        for chunk in chunks.drain(..) {
            match chunk {
                Settle::Ack(ids) => ack.extend(ids),
                Settle::Keep(ids) => keep.extend(ids),
            }
        }
        // Dropped entries first: they are older than most acknowledgements
        // waiting with them, and nothing depends on the order.
        if !keep.is_empty() {
            settle(&mut link, &group, Settle::Keep(keep), &stats, &shutdown).await;
        }
        if !ack.is_empty() {
            settle(&mut link, &group, Settle::Ack(ack), &stats, &shutdown).await;
        }
    }
}

/// Carry out one settlement, retrying until it succeeds or shutdown's grace
/// runs out (then the entries stay pending and are delivered again).
async fn settle(
    link: &mut Link,
    group: &Group,
    job: Settle,
    stats: &ConsumerStats,
    shutdown: &watch::Receiver<bool>,
) {
    let done = tokio::select! {
        () = settle_until_done(link, group, &job, stats) => true,
        _ = grace_after(shutdown.clone(), ACK_GIVE_UP) => false,
    };
    let (Settle::Ack(ids) | Settle::Keep(ids)) = &job;
    if done {
        debug!(ids = ids.len(), "XACK");
        ConsumerStats::add(&stats.acked, ids.len() as u64);
    } else {
        warn!(
            entries = ids.len(),
            "Redis unreachable at shutdown; entries stay pending and are delivered again"
        );
        ConsumerStats::add(&stats.not_acked, ids.len() as u64);
    }
}

/// Count (as lost) the dropped entries that were gone from their `source`
/// (`stream` or `list`) when they were to be kept: `wanted` asked for,
/// `found` still there. Their dead copies have only their ids.
pub(crate) fn count_trimmed(stats: &ConsumerStats, wanted: u64, found: u64, source: &str) {
    let gone = wanted.saturating_sub(found);
    if gone > 0 {
        warn!(
            entries = gone,
            source,
            "dropped entries were trimmed before they could be kept; the dead stream has only their ids"
        );
        ConsumerStats::add(&stats.lost, gone);
    }
}

async fn settle_until_done(link: &mut Link, group: &Group, job: &Settle, stats: &ConsumerStats) {
    loop {
        let mut conn = link.get().await;
        let result = match job {
            Settle::Ack(ids) => group.ack(&mut conn, ids).await.map(drop),
            Settle::Keep(ids) => group
                .keep_dropped(&mut conn, ids, DROPPED_REASON)
                .await
                .map(|found| count_trimmed(stats, ids.len() as u64, found, "stream")),
        };
        match result {
            Ok(()) => return,
            Err(e) => {
                if !link.broken(&e) {
                    error!(error = %e, "XACK failed; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }
}

/// Completes `grace` after shutdown began; never before.
async fn grace_after(mut shutdown: watch::Receiver<bool>, grace: Duration) {
    if shutdown.wait_for(|stop| *stop).await.is_err() {
        std::future::pending::<()>().await;
    }
    tokio::time::sleep(grace).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(ms: u64, seq: u64) -> StreamId {
        StreamId { ms, seq }
    }

    #[test]
    fn held_ids_are_found_until_their_batch_is_released() {
        let mut held = Held::default();
        let a = held.hold(vec![id(1, 0), id(1, 1), id(5, 0)].into());
        // Out of order: found all the same.
        let b = held.hold(vec![id(9, 0), id(7, 3)].into());
        let ids = held.snapshot();
        assert_eq!(ids, [id(1, 0), id(1, 1), id(5, 0), id(7, 3), id(9, 0)]);
        // Between held ids of a batch, but not in it (another consumer's).
        assert!(ids.binary_search(&id(3, 0)).is_err());
        held.release(a);
        assert_eq!(held.snapshot(), [id(7, 3), id(9, 0)]);
        held.release(b);
        assert!(held.batches.is_empty());
        assert!(held.snapshot().is_empty());
    }
}
