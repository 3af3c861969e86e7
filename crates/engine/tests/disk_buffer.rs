//! The disk buffer through its public surface: what was appended comes back
//! (ids kept) until it is acknowledged, across reopenings; damage is skipped
//! and counted; a full buffer pushes back; acknowledged segments go away.

use std::path::Path;
use std::time::Duration;
use switchyard_core::{Event, EventId, Fate, LogRecord};
use switchyard_engine::disk_buffer::{DiskBuffer, DiskBufferConfig, DiskBufferHandle};
use switchyard_engine::intake::SendError;
use switchyard_engine::{intake, IntakeReceiver, IntakeSender};

/// Safety net for waits that end on their own; never an assertion on speed.
const BOUND: Duration = Duration::from_secs(20);

fn config(dir: &Path, max_bytes: u64, segment_bytes: u64) -> DiskBufferConfig {
    DiskBufferConfig {
        dir: dir.to_path_buf(),
        max_bytes,
        segment_bytes,
    }
}

fn start(cfg: DiskBufferConfig) -> (IntakeSender, IntakeReceiver, DiskBufferHandle) {
    let (mem, rx) = intake(10_000);
    let (tx, handle) = DiskBuffer::open(cfg).unwrap().start(mem).unwrap();
    (tx, rx, handle)
}

fn events(tag: &str, n: usize) -> Vec<Event> {
    (0..n)
        .map(|i| LogRecord::new(format!("{tag}-{i}")).into())
        .collect()
}

fn message(e: &Event) -> String {
    match &e.payload {
        switchyard_core::Payload::Log(r) => r.message.clone().unwrap_or_default(),
        other => panic!("unexpected payload {other:?}"),
    }
}

/// Receive until `n` events have arrived.
async fn receive(rx: &mut IntakeReceiver, n: usize) -> Vec<Event> {
    let mut got = Vec::new();
    while got.len() < n {
        let chunk = tokio::time::timeout(BOUND, rx.recv())
            .await
            .expect("events arrive")
            .expect("queue open");
        got.extend(chunk);
    }
    assert_eq!(got.len(), n, "no more than expected");
    got
}

fn settle(events: Vec<Event>) {
    for mut e in events {
        e.resolve(Fate::Delivered);
    }
}

/// Drop the sources' sender, let the reader stop and the engine's end close,
/// persist the pointer.
async fn stop(tx: IntakeSender, mut rx: IntakeReceiver, handle: DiskBufferHandle) {
    drop(tx);
    // The reader stops once the writer is gone; the queue then ends.
    while let Some(chunk) = tokio::time::timeout(BOUND, rx.recv()).await.unwrap() {
        drop(chunk); // unread, unsettled: they stay on disk
    }
    handle.finish(BOUND).await;
}

fn segment_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            name.to_string_lossy().starts_with("segment-")
        })
        .count()
}

#[tokio::test]
async fn unacknowledged_events_come_back_after_reopening_with_their_ids() {
    let dir = tempfile::tempdir().unwrap();
    let (tx, mut rx, h) = start(config(dir.path(), 1 << 20, 1 << 20));
    let sent = events("a", 5);
    let ids: Vec<EventId> = sent.iter().map(|e| e.id).collect();
    tx.send(sent).await.unwrap();
    let first = receive(&mut rx, 5).await;
    assert_eq!(first.iter().map(|e| e.id).collect::<Vec<_>>(), ids);
    drop(first); // lost in flight: not acknowledged
    stop(tx, rx, h).await;

    let (tx, mut rx, h) = start(config(dir.path(), 1 << 20, 1 << 20));
    let again = receive(&mut rx, 5).await;
    assert_eq!(again.iter().map(|e| e.id).collect::<Vec<_>>(), ids);
    settle(again);
    stop(tx, rx, h).await;

    // Everything was acknowledged: a new event is the first to come out.
    let (tx, mut rx, h) = start(config(dir.path(), 1 << 20, 1 << 20));
    tx.send(events("b", 1)).await.unwrap();
    let next = receive(&mut rx, 1).await;
    assert_eq!(message(&next[0]), "b-0");
    settle(next);
    stop(tx, rx, h).await;
}

#[tokio::test]
async fn a_torn_tail_is_skipped_and_counted_and_writing_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let (tx, rx, h) = start(config(dir.path(), 1 << 20, 1 << 20));
    tx.send(events("a", 3)).await.unwrap();
    stop(tx, rx, h).await;
    // A crash in the middle of a write: half a record at the end.
    let last = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains("segment-"))
        .max()
        .unwrap();
    let mut bytes = std::fs::read(&last).unwrap();
    let whole = bytes.len();
    assert!(whole > 0, "the records are in the newest segment");
    let half = bytes[..whole / 6].to_vec();
    bytes.extend_from_slice(&half);
    std::fs::write(&last, bytes).unwrap();

    let (tx, mut rx, h) = start(config(dir.path(), 1 << 20, 1 << 20));
    tx.send(events("b", 2)).await.unwrap();
    let got = receive(&mut rx, 5).await;
    let names: Vec<String> = got.iter().map(message).collect();
    assert_eq!(names, ["a-0", "a-1", "a-2", "b-0", "b-1"]);
    let stats = h.stats_fn()();
    assert_eq!(stats.corrupt_records, 1);
    assert_eq!(stats.corrupt_bytes, (whole / 6) as u64);
    settle(got);
    stop(tx, rx, h).await;
}

#[tokio::test]
async fn a_flipped_byte_in_the_middle_costs_one_record() {
    let dir = tempfile::tempdir().unwrap();
    let (tx, rx, h) = start(config(dir.path(), 1 << 20, 1 << 20));
    for i in 0..3 {
        tx.send(events(&format!("r{i}"), 1)).await.unwrap();
    }
    stop(tx, rx, h).await;
    let seg = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.metadata().unwrap().len() > 0)
        .find(|p| p.to_string_lossy().contains("segment-"))
        .unwrap();
    let mut bytes = std::fs::read(&seg).unwrap();
    let middle = bytes.len() / 2; // inside the second of three equal records
    bytes[middle] ^= 0x20;
    std::fs::write(&seg, bytes).unwrap();

    let (tx, mut rx, h) = start(config(dir.path(), 1 << 20, 1 << 20));
    let got = receive(&mut rx, 2).await;
    let names: Vec<String> = got.iter().map(message).collect();
    assert_eq!(names, ["r0-0", "r2-0"]);
    assert_eq!(h.stats_fn()().corrupt_records, 1);
    settle(got);
    stop(tx, rx, h).await;
}

#[tokio::test]
async fn a_full_buffer_makes_sources_wait_until_events_are_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    // A bound of one byte: the first chunk enters the empty buffer, and
    // nothing more fits until it is acknowledged.
    let (tx, mut rx, h) = start(config(dir.path(), 1, 1 << 20));
    tx.send(events("a", 2)).await.unwrap();
    let first = receive(&mut rx, 2).await;
    // Read into the queue but not acknowledged: the bytes are still taken.
    match tx
        .send_timeout(events("b", 1), Duration::from_millis(50))
        .await
    {
        Err(SendError::Full(back)) => assert_eq!(back.len(), 1),
        other => panic!("expected Full, got {:?}", other.map(|_| ())),
    }
    let waiting = tokio::spawn({
        let tx = tx.clone();
        async move { tx.send(events("c", 1)).await.is_ok() }
    });
    tokio::task::yield_now().await;
    assert!(
        !waiting.is_finished(),
        "a full buffer holds the source back"
    );
    settle(first);
    assert!(tokio::time::timeout(BOUND, waiting).await.unwrap().unwrap());
    let got = receive(&mut rx, 1).await;
    assert_eq!(message(&got[0]), "c-0");
    settle(got);
    stop(tx, rx, h).await;
}

#[tokio::test]
async fn the_pointer_crosses_segments_only_over_settled_events_and_deletes_them() {
    let dir = tempfile::tempdir().unwrap();
    // Each one-event chunk fills a segment, so every chunk is its own segment.
    let (tx, mut rx, h) = start(config(dir.path(), 1 << 20, 64));
    for i in 0..4 {
        tx.send(events(&format!("s{i}"), 1)).await.unwrap();
    }
    let mut got = receive(&mut rx, 4).await;
    assert!(segment_files(dir.path()) >= 4);
    // Settle the last three first: the pointer must stay before the first.
    let first = got.remove(0);
    settle(got);
    drop(first);
    stop(tx, rx, h).await;
    assert!(
        segment_files(dir.path()) >= 4,
        "the first segment holds an open event, so nothing after it is deleted"
    );

    let (tx, mut rx, h) = start(config(dir.path(), 1 << 20, 64));
    let got = receive(&mut rx, 4).await;
    let names: Vec<String> = got.iter().map(message).collect();
    assert_eq!(names, ["s0-0", "s1-0", "s2-0", "s3-0"], "at least once");
    settle(got);
    stop(tx, rx, h).await;
    // Only the segment the last run was writing to is left (empty).
    assert_eq!(segment_files(dir.path()), 1);
}

#[tokio::test]
async fn a_directory_in_use_is_refused_until_its_owner_stops() {
    let dir = tempfile::tempdir().unwrap();
    let (tx, rx, handle) = start(config(dir.path(), 1 << 20, 1 << 16));
    let second = DiskBuffer::open(config(dir.path(), 1 << 20, 1 << 16));
    let message = second
        .err()
        .expect("a second opener is refused")
        .to_string();
    assert!(message.contains("another process"), "{message}");
    stop(tx, rx, handle).await;
    DiskBuffer::open(config(dir.path(), 1 << 20, 1 << 16)).expect("free again once stopped");
}

#[tokio::test]
async fn a_pipelined_sender_keeps_order_and_acknowledges_only_after_the_sync() {
    let dir = tempfile::tempdir().unwrap();
    let (tx, mut rx, handle) = start(config(dir.path(), 1 << 20, 1 << 16));
    let tx = tx.pipelined();
    let mut outcomes = Vec::new();
    for i in 0..50 {
        let (batch, outcome) = switchyard_core::AckBatch::new();
        let chunk = events(&format!("p{i}"), 2)
            .into_iter()
            .map(|e| e.with_ack(batch.token()))
            .collect();
        tx.send(chunk).await.unwrap();
        outcomes.push(outcome);
    }
    for outcome in outcomes {
        let o = tokio::time::timeout(BOUND, outcome).await.unwrap().unwrap();
        assert_eq!((o.delivered, o.unresolved), (2, 0), "on disk: {o:?}");
    }
    let got = receive(&mut rx, 100).await;
    let names: Vec<String> = got.iter().map(message).collect();
    let expected: Vec<String> = (0..50)
        .flat_map(|i| [format!("p{i}-0"), format!("p{i}-1")])
        .collect();
    assert_eq!(names, expected, "log order is send order");
    settle(got);
    stop(tx, rx, handle).await;
}
