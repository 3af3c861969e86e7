//! The dead-letter queue: events that failed for good, kept on disk with the
//! reason, until they are replayed, purged, or expire.
//!
//! Storage is a directory of append-only segment files (`segment-NNNNNNNN.log`)
//! of checked JSON lines ([`record`]). Adding a record appends a `put` line
//! and syncs the file before the event is reported as dead-lettered (its
//! source may then let it go upstream). Removing records (replay, purge,
//! retention) appends a `del` tombstone rather than rewriting files; a
//! segment is deleted once it and every older segment hold no live record,
//! so a tombstone never outlives a segment whose records it hides. Opening
//! the queue reads every segment in order and keeps an index of the live
//! records' summaries in memory (at most `max_size`); a full record is read
//! back from its file when needed.
//!
//! One process at a time should change a queue directory: the dispatcher
//! that owns it, or `switchyard dlq replay | purge` while it is stopped.
//! Reading (`list`, `show`) is safe at any time.
//!
//! # Layout
//! - [`config`]: [`DlqConfig`] and its defaults.
//! - [`record`]: a record, its line format and checksum, rebuilding the event.
//! - [`store`]: [`Dlq`], the segment files and the index.
//! - [`replay`]: re-sending records through a sink (CLI replay, auto-retry).
//! - [`metrics`]: the queue's series for `/metrics`.

pub mod config;
pub mod metrics;
pub mod record;
pub mod replay;
pub mod store;

pub use config::DlqConfig;
pub use record::{DlqRecord, PayloadKind};
pub use replay::{auto_retry, replay, ReplaySummary};
pub use store::{Dlq, DlqError, Summary};
