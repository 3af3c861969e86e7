//! The Redis LIST log as a source (compatibility with older proxies).
//!
//! Reads incrementally past a cursor, pushes the events into the intake in
//! `LogID` order, and moves the plugin's offset key
//! (`llm-proxy-dispatcher:<plugin>:last_id`) only past events whose fate the
//! engine decided, in order — a crash re-reads at most what was in flight.
//! Events the engine gave up on (dropped, with no dead-letter queue to keep
//! them) are copied to the stream `<key>:dead` in the same transaction that
//! moves the offset past them, so a permanently refused event neither wedges
//! the log nor vanishes. Events nobody decided (lost in flight) make the
//! source re-read from the stored offset.
//!
//! Gaps: ids are handed out (`INCR`) before the entry is pushed, so a
//! missing id may just be a push still on its way. A gap counts as lost (a
//! metric and a warning) only when the same id is still missing after a
//! grace period; then the cursor moves past it.

pub mod source;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use switchyard_bus::redis::list_log::{self, ListConfig, ListRead};
use switchyard_bus::redis::{ConsumerStats, Link, RedisTarget};
use switchyard_core::{Event, Fate, Fates, IndexedAckBatch};
use switchyard_engine::IntakeSender;
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;
use tracing::{error, info, warn};

/// How long storing the offset is retried after shutdown began.
const OFFSET_GIVE_UP: Duration = Duration::from_secs(10);

/// Settings of the LIST source.
#[derive(Debug, Clone)]
pub struct ListSourceConfig {
    /// The list.
    pub list: ListConfig,
    /// Plugin name in the offset key.
    pub plugin: String,
    /// Entries per read.
    pub batch: usize,
    /// Wait between reads that found nothing.
    pub poll: Duration,
    /// How long a missing id may stay missing before it counts as lost.
    pub gap_grace: Duration,
    /// Reads handed to the engine and not yet done.
    pub max_in_flight: usize,
}

/// Why a dead entry of the LIST log was kept (the Streams source's words).
pub const DROPPED_REASON: &str = "dropped after delivery failed";

/// One read handed to the engine, in id order.
struct Chunk {
    /// The cursor before this chunk: its ids lie in `after + 1 ..= up_to`.
    after: i64,
    /// The offset may move to this id once the chunk is done.
    up_to: i64,
    /// The `LogID` of each event handed over, by its token's index.
    ids: Vec<i64>,
    outcome: Option<oneshot::Receiver<Fates>>,
}

/// What settling a chunk asks of Redis before the offset may move.
struct Commit {
    after: i64,
    up_to: i64,
    /// Events given up on, to keep in the dead stream.
    dropped: Vec<i64>,
}

/// Run until `shutdown` becomes `true` or the engine stops; then wait for
/// the chunks in flight and store the final offset.
pub async fn run(
    target: RedisTarget,
    cfg: ListSourceConfig,
    intake: IntakeSender,
    stats: Arc<ConsumerStats>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), String> {
    let mut link = Link::new(&target, "list reader", Duration::from_secs(30))?;
    let mut offset = loop {
        let mut conn = tokio::select! {
            c = link.get() => c,
            _ = shutdown.wait_for(|s| *s) => return Ok(()),
        };
        match list_log::get_offset(&mut conn, &cfg.plugin).await {
            Ok(o) => break o,
            Err(e) => {
                if !link.broken(&e) {
                    return Err(format!(
                        "cannot read the offset key `{}`: {e}",
                        list_log::offset_key(&cfg.plugin)
                    ));
                }
            }
        }
    };
    info!(key = %cfg.list.key, offset, offset_key = %list_log::offset_key(&cfg.plugin), redis = %target, "reading Redis LIST log");
    let mut cursor = offset;
    let mut in_flight: VecDeque<Chunk> = VecDeque::new();
    let mut hole: Option<(i64, Instant)> = None;
    let mut intake = Some(intake);
    loop {
        let stopping = *shutdown.borrow() || intake.is_none();
        if stopping {
            intake = None; // let the engine drain
        }
        // Settle finished chunks in order; wait for the oldest when full or stopping.
        loop {
            let must_wait = stopping || in_flight.len() >= cfg.max_in_flight.max(1);
            let Some(front) = in_flight.front_mut() else {
                break;
            };
            let entries = front.ids.len();
            let lost = || Fates::unresolved(entries);
            let done = match front.outcome.as_mut() {
                None => Some(Fates::unresolved(0)),
                Some(rx) if must_wait => Some(rx.await.unwrap_or_else(|_| lost())),
                Some(rx) => match rx.try_recv() {
                    Ok(o) => Some(o),
                    Err(oneshot::error::TryRecvError::Empty) => None,
                    Err(oneshot::error::TryRecvError::Closed) => Some(lost()),
                },
            };
            let Some(fates) = done else { break };
            let chunk = in_flight.pop_front().expect("front exists");
            let events = chunk.ids.len() as u64;
            match settle(chunk, fates, &stats) {
                Some(commit) => {
                    if store(&mut link, &cfg, &commit, &stats, &shutdown).await {
                        offset = commit.up_to;
                        ConsumerStats::add(&stats.acked, events);
                    }
                }
                None => {
                    warn!(
                        offset,
                        "events lost in flight; re-reading from the stored offset"
                    );
                    ConsumerStats::add(&stats.not_acked, events);
                    // Later chunks may be delivered twice; the offset stays honest.
                    in_flight.clear();
                    cursor = offset;
                }
            }
        }
        if stopping {
            if in_flight.is_empty() {
                info!(offset, "LIST source stopped");
                return Ok(());
            }
            continue;
        }
        let Some(tx) = intake.as_ref() else { continue };
        let mut conn = tokio::select! {
            c = link.get() => c,
            _ = shutdown.wait_for(|s| *s) => continue,
        };
        let read = match list_log::read_after(&mut conn, &cfg.list, cursor, cfg.batch).await {
            Ok(r) => r,
            Err(e) => {
                if link.broken(&e) {
                    ConsumerStats::add(&stats.reconnects, 1);
                } else {
                    error!(error = %e, "LIST read failed; retrying");
                    sleep_or_stop(&mut shutdown, cfg.poll).await;
                }
                continue;
            }
        };
        stats.pending.store(
            (read.last_id - offset).max(0) as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        for reason in &read.skipped {
            warn!(%reason, "LIST entry skipped: not an event with a LogID");
        }
        ConsumerStats::add(&stats.poison, read.skipped.len() as u64);
        match next_step(&read, cursor, &mut hole, cfg.gap_grace) {
            Step::Wait => sleep_or_stop(&mut shutdown, cfg.poll).await,
            Step::Skip { lost, to } => {
                warn!(
                    lost,
                    from = cursor + 1,
                    to,
                    "LIST log gap: events lost to trimming or expiry"
                );
                ConsumerStats::add(&stats.lost, lost);
                in_flight.push_back(Chunk {
                    after: cursor,
                    up_to: to,
                    ids: Vec::new(),
                    outcome: None,
                });
                cursor = to;
            }
            Step::Deliver(n) => {
                let (chunk, events) = take_prefix(read, cursor, n, &stats);
                cursor = chunk.up_to;
                in_flight.push_back(chunk);
                if !events.is_empty() && tx.send(events).await.is_err() {
                    warn!("engine stopped; LIST source ends");
                    intake = None;
                }
            }
        }
    }
}

enum Step {
    /// Nothing (yet) to do.
    Wait,
    /// Ids up to `to` are gone for good.
    Skip { lost: u64, to: i64 },
    /// Deliver the first `n` entries: contiguous from `cursor + 1`.
    Deliver(usize),
}

fn next_step(
    read: &ListRead,
    cursor: i64,
    hole: &mut Option<(i64, Instant)>,
    grace: Duration,
) -> Step {
    let contiguous = read
        .events
        .iter()
        .enumerate()
        .take_while(|(i, (id, _))| *id == cursor + 1 + *i as i64)
        .count();
    if contiguous > 0 {
        *hole = None;
        return Step::Deliver(contiguous);
    }
    if read.last_id <= cursor || !read.complete {
        return Step::Wait; // nothing new, or the window moved: read again
    }
    let missing = cursor + 1;
    match *hole {
        Some((id, since)) if id == missing && since.elapsed() >= grace => {
            *hole = None;
            let next = read
                .events
                .first()
                .map(|(id, _)| *id)
                .unwrap_or(read.last_id + 1);
            Step::Skip {
                lost: (next - missing) as u64,
                to: next - 1,
            }
        }
        Some((id, _)) if id == missing => Step::Wait,
        _ => {
            *hole = Some((missing, Instant::now()));
            Step::Wait
        }
    }
}

/// The first `n` entries of `read` (ids `after + 1 ..`) as events with one
/// token each, and their chunk.
fn take_prefix(read: ListRead, after: i64, n: usize, stats: &ConsumerStats) -> (Chunk, Vec<Event>) {
    let good = read
        .events
        .iter()
        .take(n)
        .filter(|(_, d)| d.is_ok())
        .count();
    let (batch, outcome) = IndexedAckBatch::new(good);
    let mut up_to = after;
    let mut ids = Vec::with_capacity(good);
    let mut events = Vec::with_capacity(good);
    for (id, decoded) in read.events.into_iter().take(n) {
        up_to = id;
        match decoded {
            Ok(e) => {
                events.push(e.with_ack(batch.token(ids.len())));
                ids.push(id);
            }
            Err(reason) => {
                error!(log_id = id, %reason, "poison LIST entry skipped");
                ConsumerStats::add(&stats.poison, 1);
            }
        }
    }
    ConsumerStats::add(&stats.read, events.len() as u64);
    let chunk = Chunk {
        after,
        up_to,
        ids,
        outcome: Some(outcome),
    };
    (chunk, events)
}

/// Count a chunk's fates. `None` when an event was lost in flight (the chunk
/// must be read again); otherwise what to store before the offset moves.
fn settle(chunk: Chunk, fates: Fates, stats: &ConsumerStats) -> Option<Commit> {
    let o = fates.outcome;
    ConsumerStats::add(&stats.delivered, o.delivered);
    ConsumerStats::add(&stats.filtered, o.filtered);
    ConsumerStats::add(&stats.dead_lettered, o.dead_lettered);
    let mut dropped = Vec::new();
    let mut unresolved = 0;
    for (id, fate) in chunk.ids.iter().zip(&fates.fates) {
        match fate {
            Fate::Delivered | Fate::Filtered | Fate::DeadLettered => {}
            Fate::Dropped => dropped.push(*id),
            Fate::Unresolved => unresolved += 1,
        }
    }
    if unresolved > 0 {
        ConsumerStats::add(&stats.unresolved, unresolved);
        return None;
    }
    Some(Commit {
        after: chunk.after,
        up_to: chunk.up_to,
        dropped,
    })
}

/// Keep the commit's dropped events in the dead stream and `SET` the offset,
/// in one transaction, retrying through reconnects. At shutdown it gives up
/// after a grace period if Redis stays away: the offset then lags, which
/// means a re-read after restart, never a loss.
async fn store(
    link: &mut Link,
    cfg: &ListSourceConfig,
    commit: &Commit,
    stats: &ConsumerStats,
    shutdown: &watch::Receiver<bool>,
) -> bool {
    let id = commit.up_to;
    let store = async {
        loop {
            let mut conn = link.get().await;
            let result = if commit.dropped.is_empty() {
                list_log::set_offset(&mut conn, &cfg.plugin, id).await
            } else {
                let span = (commit.up_to - commit.after).max(0) as usize;
                list_log::keep_and_store_offset(
                    &mut conn,
                    &cfg.list,
                    &cfg.plugin,
                    commit.after,
                    span,
                    &commit.dropped,
                    DROPPED_REASON,
                    id,
                )
                .await
                .map(|found| {
                    let n = commit.dropped.len() as u64;
                    warn!(
                        events = n,
                        dead = %cfg.list.dead_stream(),
                        "events were dropped after delivery failed; kept in the dead stream"
                    );
                    ConsumerStats::add(&stats.dropped, n);
                    crate::redis_streams::count_trimmed(stats, n, found, "list");
                })
            };
            match result {
                Ok(()) => return,
                Err(e) => {
                    if !link.broken(&e) {
                        error!(offset = id, error = %e, "cannot store the LIST offset; retrying");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            }
        }
    };
    let mut stop = shutdown.clone();
    let give_up = async {
        if stop.wait_for(|s| *s).await.is_err() {
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(OFFSET_GIVE_UP).await;
    };
    tokio::select! {
        _ = store => true,
        _ = give_up => {
            warn!(offset = id, "Redis unreachable at shutdown; the stored LIST offset lags (events will be re-read)");
            false
        }
    }
}

async fn sleep_or_stop(shutdown: &mut watch::Receiver<bool>, d: Duration) {
    tokio::select! {
        _ = tokio::time::sleep(d) => {}
        _ = shutdown.wait_for(|s| *s) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_core::LogRecord;

    fn read(ids: &[i64], last_id: i64, complete: bool) -> ListRead {
        ListRead {
            events: ids
                .iter()
                .map(|id| (*id, Ok(Event::from(LogRecord::new("x")))))
                .collect(),
            last_id,
            complete,
            skipped: Vec::new(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_missing_id_is_lost_only_after_the_grace_period() {
        let grace = Duration::from_secs(2);
        let mut hole = None;
        // 5 and 6 are there, 4 is not (yet): deliver nothing, start the clock.
        let r = read(&[5, 6], 6, true);
        assert!(matches!(next_step(&r, 3, &mut hole, grace), Step::Wait));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(matches!(next_step(&r, 3, &mut hole, grace), Step::Wait));
        tokio::time::advance(Duration::from_secs(1)).await;
        match next_step(&r, 3, &mut hole, grace) {
            Step::Skip { lost, to } => assert_eq!((lost, to), (1, 4)),
            _ => panic!("expected the gap to be skipped"),
        }
        // The late push case: 4 arrives within the grace period.
        let mut hole = None;
        assert!(matches!(next_step(&r, 3, &mut hole, grace), Step::Wait));
        let r = read(&[4, 5, 6], 6, true);
        assert!(matches!(
            next_step(&r, 3, &mut hole, grace),
            Step::Deliver(3)
        ));
    }

    #[test]
    fn contiguous_prefix_is_delivered_and_an_incomplete_window_waits() {
        let mut hole = None;
        let r = read(&[4, 5, 7], 7, true);
        assert!(matches!(
            next_step(&r, 3, &mut hole, Duration::ZERO),
            Step::Deliver(2)
        ));
        // The window did not reach delivered ids: the list moved, read again.
        let r = read(&[9], 9, false);
        assert!(matches!(
            next_step(&r, 3, &mut hole, Duration::ZERO),
            Step::Wait
        ));
        assert!(hole.is_none());
    }
}
