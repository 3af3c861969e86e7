//! The sink interface: send a batch, close; and how a failure is
//! classified so the engine knows whether to retry. Sinks are built from
//! their typed configs by the [`SinkRegistry`](crate::SinkRegistry).

use crate::Event;
use async_trait::async_trait;
use std::fmt;
use std::time::Duration;

/// A destination for batches of events.
#[async_trait]
pub trait Sink: Send + Sync + 'static {
    /// Deliver a batch. Classify failures: the engine retries transient ones.
    /// A sink that learns the outcome of each event (one request per event, or
    /// per-event results in a response) returns [`SinkError::partial`] naming
    /// the events that failed; the engine then treats every other event as
    /// delivered and retries only the failed transient ones.
    async fn send(&self, events: &[Event]) -> Result<(), SinkError>;

    /// Flush and release resources; called once after the last `send`.
    async fn close(&self) -> Result<(), SinkError> {
        Ok(())
    }
}

/// How the engine should treat a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkErrorKind {
    /// May succeed later: retry with backoff.
    Transient,
    /// Will not succeed: do not retry.
    Permanent,
    /// Some events of the batch failed (listed in [`SinkError::failed`], each
    /// with its own transient or permanent error); the others were delivered.
    Partial,
}

/// A classified sink failure.
#[derive(Debug, Clone)]
pub struct SinkError {
    /// Retry or not.
    pub kind: SinkErrorKind,
    /// What failed, on what.
    pub message: String,
    /// The server asked to wait this long before retrying.
    pub retry_after: Option<Duration>,
    /// With [`SinkErrorKind::Partial`]: the failed events, by index in the
    /// batch. Empty otherwise.
    pub failed: Vec<EventFailure>,
}

/// One event of a batch that failed, and why.
#[derive(Debug, Clone)]
pub struct EventFailure {
    /// Position of the event in the batch given to [`Sink::send`].
    pub index: usize,
    /// Its error: transient (retry this event) or permanent (give it up).
    pub error: SinkError,
}

impl SinkError {
    /// A failure worth retrying.
    pub fn transient(message: impl Into<String>) -> Self {
        Self {
            kind: SinkErrorKind::Transient,
            message: message.into(),
            retry_after: None,
            failed: Vec::new(),
        }
    }

    /// A failure not worth retrying.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            kind: SinkErrorKind::Permanent,
            message: message.into(),
            retry_after: None,
            failed: Vec::new(),
        }
    }

    /// Ask the engine to wait at least `delay` before retrying.
    pub fn with_retry_after(mut self, delay: Option<Duration>) -> Self {
        self.retry_after = delay;
        self
    }

    /// Per-event failures of one batch: `Ok` when there are none, else a
    /// [`SinkErrorKind::Partial`] error whose `retry_after` is the longest any
    /// transient failure asked for.
    pub fn from_failures(mut failed: Vec<EventFailure>) -> Result<(), SinkError> {
        if failed.is_empty() {
            return Ok(());
        }
        failed.sort_by_key(|f| f.index);
        let retry_after = failed
            .iter()
            .filter(|f| f.error.kind == SinkErrorKind::Transient)
            .filter_map(|f| f.error.retry_after)
            .max();
        let message = format!(
            "{} event(s) of the batch failed, first: {}",
            failed.len(),
            failed[0].error
        );
        Err(Self {
            kind: SinkErrorKind::Partial,
            message,
            retry_after,
            failed,
        })
    }
}

impl fmt::Display for SinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            SinkErrorKind::Transient => "transient",
            SinkErrorKind::Permanent => "permanent",
            SinkErrorKind::Partial => "partial",
        };
        write!(f, "{kind} error: {}", self.message)
    }
}

impl std::error::Error for SinkError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_become_a_partial_error_sorted_with_the_longest_retry_after() {
        assert!(SinkError::from_failures(Vec::new()).is_ok());
        let wait = |s| Some(Duration::from_secs(s));
        let err = SinkError::from_failures(vec![
            EventFailure {
                index: 3,
                error: SinkError::transient("busy").with_retry_after(wait(2)),
            },
            EventFailure {
                index: 1,
                error: SinkError::permanent("bad request"),
            },
            EventFailure {
                index: 0,
                error: SinkError::transient("busy").with_retry_after(wait(7)),
            },
        ])
        .unwrap_err();
        assert_eq!(err.kind, SinkErrorKind::Partial);
        assert_eq!(err.retry_after, wait(7));
        let idx: Vec<usize> = err.failed.iter().map(|f| f.index).collect();
        assert_eq!(idx, [0, 1, 3]);
        assert!(
            err.to_string().starts_with("partial error: 3 event(s)"),
            "{err}"
        );
    }
}
