//! Redis Streams as a source: read through a consumer group, push into the
//! engine's intake (waiting for room — nothing is dropped on the way), and
//! `XACK` each read only after the engine reports every event of it
//! delivered or filtered.
//!
//! The order of reads, as the spec asks: first this consumer's own pending
//! entries (id `0` onwards — a restart with the same name resumes where it
//! stopped), then new entries (`>`); every claim interval, entries that other
//! (dead) consumers left idle longer than the claim time are taken over with
//! `XAUTOCLAIM`.
//!
//! Acknowledgement: each read becomes one [`AckBatch`]; a small task per
//! batch awaits its outcome and hands the ids to one acker task, which
//! coalesces them into few `XACK`s on its own connection (the reader's
//! connection is busy with blocking reads). A batch with any event dropped
//! or unresolved is not acknowledged: it stays pending and is delivered
//! again after the claim time — a duplicate at worst, never a loss.
//!
//! Poison entries are copied to `<stream>:dead` with the reason and
//! acknowledged in one transaction, so they never wedge the group.

use redis::aio::MultiplexedConnection;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use switchyard_bus::redis::decode;
use switchyard_bus::redis::entry::RawEntry;
use switchyard_bus::redis::{ConsumerStats, Group, Link, RedisTarget, StreamId};
use switchyard_core::{AckBatch, BatchOutcome, Event};
use switchyard_engine::IntakeSender;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, error, info, warn};

/// How often the group's length and pending count are refreshed for stats.
const LAG_INTERVAL: Duration = Duration::from_secs(2);
/// How long acknowledgements are retried after shutdown began.
const ACK_GIVE_UP: Duration = Duration::from_secs(10);

/// Entries this process holds in flight, so a claim scan never hands the
/// engine a second copy of an entry it is still delivering.
type InFlight = Arc<Mutex<HashSet<StreamId>>>;

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
    let reader = Link::new(&target, "reader", cfg.block + Duration::from_secs(10))?;
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
    reader: Link,
    intake: IntakeSender,
    stats: Arc<ConsumerStats>,
    ack_tx: mpsc::UnboundedSender<Vec<StreamId>>,
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
                Phase::Pending(after) => self.group.read_pending(&mut conn, after).await,
                Phase::New => {
                    let mut next = match prefetch.0.take() {
                        Some(read) => read,
                        None => spawn_read(&self.group, &conn),
                    };
                    tokio::select! {
                        r = &mut next => r.unwrap_or_else(|e| Err(join_error(e))),
                        // Abandoning a read loses nothing: whatever it
                        // returned stays pending and is claimed later.
                        _ = shutdown.changed() => {
                            next.abort();
                            return;
                        }
                    }
                }
            };
            let entries = match read {
                Ok(entries) => entries,
                Err(e) => {
                    // A Redis that restarted empty has no group any more.
                    group_ready &= e.code() != Some("NOGROUP");
                    self.failed("XREADGROUP", &e).await;
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
                        prefetch.0 = Some(spawn_read(&self.group, &conn));
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
        loop {
            let claim = self.group.autoclaim(conn, cursor).await?;
            if !claim.deleted.is_empty() {
                warn!(
                    count = claim.deleted.len(),
                    "pending entries were trimmed from the stream before delivery"
                );
                ConsumerStats::add(&self.stats.lost, claim.deleted.len() as u64);
            }
            let fresh: Vec<RawEntry> = {
                let held = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
                claim
                    .entries
                    .into_iter()
                    .filter(|e| !held.contains(&e.id))
                    .collect()
            };
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
        let (batch, outcome) = AckBatch::new();
        let mut events: Vec<Event> = Vec::with_capacity(entries.len());
        let mut ids = Vec::with_capacity(entries.len());
        for entry in entries {
            match decode::stream_entry(&entry) {
                Ok(event) => {
                    events.push(event.with_ack(batch.token()));
                    ids.push(entry.id);
                }
                Err(reason) if entry.fields.is_none() => {
                    warn!(id = %entry.id, %reason, "pending entry lost before delivery");
                    ConsumerStats::add(&self.stats.lost, 1);
                    let _ = self.ack_tx.send(vec![entry.id]);
                }
                Err(reason) => self.poison(&entry, &reason).await,
            }
        }
        drop(batch);
        if events.is_empty() {
            return true;
        }
        self.in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(ids.iter().copied());
        tokio::spawn(await_outcome(
            ids,
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

    async fn failed(&mut self, what: &str, e: &redis::RedisError) {
        if self.reader.broken(e) {
            ConsumerStats::add(&self.stats.reconnects, 1);
        } else {
            error!(command = what, error = %e, "Redis command failed; retrying");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// A read of new entries running on its own task.
type Read = JoinHandle<redis::RedisResult<Vec<RawEntry>>>;

/// The read issued ahead of time, stopped when the loop returns.
struct Prefetch(Option<Read>);

impl Drop for Prefetch {
    fn drop(&mut self) {
        if let Some(read) = self.0.take() {
            read.abort();
        }
    }
}

fn spawn_read(group: &Group, conn: &MultiplexedConnection) -> Read {
    let (group, mut conn) = (group.clone(), conn.clone());
    tokio::spawn(async move { group.read_new(&mut conn).await })
}

fn join_error(e: tokio::task::JoinError) -> redis::RedisError {
    redis::RedisError::from((redis::ErrorKind::IoError, "read task failed", e.to_string()))
}

/// Wait for one read's outcome; acknowledge it if every event is done.
async fn await_outcome(
    ids: Vec<StreamId>,
    outcome: tokio::sync::oneshot::Receiver<BatchOutcome>,
    in_flight: InFlight,
    ack_tx: mpsc::UnboundedSender<Vec<StreamId>>,
    stats: Arc<ConsumerStats>,
) {
    let outcome = outcome.await.unwrap_or(BatchOutcome {
        unresolved: ids.len() as u64,
        ..Default::default()
    });
    {
        let mut held = in_flight.lock().unwrap_or_else(|p| p.into_inner());
        for id in &ids {
            held.remove(id);
        }
    }
    if outcome.dropped == 0 && outcome.unresolved == 0 {
        let _ = ack_tx.send(ids);
    } else {
        warn!(
            entries = ids.len(),
            dropped = outcome.dropped,
            unresolved = outcome.unresolved,
            "not all events of a read were delivered; leaving it pending for redelivery"
        );
        ConsumerStats::add(&stats.not_acked, ids.len() as u64);
    }
}

/// Coalesce acknowledgements into few `XACK`s on a dedicated connection.
async fn ack_loop(
    mut link: Link,
    group: Group,
    mut rx: mpsc::UnboundedReceiver<Vec<StreamId>>,
    stats: Arc<ConsumerStats>,
    shutdown: watch::Receiver<bool>,
) {
    let mut chunks = Vec::new();
    while rx.recv_many(&mut chunks, 64).await > 0 {
        let ids: Vec<StreamId> = chunks.drain(..).flatten().collect();
        let acked = tokio::select! {
            n = ack_until_done(&mut link, &group, &ids) => Some(n),
            _ = grace_after(shutdown.clone(), ACK_GIVE_UP) => None,
        };
        match acked {
            Some(n) => {
                debug!(ids = ids.len(), acked = n, "XACK");
                ConsumerStats::add(&stats.acked, ids.len() as u64);
            }
            None => {
                warn!(
                    entries = ids.len(),
                    "Redis unreachable at shutdown; entries stay pending and are delivered again"
                );
                ConsumerStats::add(&stats.not_acked, ids.len() as u64);
            }
        }
    }
}

async fn ack_until_done(link: &mut Link, group: &Group, ids: &[StreamId]) -> u64 {
    loop {
        let mut conn = link.get().await;
        match group.ack(&mut conn, ids).await {
            Ok(n) => return n,
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
